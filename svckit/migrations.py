"""Alembic, driven from code: each service keeps its own migrations folder.

`upgrade(url, folder)` applies them (the `migrate` command of every service, and
the local run); `pending(engine, folder)` tells a starting server whether its
schema is behind; `run_env` is the body of each service's `env.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData, text

from svckit.db import UtcDateTime, make_engine

# Taken for the length of a migration run so two migrators never interleave.
ADVISORY_LOCK_ID = 0x62696C6C  # "bill"


def alembic_config(database_url: str, migrations_dir: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, migrations_dir: Path, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url, migrations_dir), revision)


def pending(engine: Engine, migrations_dir: Path) -> tuple[str | None, str | None]:
    """(current revision, head revision); equal when the schema is up to date."""
    head = ScriptDirectory(str(migrations_dir)).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, head


def run_env(context: Any, target_metadata: MetaData) -> None:
    """Run migrations online against the configured database."""
    url = context.config.attributes.get("database_url") or context.config.get_main_option("sqlalchemy.url")
    engine = make_engine(url, pool_size=1, application_name="billing-migrate")
    try:
        with engine.connect() as conn:
            context.configure(
                connection=conn,
                target_metadata=target_metadata,
                render_as_batch=conn.dialect.name == "sqlite",
                compare_type=True,
            )
            with context.begin_transaction():
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": ADVISORY_LOCK_ID})
                context.run_migrations()
    finally:
        engine.dispose()


def create_idempotency_records_v1(op: Any) -> None:
    """The idempotency record table as first created; every service's first migration calls this.

    Frozen: a later change to the table is a new migration, never an edit here.
    """
    op.create_table(
        "idempotency_records",
        sa.Column("caller", sa.String(64), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("method", sa.String(128), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("completed_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("caller", "key", name="pk_idempotency_records"),
    )
    op.create_index("ix_idempotency_records_created_at", "idempotency_records", ["created_at"])


def create_outbox_messages_v1(op: Any) -> None:
    """The outbox table (svckit.outbox) as first created. Frozen, like the idempotency records."""
    op.create_table(
        "outbox_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("aggregate", sa.String(length=128), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
        sa.Column("lease_until", UtcDateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("sent_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox_messages"),
        sa.UniqueConstraint("key", name="uq_outbox_messages_key"),
    )
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_messages_aggregate_id", ["aggregate", "id"], unique=False)
        batch_op.create_index("ix_outbox_messages_state_next_attempt_at", ["state", "next_attempt_at"], unique=False)


def create_stripe_events_v1(op: Any) -> None:
    """The Stripe event inbox (svckit.inbox) as first created. Frozen, like the idempotency records."""
    op.create_table(
        "stripe_events",
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=128), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_stripe_events"),
    )
    with op.batch_alter_table("stripe_events", schema=None) as batch_op:
        batch_op.create_index("ix_stripe_events_type_received_at", ["type", "received_at"], unique=False)


_AUDIT_POSTGRES = """
CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit records are immutable: % on % refused', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'integrity_constraint_violation';
END $$;
CREATE TRIGGER audit_records_immutable BEFORE UPDATE OR DELETE ON audit_records
  FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
"""
_AUDIT_SQLITE = [
    """CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
       BEGIN SELECT RAISE(ABORT, 'audit records are immutable: UPDATE refused'); END""",
    """CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records
       BEGIN SELECT RAISE(ABORT, 'audit records are immutable: DELETE refused'); END""",
]


def create_audit_records_v1(op: Any) -> None:
    """The audit log (svckit.audit) as first created, with the triggers that make it immutable. Frozen."""
    op.create_table(
        "audit_records",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("actor", sa.String(length=140), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_records"),
    )
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.create_index("ix_audit_records_created_at_id", ["created_at", "id"], unique=False)
        batch_op.create_index("ix_audit_records_actor_created_at", ["actor", "created_at"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_AUDIT_POSTGRES)
    else:
        for statement in _AUDIT_SQLITE:
            op.execute(statement)


def add_stripe_event_redrives_v2(op: Any) -> None:
    """The inbox's re-drive count and its listing index (svckit.inbox, second version). Frozen."""
    with op.batch_alter_table("stripe_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("redrives", sa.Integer(), server_default="0", nullable=False))
        batch_op.create_index("ix_stripe_events_received_at_event_id", ["received_at", "event_id"], unique=False)


_SEALS_POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION seals_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'seals are immutable: % on % refused', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'integrity_constraint_violation';
END $$;
"""


def create_chain_state_v1(op: Any, chains: Sequence[str]) -> None:
    """The watermarks of the hash chains (svckit.chain), one row per chain, nothing sealed yet. Frozen."""
    state = op.create_table(
        "chain_state",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_chain_state"),
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        state,
        [{"name": name, "position": 0, "last_seq": 0, "head_hash": "0" * 64, "updated_at": now} for name in chains],
    )


def create_seal_table_v1(op: Any, name: str, row_column: str, row_length: int, references: tuple[str, str]) -> None:
    """An insert-only seal table of a hash chain (svckit.chain.seal_table): UPDATE and DELETE refused. Frozen."""
    table, column = references
    op.create_table(
        name,
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column(row_column, sa.String(length=row_length), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("sealed_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint([row_column], [f"{table}.{column}"], name=f"fk_{name}_{row_column}_{table}"),
        sa.PrimaryKeyConstraint("seq", name=f"pk_{name}"),
        sa.UniqueConstraint(row_column, name=f"uq_{name}_{row_column}"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_SEALS_POSTGRES_FUNCTION)
        op.execute(
            f"CREATE TRIGGER {name}_immutable BEFORE UPDATE OR DELETE ON {name}"
            " FOR EACH ROW EXECUTE FUNCTION seals_refuse_change();"
            f" CREATE TRIGGER {name}_no_truncate BEFORE TRUNCATE ON {name}"
            " FOR EACH STATEMENT EXECUTE FUNCTION seals_refuse_change();"
        )
    else:
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {name}_no_{operation.lower()} BEFORE {operation} ON {name}"
                f" BEGIN SELECT RAISE(ABORT, 'seals are immutable: {operation} on {name} refused'); END"
            )


def add_audit_chain_v1(op: Any) -> None:
    """The audit log's chain order (`audit_records.ordinal`) and its seals (svckit.audit_chain). Frozen.

    Existing records get ordinals in the table's order. Call after `create_chain_state_v1`
    with an "audit" row.
    """
    if op.get_bind().dialect.name == "postgresql":
        # Rewrites the table under an exclusive lock: no row trigger fires, no writer runs meanwhile.
        op.execute("ALTER TABLE audit_records ADD COLUMN ordinal BIGSERIAL NOT NULL")
    else:
        op.add_column("audit_records", sa.Column("ordinal", sa.Integer(), nullable=True))
        op.execute("DROP TRIGGER audit_records_no_update")
        op.execute("UPDATE audit_records SET ordinal = rowid")
        # Recreating the table (to make the column NOT NULL) drops its triggers: both are made again.
        op.execute("DROP TRIGGER audit_records_no_delete")
        with op.batch_alter_table("audit_records", recreate="always") as batch_op:
            batch_op.alter_column("ordinal", existing_type=sa.Integer(), nullable=False)
        for statement in _AUDIT_SQLITE:
            op.execute(statement)
    op.create_index("ix_audit_records_ordinal", "audit_records", ["ordinal"], unique=True)
    create_seal_table_v1(op, "audit_seals", "record_id", 36, ("audit_records", "id"))
