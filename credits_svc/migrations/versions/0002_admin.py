"""Admin reads: hourly credit totals with the rollup's watermark, transfers by time, the audit log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-08
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from svckit.db import UtcDateTime
from svckit.migrations import create_audit_records_v1

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_transfers_created_at_id"), "transfers", ["created_at", "id"])
    op.create_table(
        "ledger_hourly_totals",
        sa.Column("hour", UtcDateTime(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount >= 0 AND count >= 0", name=op.f("ck_ledger_hourly_totals_not_negative")),
        sa.PrimaryKeyConstraint("hour", "kind", "source", name=op.f("pk_ledger_hourly_totals")),
    )
    state = op.create_table(
        "ledger_rollup_state",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("last_entry_id", sa.BigInteger(), nullable=False),
        sa.Column("wallet_net", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_ledger_rollup_state")),
    )
    # The one row the rollup claims; nothing rolled up yet (ledger entry ids start at 1).
    op.bulk_insert(state, [{"name": "totals", "last_entry_id": 0, "wallet_net": 0, "updated_at": datetime.now(UTC)}])
    create_audit_records_v1(op)


def downgrade() -> None:
    raise RuntimeError("the ledger schema cannot be downgraded; restore from a backup instead")
