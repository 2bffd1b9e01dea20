"""Payments, customers, status history, refunds, credit shortfalls, the Stripe event inbox, the outbox.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from svckit.db import UtcDateTime
from svckit.migrations import create_outbox_messages_v1, create_stripe_events_v1

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("stripe_customer_id", sa.String(length=255), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_customers")),
        sa.UniqueConstraint("stripe_customer_id", name=op.f("uq_customers_stripe_customer_id")),
    )
    create_outbox_messages_v1(op)

    op.create_table(
        "payments",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("package_id", sa.String(length=64), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("flow", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("stripe_checkout_session_id", sa.String(length=255), nullable=True),
        sa.Column("stripe_payment_intent_id", sa.String(length=255), nullable=True),
        sa.Column("stripe_charge_id", sa.String(length=255), nullable=True),
        sa.Column("receipt_url", sa.String(length=2048), nullable=True),
        sa.Column("amount_refunded_minor", sa.BigInteger(), nullable=False),
        sa.Column("credits_granted", sa.Boolean(), nullable=False),
        sa.Column("credits_reversed", sa.BigInteger(), nullable=False),
        sa.Column("credit_shortfall", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("flow IN ('checkout', 'payment_intent')", name=op.f("ck_payments_flow")),
        sa.CheckConstraint(
            "status IN ('pending', 'processing', 'succeeded', 'failed', 'expired', 'canceled', "
            "'partially_refunded', 'refunded')",
            name=op.f("ck_payments_status"),
        ),
        sa.CheckConstraint(
            "amount_refunded_minor >= 0 AND amount_refunded_minor <= amount_minor", name=op.f("ck_payments_refunded")
        ),
        sa.CheckConstraint(
            "credit_shortfall >= 0 AND credit_shortfall <= credits_reversed", name=op.f("ck_payments_shortfall")
        ),
        sa.CheckConstraint("credits > 0 AND amount_minor > 0", name=op.f("ck_payments_positive")),
        sa.CheckConstraint("credits_reversed >= 0 AND credits_reversed <= credits", name=op.f("ck_payments_reversed")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("stripe_checkout_session_id", name=op.f("uq_payments_stripe_checkout_session_id")),
        sa.UniqueConstraint("stripe_payment_intent_id", name=op.f("uq_payments_stripe_payment_intent_id")),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payments_status_created_at"), ["status", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_payments_user_id_created_at"), ["user_id", "created_at"], unique=False)

    create_stripe_events_v1(op)

    op.create_table(
        "credit_shortfalls",
        sa.Column("reference", sa.String(length=255), nullable=False),
        sa.Column("payment_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("requested", sa.BigInteger(), nullable=False),
        sa.Column("reversed", sa.BigInteger(), nullable=False),
        sa.Column("shortfall", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["payment_id"], ["payments.id"], name=op.f("fk_credit_shortfalls_payment_id_payments")),
        sa.PrimaryKeyConstraint("reference", name=op.f("pk_credit_shortfalls")),
    )
    with op.batch_alter_table("credit_shortfalls", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_credit_shortfalls_payment_id"), ["payment_id"], unique=False)

    op.create_table(
        "payment_status_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("payment_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_payment_status_changes_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_status_changes")),
    )
    with op.batch_alter_table("payment_status_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payment_status_changes_payment_id_id"), ["payment_id", "id"], unique=False)

    op.create_table(
        "refunds",
        sa.Column("stripe_refund_id", sa.String(length=255), nullable=False),
        sa.Column("payment_id", sa.String(length=36), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=140), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["payment_id"], ["payments.id"], name=op.f("fk_refunds_payment_id_payments")),
        sa.PrimaryKeyConstraint("stripe_refund_id", name=op.f("pk_refunds")),
    )
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_refunds_payment_id"), ["payment_id"], unique=False)


def downgrade() -> None:
    # Payment records are the history of money received: never dropped by a migration.
    raise RuntimeError("the payments schema cannot be downgraded; restore from a backup instead")
