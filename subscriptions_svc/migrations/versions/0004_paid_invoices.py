"""Paid subscription invoices: the subscription revenue of the admin dashboard.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from svckit.db import UtcDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "paid_invoices",
        sa.Column("stripe_invoice_id", sa.String(length=255), nullable=False),
        sa.Column("subscription_id", sa.String(length=36), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_paid_minor", sa.BigInteger(), nullable=False),
        sa.Column("billing_reason", sa.String(length=32), nullable=False),
        sa.Column("paid_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("amount_paid_minor >= 0", name=op.f("ck_paid_invoices_amount")),
        sa.ForeignKeyConstraint(
            ["subscription_id"], ["subscriptions.id"], name=op.f("fk_paid_invoices_subscription_id_subscriptions")
        ),
        sa.PrimaryKeyConstraint("stripe_invoice_id", name=op.f("pk_paid_invoices")),
    )
    with op.batch_alter_table("paid_invoices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_paid_invoices_paid_at_currency"), ["paid_at", "currency"], unique=False)


def downgrade() -> None:
    raise RuntimeError("the subscriptions schema cannot be downgraded; restore from a backup instead")
