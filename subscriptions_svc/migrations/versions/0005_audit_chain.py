"""The hash chain over the audit log: record ordinals, seals, the sealer's watermark.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-20
"""

from collections.abc import Sequence

from alembic import op

from svckit.migrations import add_audit_chain_v1, create_chain_state_v1

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_chain_state_v1(op, ["audit"])
    add_audit_chain_v1(op)


def downgrade() -> None:
    raise RuntimeError("the audit log cannot be downgraded; restore from a backup instead")
