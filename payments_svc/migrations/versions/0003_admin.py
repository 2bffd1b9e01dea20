"""The audit log, the inbox's re-drive count, refunds' currency, and the indexes of the admin reads.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from svckit.migrations import add_stripe_event_redrives_v2, create_audit_records_v1

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here (not imported from the models): what revenue counts as paid when this migration was written.
PAID = "status IN ('succeeded', 'partially_refunded', 'refunded')"


def upgrade() -> None:
    create_audit_records_v1(op)
    add_stripe_event_redrives_v2(op)
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index("ix_payments_created_at_id", ["created_at", "id"], unique=False)
        batch_op.create_index(
            "ix_payments_paid_created_at",
            ["created_at"],
            unique=False,
            postgresql_where=sa.text(PAID),
            postgresql_include=["currency", "amount_minor"],
            sqlite_where=sa.text(PAID),
        )
    # Refunds keep their payment's currency (revenue sums them without a join); existing ones take it now.
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("currency", sa.String(length=3), nullable=True))
    op.execute("UPDATE refunds SET currency = (SELECT currency FROM payments WHERE payments.id = refunds.payment_id)")
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.alter_column("currency", existing_type=sa.String(length=3), nullable=False)
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.create_index(
            "ix_refunds_created_at_stripe_refund_id", ["created_at", "stripe_refund_id"], unique=False
        )


def downgrade() -> None:
    # The audit log is a permanent record: never dropped by a migration (like the payments themselves).
    raise RuntimeError("the payments schema cannot be downgraded; restore from a backup instead")
