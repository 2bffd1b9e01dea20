"""The Subscriptions database: plan prices synced to Stripe, customers, subscriptions, the period
grants each paid invoice owes, the Stripe event inbox, the outbox, idempotency records, and the
audit log of admin actions.

A subscription row mirrors the newest state Stripe reported (`synced_at` is when
that state was read) plus what only this service knows: whose it is and what a
cancellation's reason was. `family_slot` is the plan family while the
subscription is live and NULL once it has ended: its unique index with the user
is what allows one live subscription per user and plan family, however many
requests race.

`started_at` is when the subscription began (see `domain.mark_started`): NULL
until it is first seen live. It and `ended_at` are what the metrics count as
new and churned subscriptions.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, MetaData, String, Table
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from svckit.audit import audit_table
from svckit.audit_chain import AuditChain, audit_seals_table
from svckit.chain import chain_state_table
from svckit.db import NAMING_CONVENTION, UtcDateTime
from svckit.idempotency import idempotency_table
from svckit.inbox import inbox_table
from svckit.outbox import outbox_table

STATUSES = "'incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due', 'canceled', 'unpaid', 'paused'"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Customer(Base):
    """Each user's Stripe customer, as the Payments service created it (one per user, shared)."""

    __tablename__ = "customers"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    stripe_customer_id: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class PlanPrice(Base):
    """A Stripe price of a plan, written by the plan sync. Retired prices stay: subscriptions still bill on them."""

    __tablename__ = "plan_prices"

    stripe_price_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    plan_id: Mapped[str] = mapped_column(String(64))
    family: Mapped[str] = mapped_column(String(64))
    lookup_key: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    interval: Mapped[str] = mapped_column(String(8))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    credits_per_period: Mapped[int] = mapped_column(BigInteger)
    trial_credits: Mapped[int] = mapped_column(BigInteger)
    active: Mapped[bool] = mapped_column(Boolean)
    synced_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        CheckConstraint("interval IN ('month', 'year')", name="interval"),
        CheckConstraint("amount_minor > 0 AND credits_per_period >= 0 AND trial_credits >= 0", name="amounts"),
        Index(None, "plan_id", "currency", "interval", "active"),
    )


class Subscription(Base):
    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128))
    plan_id: Mapped[str] = mapped_column(String(64))
    family: Mapped[str] = mapped_column(String(64))
    family_slot: Mapped[str | None] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(24))
    currency: Mapped[str] = mapped_column(String(3))
    interval: Mapped[str] = mapped_column(String(8))
    stripe_price_id: Mapped[str] = mapped_column(String(255))
    stripe_customer_id: Mapped[str] = mapped_column(String(255))
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_item_id: Mapped[str | None] = mapped_column(String(255))
    checkout_session_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    # Until when an unfinished checkout holds the family slot.
    pending_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    current_period_start: Mapped[datetime | None] = mapped_column(UtcDateTime())
    current_period_end: Mapped[datetime | None] = mapped_column(UtcDateTime())
    trial_end: Mapped[datetime | None] = mapped_column(UtcDateTime())
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean)
    cancel_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    canceled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    cancellation_reason: Mapped[str | None] = mapped_column(String(500))
    pause_behavior: Mapped[str | None] = mapped_column(String(24))
    pause_resumes_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    periods_granted: Mapped[int] = mapped_column(Integer)
    # When it began: first seen trialing, active or otherwise live (NULL while it never was).
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # When the state above was read from Stripe: an older reading never overwrites a newer one.
    synced_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        CheckConstraint(f"status IN ({STATUSES})", name="status"),
        CheckConstraint("quantity > 0", name="quantity"),
        CheckConstraint("periods_granted >= 0", name="periods_granted"),
        CheckConstraint("family_slot IS NULL OR family_slot = family", name="family_slot"),
        CheckConstraint(
            "pause_behavior IS NULL OR pause_behavior IN ('void', 'keep_as_draft', 'mark_uncollectible')",
            name="pause_behavior",
        ),
        Index("uq_subscriptions_user_id_family_slot", "user_id", "family_slot", unique=True),
        Index(None, "user_id", "created_at"),
        Index(None, "status", "created_at"),
        # Everyone's subscriptions, newest first (admins).
        Index(None, "created_at", "id"),
        # Recurring revenue: the units per price of the subscriptions that bill (index-only).
        Index("ix_subscriptions_revenue", "status", "pause_behavior", "stripe_price_id", "quantity"),
        # New and churned subscriptions in a time range.
        Index(None, "started_at"),
        Index(None, "ended_at"),
    )


class PeriodGrant(Base):
    """The credits one paid subscription invoice grants: one row per invoice, never two."""

    __tablename__ = "period_grants"

    stripe_invoice_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    user_id: Mapped[str] = mapped_column(String(128))
    credits: Mapped[int] = mapped_column(BigInteger)
    # "period" (a paid period) or "trial" (a trial's credits).
    kind: Mapped[str] = mapped_column(String(8))
    period_start: Mapped[datetime] = mapped_column(UtcDateTime())
    period_end: Mapped[datetime] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        CheckConstraint("credits > 0", name="credits"),
        CheckConstraint("kind IN ('period', 'trial')", name="kind"),
    )


class PaidInvoice(Base):
    """Every paid subscription invoice, once: the subscription revenue of the admin dashboard."""

    __tablename__ = "paid_invoices"

    stripe_invoice_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id"))
    currency: Mapped[str] = mapped_column(String(3))
    amount_paid_minor: Mapped[int] = mapped_column(BigInteger)
    billing_reason: Mapped[str] = mapped_column(String(32))
    paid_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        CheckConstraint("amount_paid_minor >= 0", name="amount"),
        Index(None, "paid_at", "currency"),
    )


metadata = Base.metadata
idempotency_records = idempotency_table(metadata)
stripe_events = inbox_table(metadata)
outbox_messages = outbox_table(metadata)
audit_records = audit_table(metadata)
chain_state = chain_state_table(metadata)
audit_seals = audit_seals_table(metadata)
# The hash chain over the audit log (svckit.audit_chain).
AUDIT_CHAIN = AuditChain(audit_records, audit_seals, chain_state)
customers = cast(Table, Customer.__table__)
plan_prices = cast(Table, PlanPrice.__table__)
subscriptions = cast(Table, Subscription.__table__)
period_grants = cast(Table, PeriodGrant.__table__)
paid_invoices = cast(Table, PaidInvoice.__table__)
