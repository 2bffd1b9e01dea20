"""The audit log, the inbox's re-drive count, when each subscription started, and the indexes the admin reads use.

`started_at` is backfilled from `created_at` for the subscriptions that ever
were live: every live one, and every canceled one that reached Stripe (an
expired checkout never started).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-14
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from svckit.db import UtcDateTime
from svckit.migrations import add_stripe_event_redrives_v2, create_audit_records_v1

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_audit_records_v1(op)
    add_stripe_event_redrives_v2(op)
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("started_at", UtcDateTime(), nullable=True))
        batch_op.create_index(batch_op.f("ix_subscriptions_created_at_id"), ["created_at", "id"], unique=False)
        batch_op.create_index(
            "ix_subscriptions_revenue", ["status", "pause_behavior", "stripe_price_id", "quantity"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_subscriptions_started_at"), ["started_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_subscriptions_ended_at"), ["ended_at"], unique=False)
    op.execute(
        "UPDATE subscriptions SET started_at = created_at WHERE started_at IS NULL AND ("
        "status IN ('trialing', 'active', 'past_due', 'unpaid', 'paused') "
        "OR (status = 'canceled' AND stripe_subscription_id IS NOT NULL))"
    )


def downgrade() -> None:
    # The audit log is a record of what admins did: never dropped by a migration.
    raise RuntimeError("the subscriptions schema cannot be downgraded; restore from a backup instead")
