"""Driving subscriptions through the real stack as a frontend and Stripe would, and reading the outcome.

Time moves only for a customer's test clock (the Payments service gives every
new customer one in these tests): `advance` moves it, waits until Stripe (the
sandbox) has billed what fell due and delivered every event, and until the
Subscriptions outbox has sent everything it owes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from svckit.db import make_engine
from svckit.mail import DirectoryMailbox, Email
from tests.support.purchase_stack import PurchaseStack, pay_on_hosted_page, wait_for

GOOD_CARD = "4242 4242 4242 4242"
SUCCESS_URL = "http://127.0.0.1/billing/subscribed?session_id={CHECKOUT_SESSION_ID}"
CANCEL_URL = "http://127.0.0.1/billing/plans"
DAY = 24 * 60 * 60


@dataclass(frozen=True)
class Grant:
    reference: str
    amount: int
    source: str | None


class SubscriptionDriver:
    def __init__(self, stack: PurchaseStack) -> None:
        assert stack.subscriptions is not None, "start the stack with subscriptions=True"
        assert stack.subscriptions_db is not None
        self.stack = stack
        self.credits_engine = make_engine(stack.credits_db, pool_size=1)
        self.subscriptions_engine = make_engine(stack.subscriptions_db, pool_size=1)

    def close(self) -> None:
        self.credits_engine.dispose()
        self.subscriptions_engine.dispose()

    # --- the REST API, as a frontend calls it -------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        user: str,
        body: dict[str, Any] | None = None,
        *,
        roles: tuple[str, ...] = ("user",),
        key: str | None = None,
    ) -> Any:
        headers = self.stack.as_user(user, roles)
        if method != "GET":
            headers["Idempotency-Key"] = key or uuid.uuid4().hex
        return self.stack.http.request(method, path, headers=headers, json=body)

    def start_checkout(self, user: str, plan_id: str = "starter", **extra: Any) -> dict[str, Any]:
        response = self.call(
            "POST",
            "/api/stripe/create-checkout-session",
            user,
            {"plan_id": plan_id, "success_url": SUCCESS_URL, "cancel_url": CANCEL_URL, **extra},
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def subscribe(self, user: str, plan_id: str = "starter", card: str = GOOD_CARD) -> dict[str, Any]:
        """Checkout, paid on the hosted page; returns the subscription once it is live."""
        started = self.start_checkout(user, plan_id)
        paid = pay_on_hosted_page(self.stack, started["url"], card)
        assert paid.paid, paid.page
        return self.wait_subscription(user, started["subscription_id"], lambda s: s["status"] in ("active", "trialing"))

    def subscriptions(self, user: str) -> list[dict[str, Any]]:
        response = self.call("GET", f"/api/subscriptions/{user}", user)
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["subscriptions"]
        return found

    def subscription(self, user: str, subscription_id: str) -> dict[str, Any]:
        return next(s for s in self.subscriptions(user) if s["id"] == subscription_id)

    def wait_subscription(self, user: str, subscription_id: str, ready: Any, what: str = "") -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            sub = self.subscription(user, subscription_id)
            return sub if ready(sub) else None

        return wait_for(check, what or f"subscription {subscription_id} to be ready")

    # --- Stripe's side ----------------------------------------------------------------

    def stripe_subscription(self, sub: dict[str, Any]) -> Any:
        return self.stack.stripe.v1.subscriptions.retrieve(sub["stripe_subscription_id"])

    def clock_of(self, sub: dict[str, Any]) -> str:
        customer = self.stack.stripe.v1.customers.retrieve(str(self.stripe_subscription(sub).customer))
        clock = customer.test_clock
        assert clock, "the customer has no test clock: is PAYMENTS_STRIPE_TEST_CLOCKS on?"
        return str(clock if isinstance(clock, str) else clock.id)

    def advance(self, clock_id: str, seconds: int) -> int:
        """Move the clock on; return once Stripe billed, every event is delivered and our outbox is sent."""
        clocks = self.stack.stripe.v1.test_helpers.test_clocks
        frozen = int(clocks.retrieve(clock_id).frozen_time) + seconds
        clocks.advance(clock_id, params={"frozen_time": frozen})
        wait_for(lambda: clocks.retrieve(clock_id).status == "ready", f"test clock {clock_id} to be ready")
        self.settle()
        return frozen

    def settle(self) -> None:
        self.stack.wait_deliveries_done()
        wait_for(lambda: self.outbox_pending() == 0, "the Subscriptions outbox to be sent")

    # --- what came of it ----------------------------------------------------------------

    def outbox_pending(self) -> int:
        with self.subscriptions_engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM outbox_messages WHERE state = 'pending'")).scalar_one())

    def period_grants(self, user: str) -> list[Grant]:
        """The user's credit grants for subscription invoices, in the Credits ledger."""
        with self.credits_engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT reference, amount, source FROM transfers WHERE user_id = :u AND kind = 'grant' "
                    "AND reference LIKE 'invoice:%' ORDER BY created_at"
                ),
                {"u": user},
            ).all()
        return [Grant(row.reference, row.amount, row.source) for row in rows]

    def period_lots(self, user: str) -> dict[str, tuple[int | None, int, str | None]]:
        """Each subscription grant's lot: reference -> (expiry as a Unix time or None, value_minor, currency)."""
        with self.credits_engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT t.reference, l.expires_at, l.value_minor, l.currency FROM credit_lots l "
                    "JOIN transfers t ON t.id = l.id WHERE l.user_id = :u AND t.reference LIKE 'invoice:%'"
                ),
                {"u": user},
            ).all()
        return {
            row.reference: (int(row.expires_at.timestamp()) if row.expires_at else None, row.value_minor, row.currency)
            for row in rows
        }

    def paid_invoices(self, sub: dict[str, Any]) -> list[Any]:
        invoices = self.stack.stripe.v1.invoices.list(
            params={"subscription": sub["stripe_subscription_id"], "status": "paid", "limit": 100}
        )
        return list(invoices.data)

    def mail(self) -> list[Email]:
        return DirectoryMailbox(self.stack.mailbox).messages()
