"""Plan prices, customers, subscriptions, period grants, the Stripe event inbox, the outbox.

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
    op.create_table(
        "plan_prices",
        sa.Column("stripe_price_id", sa.String(length=255), nullable=False),
        sa.Column("plan_id", sa.String(length=64), nullable=False),
        sa.Column("family", sa.String(length=64), nullable=False),
        sa.Column("lookup_key", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("interval", sa.String(length=8), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("credits_per_period", sa.BigInteger(), nullable=False),
        sa.Column("trial_credits", sa.BigInteger(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("synced_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint(
            "amount_minor > 0 AND credits_per_period >= 0 AND trial_credits >= 0", name=op.f("ck_plan_prices_amounts")
        ),
        sa.CheckConstraint("interval IN ('month', 'year')", name=op.f("ck_plan_prices_interval")),
        sa.PrimaryKeyConstraint("stripe_price_id", name=op.f("pk_plan_prices")),
    )
    with op.batch_alter_table("plan_prices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_plan_prices_plan_id_currency_interval_active"),
            ["plan_id", "currency", "interval", "active"],
            unique=False,
        )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("plan_id", sa.String(length=64), nullable=False),
        sa.Column("family", sa.String(length=64), nullable=False),
        sa.Column("family_slot", sa.String(length=64), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("interval", sa.String(length=8), nullable=False),
        sa.Column("stripe_price_id", sa.String(length=255), nullable=False),
        sa.Column("stripe_customer_id", sa.String(length=255), nullable=False),
        sa.Column("stripe_subscription_id", sa.String(length=255), nullable=True),
        sa.Column("stripe_item_id", sa.String(length=255), nullable=True),
        sa.Column("checkout_session_id", sa.String(length=255), nullable=True),
        sa.Column("pending_until", UtcDateTime(), nullable=True),
        sa.Column("current_period_start", UtcDateTime(), nullable=True),
        sa.Column("current_period_end", UtcDateTime(), nullable=True),
        sa.Column("trial_end", UtcDateTime(), nullable=True),
        sa.Column("cancel_at_period_end", sa.Boolean(), nullable=False),
        sa.Column("cancel_at", UtcDateTime(), nullable=True),
        sa.Column("canceled_at", UtcDateTime(), nullable=True),
        sa.Column("ended_at", UtcDateTime(), nullable=True),
        sa.Column("cancellation_reason", sa.String(length=500), nullable=True),
        sa.Column("pause_behavior", sa.String(length=24), nullable=True),
        sa.Column("pause_resumes_at", UtcDateTime(), nullable=True),
        sa.Column("periods_granted", sa.Integer(), nullable=False),
        sa.Column("synced_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("family_slot IS NULL OR family_slot = family", name=op.f("ck_subscriptions_family_slot")),
        sa.CheckConstraint(
            "pause_behavior IS NULL OR pause_behavior IN ('void', 'keep_as_draft', 'mark_uncollectible')",
            name=op.f("ck_subscriptions_pause_behavior"),
        ),
        sa.CheckConstraint("periods_granted >= 0", name=op.f("ck_subscriptions_periods_granted")),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_subscriptions_quantity")),
        sa.CheckConstraint(
            "status IN ('incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due', 'canceled', "
            "'unpaid', 'paused')",
            name=op.f("ck_subscriptions_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint("checkout_session_id", name=op.f("uq_subscriptions_checkout_session_id")),
        sa.UniqueConstraint("stripe_subscription_id", name=op.f("uq_subscriptions_stripe_subscription_id")),
    )
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_subscriptions_status_created_at"), ["status", "created_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_subscriptions_user_id_created_at"), ["user_id", "created_at"], unique=False
        )
        batch_op.create_index("uq_subscriptions_user_id_family_slot", ["user_id", "family_slot"], unique=True)
    op.create_table(
        "period_grants",
        sa.Column("stripe_invoice_id", sa.String(length=255), nullable=False),
        sa.Column("subscription_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("period_start", UtcDateTime(), nullable=False),
        sa.Column("period_end", UtcDateTime(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("credits > 0", name=op.f("ck_period_grants_credits")),
        sa.CheckConstraint("kind IN ('period', 'trial')", name=op.f("ck_period_grants_kind")),
        sa.ForeignKeyConstraint(
            ["subscription_id"], ["subscriptions.id"], name=op.f("fk_period_grants_subscription_id_subscriptions")
        ),
        sa.PrimaryKeyConstraint("stripe_invoice_id", name=op.f("pk_period_grants")),
    )
    with op.batch_alter_table("period_grants", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_period_grants_subscription_id"), ["subscription_id"], unique=False)
    create_outbox_messages_v1(op)
    create_stripe_events_v1(op)


def downgrade() -> None:
    # Subscription records and their grants are billing history: never dropped by a migration.
    raise RuntimeError("the subscriptions schema cannot be downgraded; restore from a backup instead")
