"""Shared fixtures for the hostile-input tests: one whole stack for the session, tokens, and a user with data.

The stack (sandbox, Credits, Payments, Subscriptions, gateway) starts once, on PostgreSQL databases whose URLs
carry a password (PostgreSQL's trust authentication ignores it), so that the log checks can look for it.
Every token a test mints goes through `Tokens`, so the log checks know each one that was sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.support.databases import ADMIN_URL, postgres_database, postgres_problem
from tests.support.gateway import token
from tests.support.purchase_stack import PurchaseStack, purchase_stack, wait_for
from tests.support.subscriptions import CANCEL_URL, SUCCESS_URL, SubscriptionDriver

DATABASE_PASSWORD = f"pg-pass-{uuid.uuid4().hex}"
GOOD_CARD = "4242 4242 4242 4242"


def with_password(url: str, password: str = DATABASE_PASSWORD) -> str:
    """The SQLAlchemy URL with `password` (unless it has one already)."""
    parsed = make_url(url)
    if parsed.password:
        return url
    return parsed.set(password=password).render_as_string(hide_password=False)


@contextmanager
def passworded_database(prefix: str = "billing_test") -> Iterator[str]:
    with postgres_database(prefix) as url:
        yield with_password(url)


@dataclass
class Tokens:
    """Mints JWTs (good and bad) and remembers every one, for the log checks."""

    minted: set[str] = field(default_factory=set)

    def remember(self, value: str) -> str:
        self.minted.add(value)
        return value

    def token(self, user_id: str, roles: Sequence[str] = ("user",), **bad: Any) -> str:
        return self.remember(token(user_id, roles, **bad))

    def bearer(self, user_id: str, roles: Sequence[str] = ("user",)) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user_id, roles)}"}

    def admin(self, user_id: str = "security-admin") -> dict[str, str]:
        return self.bearer(user_id, ("user", "admin"))


@dataclass(frozen=True)
class Customer:
    """Personal data typed on the sandbox's hosted page."""

    email: str
    name: str
    card: str = GOOD_CARD


def new_customer() -> Customer:
    tag = uuid.uuid4().hex[:10]
    return Customer(email=f"pii-{tag}@example.org", name=f"Zelda Quux{tag}")


@dataclass
class Victim:
    """User A, with a paid credit purchase and a live subscription, made through the stack."""

    user_id: str
    payment_id: str
    subscription_id: str
    balance: int
    customers: list[Customer]


@dataclass
class SecurityStack:
    stack: PurchaseStack
    tokens: Tokens
    customers: list[Customer] = field(default_factory=list)  # every customer whose data went in

    @property
    def http(self) -> httpx.Client:
        return self.stack.http

    def pay(self, url: str, customer: Customer) -> str:
        """Pay on the hosted checkout page as `customer`; the page it sends the browser to."""
        self.customers.append(customer)
        page = self.http.get(url)
        assert page.status_code == 200, page.text
        submitted = self.http.post(
            url,
            data={
                "email": customer.email,
                "card_number": customer.card,
                "card_expiry": "12 / 34",
                "card_cvc": "123",
                "cardholder_name": customer.name,
            },
            follow_redirects=False,
        )
        assert submitted.status_code == 303, submitted.text
        return str(submitted.headers["location"])

    def buy_credits(self, user_id: str, customer: Customer) -> str:
        """A paid purchase of 100 credits; the payment id, once the credits are in the wallet."""
        response = self.http.post(
            "/api/stripe/create-checkout-session",
            headers={**self.tokens.bearer(user_id), "Idempotency-Key": uuid.uuid4().hex},
            json={
                "package_id": "credits-100",
                "success_url": "http://127.0.0.1/billing/checkout/success?session_id={CHECKOUT_SESSION_ID}",
                "cancel_url": "http://127.0.0.1/billing/checkout/cancel",
            },
        )
        assert response.status_code == 201, response.text
        session = response.json()
        self.pay(session["url"], customer)
        wait_for(lambda: self.balance(user_id) >= 100, "the purchased credits")
        return str(session["payment_id"])

    def subscribe(self, user_id: str, customer: Customer) -> str:
        response = self.http.post(
            "/api/stripe/create-checkout-session",
            headers={**self.tokens.bearer(user_id), "Idempotency-Key": uuid.uuid4().hex},
            json={"plan_id": "starter", "success_url": SUCCESS_URL, "cancel_url": CANCEL_URL},
        )
        assert response.status_code == 201, response.text
        started = response.json()
        self.pay(started["url"], customer)

        def live() -> bool:
            listed = self.http.get(f"/api/subscriptions/{user_id}", headers=self.tokens.bearer(user_id))
            return listed.status_code == 200 and any(
                s["id"] == started["subscription_id"] and s["status"] in ("active", "trialing")
                for s in listed.json()["subscriptions"]
            )

        wait_for(live, "the subscription to be live")
        return str(started["subscription_id"])

    def balance(self, user_id: str) -> int:
        response = self.http.get("/api/credits/balance", headers=self.tokens.bearer(user_id))
        assert response.status_code == 200, response.text
        return int(response.json()["balance"])

    def log_files(self) -> list[Path]:
        """Every log file the stack's processes wrote."""
        return sorted(self.stack.workdir.glob("*.log"))


@pytest.fixture(scope="session")
def security(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecurityStack]:
    if postgres_problem() is not None:
        pytest.skip(f"PostgreSQL not reachable at {ADMIN_URL}")
    workdir = tmp_path_factory.mktemp("security")
    with purchase_stack(workdir, subscriptions=True, databases=passworded_database) as stack:
        yield SecurityStack(stack=stack, tokens=Tokens())


@pytest.fixture(scope="session")
def victim(security: SecurityStack) -> Victim:
    user_id = f"victim-{uuid.uuid4().hex[:10]}"
    buyer, subscriber = new_customer(), new_customer()
    payment_id = security.buy_credits(user_id, buyer)
    subscription_id = security.subscribe(user_id, subscriber)
    # The subscription's first credits arrive through the Subscriptions outbox: wait for them.
    driver = SubscriptionDriver(security.stack)
    try:
        driver.settle()
        # Both grants must have landed before the tests watch the ledger: the purchase's (the payment
        # says so once Credits confirmed it) and the subscription's (the balance is then above 100).
        wait_for(
            lambda: security.stack.polled_payment(user_id, payment_id).get("credits_granted"),
            "the purchase's credits",
        )
        wait_for(lambda: security.balance(user_id) > 100, "the subscription's credits")
    finally:
        driver.close()
    return Victim(
        user_id=user_id,
        payment_id=payment_id,
        subscription_id=subscription_id,
        balance=security.balance(user_id),
        customers=[buyer, subscriber],
    )
