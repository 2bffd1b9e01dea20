"""Reads and writes of the Subscriptions tables, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from subscriptions_svc import domain
from subscriptions_svc.models import customers, paid_invoices, period_grants, plan_prices, stripe_events, subscriptions
from svckit.db import dialect_insert_for

# Columns stored as they are in the domain record (the enums are converted apart).
PLAIN_COLUMNS = (
    "user_id",
    "plan_id",
    "family",
    "quantity",
    "currency",
    "interval",
    "stripe_price_id",
    "stripe_customer_id",
    "stripe_subscription_id",
    "stripe_item_id",
    "checkout_session_id",
    "pending_until",
    "current_period_start",
    "current_period_end",
    "trial_end",
    "cancel_at_period_end",
    "cancel_at",
    "canceled_at",
    "ended_at",
    "cancellation_reason",
    "pause_resumes_at",
    "periods_granted",
    "started_at",
    "synced_at",
    "created_at",
    "updated_at",
)


def _subscription(row: Any) -> domain.Subscription:
    return domain.Subscription(
        id=row.id,
        status=domain.Status(row.status),
        pause_behavior=domain.PauseBehavior(row.pause_behavior) if row.pause_behavior else None,
        **{name: getattr(row, name) for name in PLAIN_COLUMNS},
    )


def _values(sub: domain.Subscription) -> dict[str, Any]:
    values = {name: getattr(sub, name) for name in PLAIN_COLUMNS}
    values.update(
        status=sub.status.value,
        pause_behavior=sub.pause_behavior.value if sub.pause_behavior else None,
        family_slot=sub.family_slot,
    )
    return values


def _price(row: Any) -> domain.PriceInfo:
    return domain.PriceInfo(
        stripe_price_id=row.stripe_price_id,
        plan_id=row.plan_id,
        family=row.family,
        currency=row.currency,
        interval=row.interval,
        amount_minor=row.amount_minor,
        credits_per_period=row.credits_per_period,
        trial_credits=row.trial_credits,
        active=row.active,
    )


class SubscriptionsRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # --- customers --------------------------------------------------------------------

    def customer(self, user_id: str) -> str | None:
        found = self.conn.execute(select(customers.c.stripe_customer_id).where(customers.c.user_id == user_id))
        return found.scalar_one_or_none()

    def user_of_customer(self, stripe_customer_id: str) -> str | None:
        found = self.conn.execute(
            select(customers.c.user_id).where(customers.c.stripe_customer_id == stripe_customer_id)
        )
        return found.scalar_one_or_none()

    def add_customer(self, user_id: str, stripe_customer_id: str, now: datetime) -> str:
        statement = dialect_insert_for(self.conn.dialect.name, customers).on_conflict_do_nothing(
            index_elements=["user_id"]
        )
        self.conn.execute(statement, {"user_id": user_id, "stripe_customer_id": stripe_customer_id, "created_at": now})
        known = self.customer(user_id)
        assert known is not None
        return known

    # --- plan prices ------------------------------------------------------------------

    def price(self, stripe_price_id: str) -> domain.PriceInfo | None:
        row = self.conn.execute(select(plan_prices).where(plan_prices.c.stripe_price_id == stripe_price_id)).first()
        return _price(row) if row else None

    def active_price(self, plan_id: str, currency: str, interval: str) -> domain.PriceInfo | None:
        p = plan_prices.c
        row = self.conn.execute(
            select(plan_prices).where(
                p.plan_id == plan_id, p.currency == currency, p.interval == interval, p.active.is_(True)
            )
        ).first()
        return _price(row) if row else None

    def active_prices(self) -> list[domain.PriceInfo]:
        rows = self.conn.execute(
            select(plan_prices).where(plan_prices.c.active.is_(True)).order_by(plan_prices.c.plan_id)
        )
        return [_price(row) for row in rows]

    def all_prices(self) -> list[tuple[domain.PriceInfo, str]]:
        rows = self.conn.execute(select(plan_prices))
        return [(_price(row), row.lookup_key) for row in rows]

    def save_price(self, price: domain.PriceInfo, lookup_key: str, now: datetime) -> None:
        values = {
            "plan_id": price.plan_id,
            "family": price.family,
            "lookup_key": lookup_key,
            "currency": price.currency,
            "interval": price.interval,
            "amount_minor": price.amount_minor,
            "credits_per_period": price.credits_per_period,
            "trial_credits": price.trial_credits,
            "active": price.active,
            "synced_at": now,
        }
        statement = dialect_insert_for(self.conn.dialect.name, plan_prices).on_conflict_do_update(
            index_elements=["stripe_price_id"], set_=values
        )
        self.conn.execute(statement, {"stripe_price_id": price.stripe_price_id, **values})

    # --- subscriptions ----------------------------------------------------------------

    def get(self, subscription_id: str, *, lock: bool = False) -> domain.Subscription | None:
        statement = select(subscriptions).where(subscriptions.c.id == subscription_id)
        row = self.conn.execute(statement.with_for_update() if lock else statement).first()
        return _subscription(row) if row else None

    def by_stripe_id(self, stripe_subscription_id: str, *, lock: bool = False) -> domain.Subscription | None:
        statement = select(subscriptions).where(subscriptions.c.stripe_subscription_id == stripe_subscription_id)
        row = self.conn.execute(statement.with_for_update() if lock else statement).first()
        return _subscription(row) if row else None

    def by_checkout_session(self, session_id: str, *, lock: bool = False) -> domain.Subscription | None:
        statement = select(subscriptions).where(subscriptions.c.checkout_session_id == session_id)
        row = self.conn.execute(statement.with_for_update() if lock else statement).first()
        return _subscription(row) if row else None

    def live_in_family(self, user_id: str, family: str, *, lock: bool = False) -> domain.Subscription | None:
        s = subscriptions.c
        statement = select(subscriptions).where(s.user_id == user_id, s.family_slot == family)
        row = self.conn.execute(statement.with_for_update() if lock else statement).first()
        return _subscription(row) if row else None

    def list_for_user(
        self, user_id: str, *, before: tuple[datetime, str] | None, limit: int
    ) -> list[domain.Subscription]:
        return self.list_subscriptions(user_id=user_id, status=None, before=before, limit=limit)

    def list_subscriptions(
        self, *, user_id: str | None, status: domain.Status | None, before: tuple[datetime, str] | None, limit: int
    ) -> list[domain.Subscription]:
        """Newest first (by creation, then id); a user's or everyone's, optionally in one status."""
        s = subscriptions.c
        statement = select(subscriptions)
        if user_id is not None:
            statement = statement.where(s.user_id == user_id)
        if status is not None:
            statement = statement.where(s.status == status.value)
        if before is not None:
            at, ident = before
            statement = statement.where((s.created_at < at) | and_(s.created_at == at, s.id < ident))
        rows = self.conn.execute(statement.order_by(s.created_at.desc(), s.id.desc()).limit(limit))
        return [_subscription(row) for row in rows]

    def add(self, sub: domain.Subscription) -> bool:
        """Insert; False when the user already has a live subscription in the family (or the id exists)."""
        try:
            with self.conn.begin_nested():
                self.conn.execute(insert(subscriptions).values(id=sub.id, **_values(sub)))
        except IntegrityError:
            return False
        return True

    def save(self, sub: domain.Subscription) -> None:
        self.conn.execute(update(subscriptions).where(subscriptions.c.id == sub.id).values(**_values(sub)))

    # --- period grants ----------------------------------------------------------------

    def add_period_grant(
        self,
        *,
        invoice: domain.PaidInvoice,
        subscription: domain.Subscription,
        grant: domain.GrantDue,
        now: datetime,
    ) -> bool:
        """Record the invoice's grant; False if it was recorded before (the invoice is paid once)."""
        statement = (
            dialect_insert_for(self.conn.dialect.name, period_grants)
            .on_conflict_do_nothing(index_elements=["stripe_invoice_id"])
            .returning(period_grants.c.stripe_invoice_id)
        )
        inserted = self.conn.execute(
            statement,
            {
                "stripe_invoice_id": invoice.stripe_invoice_id,
                "subscription_id": subscription.id,
                "user_id": subscription.user_id,
                "credits": grant.credits,
                "kind": grant.kind,
                "period_start": invoice.period_start,
                "period_end": invoice.period_end,
                "created_at": now,
            },
        ).first()
        return inserted is not None

    def period_grants(self, subscription_id: str) -> Sequence[Any]:
        g = period_grants.c
        return self.conn.execute(
            select(period_grants).where(g.subscription_id == subscription_id).order_by(g.period_start)
        ).all()

    # --- metrics ----------------------------------------------------------------------

    def revenue_units(self) -> list[domain.PriceUnits]:
        """Per known price, the units of the subscriptions that count in recurring revenue."""
        s, p = subscriptions.c, plan_prices.c
        units = (
            select(s.stripe_price_id, func.sum(s.quantity).label("units"))
            .where(s.status.in_([status.value for status in domain.BILLING]), s.pause_behavior.is_(None))
            .group_by(s.stripe_price_id)
            .subquery()
        )
        rows = self.conn.execute(
            select(p.currency, p.interval, p.amount_minor, units.c.units).join_from(
                units, plan_prices, p.stripe_price_id == units.c.stripe_price_id
            )
        )
        return [domain.PriceUnits(row.currency, row.interval, row.amount_minor, int(row.units)) for row in rows]

    def count_by_status(self) -> dict[domain.Status, int]:
        s = subscriptions.c
        rows = self.conn.execute(select(s.status, func.count()).group_by(s.status))
        return {domain.Status(status): int(count) for status, count in rows}

    def count_started(self, since: datetime, until: datetime) -> int:
        s = subscriptions.c
        found = self.conn.execute(
            select(func.count()).select_from(subscriptions).where(s.started_at >= since, s.started_at < until)
        )
        return int(found.scalar_one())

    def count_churned(self, since: datetime, until: datetime) -> int:
        s = subscriptions.c
        found = self.conn.execute(
            select(func.count())
            .select_from(subscriptions)
            .where(s.ended_at >= since, s.ended_at < until, s.started_at.is_not(None))
        )
        return int(found.scalar_one())

    def add_paid_invoice(self, invoice: domain.PaidInvoice, subscription_id: str, now: datetime) -> None:
        """Record a paid invoice once (a redelivery changes nothing)."""
        statement = dialect_insert_for(self.conn.dialect.name, paid_invoices).on_conflict_do_nothing(
            index_elements=["stripe_invoice_id"]
        )
        self.conn.execute(
            statement,
            {
                "stripe_invoice_id": invoice.stripe_invoice_id,
                "subscription_id": subscription_id,
                "currency": invoice.currency,
                "amount_paid_minor": invoice.amount_paid,
                "billing_reason": invoice.billing_reason[:32],
                "paid_at": invoice.paid_at or now,
            },
        )

    def daily_invoice_revenue(self, since: datetime, until: datetime) -> list[domain.InvoiceRevenue]:
        """Paid subscription invoices in [since, until) per UTC day and currency."""
        p = paid_invoices.c
        if self.conn.dialect.name == "postgresql":
            day = func.to_char(func.timezone("UTC", p.paid_at), "YYYY-MM-DD")
        else:
            day = func.strftime("%Y-%m-%d", p.paid_at)
        rows = self.conn.execute(
            select(day.label("day"), p.currency, func.sum(p.amount_paid_minor), func.count())
            .where(p.paid_at >= since, p.paid_at < until)
            .group_by(day, p.currency)
        )
        return [domain.InvoiceRevenue(row[1], int(row[2]), int(row[3]), str(row[0])) for row in rows]

    # --- the inbox ----------------------------------------------------------------------

    def lock_event(self, event_id: str) -> str | None:
        """Lock a recorded Stripe event's row (a re-drive rewrites it); its status, or None if unknown."""
        e = stripe_events.c
        found = self.conn.execute(select(e.status).where(e.event_id == event_id).with_for_update())
        return found.scalar_one_or_none()
