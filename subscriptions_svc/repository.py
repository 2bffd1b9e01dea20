"""Reads and writes of the Subscriptions tables, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from subscriptions_svc import domain
from subscriptions_svc.models import customers, period_grants, plan_prices, subscriptions
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
        s = subscriptions.c
        statement = select(subscriptions).where(s.user_id == user_id)
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
