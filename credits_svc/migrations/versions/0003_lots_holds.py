"""Credit lots (category, priority, expiry, value), the lots each transfer drew from, and holds.

Wallets that held credits before lots existed get one opening lot each, with their
whole balance: paid, never expiring, of no recorded money value. From here on a
wallet's balance always equals the sum of its lots' remaining credits.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from svckit.db import UtcDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KINDS = "kind IN ('grant', 'spend', 'reversal')"
NEW_KINDS = "kind IN ('grant', 'spend', 'reversal', 'expiry', 'hold', 'capture', 'release')"
NEW_ACCOUNTS = ("system:expired", "system:held")

POSTGRES_GUARDS = """
CREATE TRIGGER lot_movements_immutable BEFORE UPDATE OR DELETE ON lot_movements
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER credit_lots_no_delete BEFORE DELETE ON credit_lots
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER credit_lots_fixed_columns BEFORE UPDATE OF
  id, user_id, category, priority, amount, expires_at, value_minor, currency, created_at ON credit_lots
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER credit_holds_no_delete BEFORE DELETE ON credit_holds
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
"""

SQLITE_GUARDS = [
    """CREATE TRIGGER lot_movements_no_update BEFORE UPDATE ON lot_movements
       BEGIN SELECT RAISE(ABORT, 'ledger rows are immutable: UPDATE on lot_movements refused'); END""",
    """CREATE TRIGGER lot_movements_no_delete BEFORE DELETE ON lot_movements
       BEGIN SELECT RAISE(ABORT, 'ledger rows are immutable: DELETE on lot_movements refused'); END""",
    """CREATE TRIGGER credit_lots_no_delete BEFORE DELETE ON credit_lots
       BEGIN SELECT RAISE(ABORT, 'ledger rows are immutable: DELETE on credit_lots refused'); END""",
    """CREATE TRIGGER credit_lots_fixed_columns BEFORE UPDATE OF
       id, user_id, category, priority, amount, expires_at, value_minor, currency, created_at ON credit_lots
       BEGIN SELECT RAISE(ABORT, 'ledger rows are immutable: UPDATE on credit_lots refused'); END""",
    """CREATE TRIGGER credit_holds_no_delete BEFORE DELETE ON credit_holds
       BEGIN SELECT RAISE(ABORT, 'ledger rows are immutable: DELETE on credit_holds refused'); END""",
]


def _widen_transfer_kinds() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.drop_constraint(op.f("ck_transfers_kind"), "transfers", type_="check")
        op.create_check_constraint(op.f("ck_transfers_kind"), "transfers", NEW_KINDS)
        return
    # SQLite cannot alter a CHECK constraint; it documents widening one by editing the
    # stored CREATE TABLE text (https://sqlite.org/lang_altertable.html, "writable_schema").
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.exec_driver_sql(
        "UPDATE sqlite_master SET sql = replace(sql, ?, ?) WHERE type = 'table' AND name = 'transfers'",
        (OLD_KINDS, NEW_KINDS),
    )
    bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def upgrade() -> None:
    _widen_transfer_kinds()
    now = datetime.now(UTC)
    accounts = sa.table(
        "accounts",
        sa.column("code", sa.String),
        sa.column("kind", sa.String),
        sa.column("balance", sa.BigInteger),
        sa.column("created_at", UtcDateTime()),
        sa.column("updated_at", UtcDateTime()),
    )
    op.bulk_insert(
        accounts,
        [
            {"code": code, "kind": "system", "balance": None, "created_at": now, "updated_at": now}
            for code in NEW_ACCOUNTS
        ],
    )
    lots = op.create_table(
        "credit_lots",
        sa.Column("id", sa.String(35), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=True),
        sa.Column("value_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("expired_amount", sa.BigInteger(), nullable=False),
        sa.Column("expired_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("category IN ('paid', 'subscription', 'promotional')", name=op.f("ck_credit_lots_category")),
        sa.CheckConstraint("priority BETWEEN 0 AND 100", name=op.f("ck_credit_lots_priority")),
        sa.CheckConstraint(
            "amount > 0 AND remaining >= 0 AND remaining <= amount", name=op.f("ck_credit_lots_remaining_within_amount")
        ),
        sa.CheckConstraint(
            "expired_amount >= 0 AND expired_amount <= amount", name=op.f("ck_credit_lots_expired_within_amount")
        ),
        sa.CheckConstraint("value_minor >= 0", name=op.f("ck_credit_lots_value_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_lots")),
    )
    op.create_index(
        "ix_credit_lots_open",
        "credit_lots",
        ["user_id", "priority", "expires_at", "created_at", "id"],
        postgresql_where=sa.text("remaining > 0"),
        sqlite_where=sa.text("remaining > 0"),
    )
    op.create_index(
        "ix_credit_lots_expiring",
        "credit_lots",
        ["user_id", "expires_at"],
        postgresql_where=sa.text("remaining > 0 AND expires_at IS NOT NULL"),
        sqlite_where=sa.text("remaining > 0 AND expires_at IS NOT NULL"),
    )
    op.create_index(op.f("ix_credit_lots_expired_at"), "credit_lots", ["expired_at"])
    op.create_index(
        "ix_credit_lots_due",
        "credit_lots",
        ["expires_at"],
        postgresql_where=sa.text("remaining > 0"),
        sqlite_where=sa.text("remaining > 0"),
    )
    op.create_table(
        "lot_movements",
        sa.Column("transfer_id", sa.String(35), nullable=False),
        sa.Column("lot_id", sa.String(35), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.CheckConstraint("amount <> 0", name=op.f("ck_lot_movements_amount_nonzero")),
        sa.ForeignKeyConstraint(["lot_id"], ["credit_lots.id"], name=op.f("fk_lot_movements_lot_id_credit_lots")),
        sa.ForeignKeyConstraint(["transfer_id"], ["transfers.id"], name=op.f("fk_lot_movements_transfer_id_transfers")),
        sa.PrimaryKeyConstraint("transfer_id", "lot_id", name=op.f("pk_lot_movements")),
    )
    op.create_index(op.f("ix_lot_movements_lot_id"), "lot_movements", ["lot_id"])
    op.create_table(
        "credit_holds",
        sa.Column("id", sa.String(35), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("captured", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reference", sa.String(255), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("hold_transfer_id", sa.String(35), nullable=False),
        sa.Column("capture_transfer_id", sa.String(35), nullable=True),
        sa.Column("release_transfer_id", sa.String(35), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("settled_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'captured', 'released', 'expired')", name=op.f("ck_credit_holds_status")
        ),
        sa.CheckConstraint(
            "amount > 0 AND captured >= 0 AND captured <= amount", name=op.f("ck_credit_holds_captured_within_amount")
        ),
        sa.CheckConstraint(
            "(status = 'open') = (settled_at IS NULL)", name=op.f("ck_credit_holds_settled_when_not_open")
        ),
        sa.ForeignKeyConstraint(
            ["hold_transfer_id"], ["transfers.id"], name=op.f("fk_credit_holds_hold_transfer_id_transfers")
        ),
        sa.ForeignKeyConstraint(
            ["capture_transfer_id"], ["transfers.id"], name=op.f("fk_credit_holds_capture_transfer_id_transfers")
        ),
        sa.ForeignKeyConstraint(
            ["release_transfer_id"], ["transfers.id"], name=op.f("fk_credit_holds_release_transfer_id_transfers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_holds")),
        sa.UniqueConstraint("reference", name=op.f("uq_credit_holds_reference")),
    )
    op.create_index(op.f("ix_credit_holds_user_id_status"), "credit_holds", ["user_id", "status"])
    op.create_index(
        "ix_credit_holds_due",
        "credit_holds",
        ["expires_at"],
        postgresql_where=sa.text("status = 'open'"),
        sqlite_where=sa.text("status = 'open'"),
    )
    # Opening lots: what each wallet holds now becomes one lot.
    wallets = op.get_bind().execute(sa.text("SELECT code, balance FROM accounts WHERE kind = 'wallet' AND balance > 0"))
    op.bulk_insert(
        lots,
        [
            {
                "id": "lo_" + uuid.uuid4().hex,
                "user_id": code.removeprefix("user:"),
                "category": "paid",
                "priority": 50,
                "amount": balance,
                "remaining": balance,
                "expires_at": None,
                "value_minor": 0,
                "currency": None,
                "expired_amount": 0,
                "expired_at": None,
                "created_at": now,
            }
            for code, balance in wallets.all()
        ],
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_GUARDS)
    else:
        for statement in SQLITE_GUARDS:
            op.execute(statement)


def downgrade() -> None:
    raise RuntimeError("the ledger schema cannot be downgraded; restore from a backup instead")
