"""Hash chains: seals over transfers and over audit records, and the sealer's watermarks.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-20
"""

from collections.abc import Sequence

from alembic import op

from svckit.migrations import add_audit_chain_v1, create_chain_state_v1, create_seal_table_v1

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_chain_state_v1(op, ["transfers", "audit"])
    create_seal_table_v1(op, "transfer_seals", "transfer_id", 35, ("transfers", "id"))
    add_audit_chain_v1(op)


def downgrade() -> None:
    raise RuntimeError("the ledger schema cannot be downgraded; restore from a backup instead")
