"""The credit ledger: accounts, transfers, immutable entries, idempotency records.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from svckit.db import UtcDateTime
from svckit.migrations import create_idempotency_records_v1

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SYSTEM_ACCOUNTS = ("system:purchase", "system:subscription", "system:promotion", "system:adjustment", "system:spend")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# The database itself refuses to change history: entries can be neither updated
# nor deleted, transfers never deleted and only their reversed_amount may grow,
# accounts never deleted nor renamed.
POSTGRES_GUARDS = """
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'ledger rows are immutable: % on % refused', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'integrity_constraint_violation';
END $$;

CREATE TRIGGER ledger_entries_immutable BEFORE UPDATE OR DELETE ON ledger_entries
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER transfers_no_delete BEFORE DELETE ON transfers
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER transfers_no_truncate BEFORE TRUNCATE ON transfers
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER transfers_fixed_columns BEFORE UPDATE OF
  id, kind, amount, user_id, from_account, to_account, source, reference, description,
  reverses_transfer_id, actor, created_at ON transfers
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER accounts_no_delete BEFORE DELETE ON accounts
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER accounts_fixed_columns BEFORE UPDATE OF code, kind, created_at ON accounts
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
"""

SQLITE_GUARDS = [
    """CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
       BEGIN SELECT RAISE(ABORT, 'ledger rows are immutable: UPDATE on ledger_entries refused'); END""",
    """CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
       BEGIN SELECT RAISE(ABORT, 'ledger rows are immutable: DELETE on ledger_entries refused'); END""",
    """CREATE TRIGGER transfers_no_delete BEFORE DELETE ON transfers
       BEGIN SELECT RAISE(ABORT, 'ledger rows are immutable: DELETE on transfers refused'); END""",
    """CREATE TRIGGER transfers_fixed_columns BEFORE UPDATE OF
       id, kind, amount, user_id, from_account, to_account, source, reference, description,
       reverses_transfer_id, actor, created_at ON transfers
       BEGIN SELECT RAISE(ABORT, 'ledger rows are immutable: UPDATE on transfers refused'); END""",
    """CREATE TRIGGER accounts_no_delete BEFORE DELETE ON accounts
       BEGIN SELECT RAISE(ABORT, 'ledger rows are immutable: DELETE on accounts refused'); END""",
    """CREATE TRIGGER accounts_fixed_columns BEFORE UPDATE OF code, kind, created_at ON accounts
       BEGIN SELECT RAISE(ABORT, 'ledger rows are immutable: UPDATE on accounts refused'); END""",
]


def upgrade() -> None:
    accounts = op.create_table(
        "accounts",
        sa.Column("code", sa.String(140), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('wallet', 'system')", name=op.f("ck_accounts_kind")),
        sa.CheckConstraint(
            "(kind = 'wallet' AND balance IS NOT NULL AND balance >= 0) OR (kind = 'system' AND balance IS NULL)",
            name=op.f("ck_accounts_balance"),
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_accounts")),
    )
    op.create_table(
        "transfers",
        sa.Column("id", sa.String(35), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("from_account", sa.String(140), nullable=False),
        sa.Column("to_account", sa.String(140), nullable=False),
        sa.Column("source", sa.String(16), nullable=True),
        sa.Column("reference", sa.String(255), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("reverses_transfer_id", sa.String(35), nullable=True),
        sa.Column("reversed_amount", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(140), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('grant', 'spend', 'reversal')", name=op.f("ck_transfers_kind")),
        sa.CheckConstraint("amount > 0", name=op.f("ck_transfers_amount_positive")),
        sa.CheckConstraint("from_account <> to_account", name=op.f("ck_transfers_distinct_accounts")),
        sa.CheckConstraint(
            "reversed_amount >= 0 AND reversed_amount <= amount", name=op.f("ck_transfers_reversed_within_amount")
        ),
        sa.CheckConstraint(
            "(kind = 'reversal') = (reverses_transfer_id IS NOT NULL)", name=op.f("ck_transfers_reversal_has_original")
        ),
        sa.ForeignKeyConstraint(["from_account"], ["accounts.code"], name=op.f("fk_transfers_from_account_accounts")),
        sa.ForeignKeyConstraint(["to_account"], ["accounts.code"], name=op.f("fk_transfers_to_account_accounts")),
        sa.ForeignKeyConstraint(
            ["reverses_transfer_id"], ["transfers.id"], name=op.f("fk_transfers_reverses_transfer_id_transfers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfers")),
        sa.UniqueConstraint("reference", name=op.f("uq_transfers_reference")),
    )
    op.create_index(op.f("ix_transfers_reverses_transfer_id"), "transfers", ["reverses_transfer_id"])
    op.create_index(op.f("ix_transfers_user_id_created_at"), "transfers", ["user_id", "created_at"])
    op.create_table(
        "ledger_entries",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("transfer_id", sa.String(35), nullable=False),
        sa.Column("account", sa.String(140), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("amount <> 0", name=op.f("ck_ledger_entries_amount_nonzero")),
        sa.CheckConstraint(
            "balance_after IS NULL OR balance_after >= 0", name=op.f("ck_ledger_entries_balance_after_not_negative")
        ),
        sa.ForeignKeyConstraint(["account"], ["accounts.code"], name=op.f("fk_ledger_entries_account_accounts")),
        sa.ForeignKeyConstraint(
            ["transfer_id"], ["transfers.id"], name=op.f("fk_ledger_entries_transfer_id_transfers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
        sa.UniqueConstraint("transfer_id", "account", name=op.f("uq_ledger_entries_transfer_id_account")),
    )
    op.create_index(op.f("ix_ledger_entries_account_id"), "ledger_entries", ["account", "id"])
    create_idempotency_records_v1(op)

    now = datetime.now(UTC)
    op.bulk_insert(
        accounts,
        [
            {"code": code, "kind": "system", "balance": None, "created_at": now, "updated_at": now}
            for code in SYSTEM_ACCOUNTS
        ],
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_GUARDS)
    else:
        for statement in SQLITE_GUARDS:
            op.execute(statement)


def downgrade() -> None:
    # A ledger is never dropped by a migration: history is the product.
    raise RuntimeError("the ledger schema cannot be downgraded; restore from a backup instead")
