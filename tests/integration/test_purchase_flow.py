"""Buying credits end to end: the gateway, Payments, the Stripe sandbox's hosted page, its signed webhooks, Credits.

Every process is real, on PostgreSQL, over real sockets; Payments talks to the
sandbox through the real `stripe` library.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.purchase_stack import PurchaseStack, pay_on_hosted_page, purchase_stack, settle, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PurchaseStack]:
    with purchase_stack(tmp_path_factory.mktemp("purchase")) as running:
        yield running


def user() -> str:
    return f"buyer-{uuid.uuid4().hex[:10]}"


def test_buying_credits_end_to_end(stack: PurchaseStack) -> None:
    buyer = user()
    session = stack.buy(buyer)
    assert stack.balance(buyer) == 0
    outcome = pay_on_hosted_page(stack, session["url"], "4242 4242 4242 4242")
    assert outcome.paid
    wait_for(lambda: stack.balance(buyer) == 100, "the credits in the wallet")
    payment = wait_for(
        lambda: (p := stack.polled_payment(buyer, session["payment_id"])).get("credits_granted") and p,
        "the grant confirmed",
    )
    assert payment["status"] == "succeeded"
    assert payment["receipt_url"]
    assert [change["status"] for change in payment["history"]] == ["pending", "succeeded"]
    ledger = stack.http.get("/api/credits/ledger", headers=stack.as_user(buyer)).json()
    assert [(e["amount"], e["reference"]) for e in ledger["entries"]] == [(100, f"payment:{session['payment_id']}")]
    listed = stack.http.get("/api/payments", headers=stack.as_user(buyer)).json()
    assert [p["id"] for p in listed["payments"]] == [session["payment_id"]]


def test_a_declined_card_grants_nothing(stack: PurchaseStack) -> None:
    buyer = user()
    session = stack.buy(buyer)
    outcome = pay_on_hosted_page(stack, session["url"], "4000 0000 0000 0002")
    assert not outcome.paid
    assert "declined" in outcome.page.lower()
    wait_for(
        lambda: stack.polled_payment(buyer, session["payment_id"]).get("status") == "failed", "the failure recorded"
    )
    assert stack.balance(buyer) == 0


def test_a_delayed_payment_grants_only_after_it_succeeds(stack: PurchaseStack) -> None:
    buyer = user()
    session = stack.buy(buyer)
    outcome = pay_on_hosted_page(stack, session["url"], stack.delayed_card)
    assert outcome.paid
    wait_for(
        lambda: stack.polled_payment(buyer, session["payment_id"]).get("status") == "processing",
        "the payment processing",
    )
    assert stack.balance(buyer) == 0
    settle(stack, session["checkout_session_id"], succeed=True)
    wait_for(lambda: stack.balance(buyer) == 100, "the credits after the delayed success")
    assert stack.payment(buyer, session["payment_id"])["status"] == "succeeded"


def test_another_users_payment_is_not_readable(stack: PurchaseStack) -> None:
    buyer = user()
    session = stack.buy(buyer)
    response = stack.http.get(f"/api/payments/{session['payment_id']}", headers=stack.as_user(user()))
    assert response.status_code == 403
    response = stack.http.get("/api/payments", params={"user_id": buyer}, headers=stack.as_user(user()))
    assert response.status_code == 403


def test_checkout_may_only_send_the_customer_to_an_allowed_origin(stack: PurchaseStack) -> None:
    response = stack.http.post(
        "/api/stripe/create-checkout-session",
        headers={**stack.as_user(user()), "Idempotency-Key": uuid.uuid4().hex},
        json={"package_id": "credits-100", "success_url": "https://evil.example/x", "cancel_url": "http://127.0.0.1/"},
    )
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["success_url"]


def test_a_create_call_retried_with_its_key_is_the_same_session(stack: PurchaseStack, tmp_path: Path) -> None:
    buyer, key = user(), uuid.uuid4().hex
    first = stack.buy(buyer, key=key)
    again = stack.buy(buyer, key=key)
    assert first == again
    sessions = stack.stripe.v1.checkout.sessions.list(params={"limit": 100})
    assert sum(1 for s in sessions.data if s.id == first["checkout_session_id"]) == 1


def test_an_event_no_service_acts_on_is_acknowledged(stack: PurchaseStack) -> None:
    event = {
        "id": f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": "customer.created",
        "data": {"object": {"id": "cus_x", "object": "customer"}},
    }
    payload = json.dumps(event).encode()
    timestamp = int(time.time())
    digest = hmac.new(stack.webhook_secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    response = stack.http.post(
        "/api/stripe/webhook",
        content=payload,
        headers={"Stripe-Signature": f"t={timestamp},v1={digest}", "Content-Type": "application/json"},
    )
    assert response.status_code == 200
    assert response.json() == {"received": True, "handled": False}


def test_admins_list_payments_by_status(stack: PurchaseStack) -> None:
    buyer = user()
    paid = stack.buy(buyer)
    pay_on_hosted_page(stack, paid["url"], "4242 4242 4242 4242")
    unpaid = stack.buy(buyer)
    wait_for(lambda: stack.polled_payment(buyer, paid["payment_id"]).get("status") == "succeeded", "the payment")
    admin = stack.as_user("payments-admin", ("user", "admin"))
    listed = stack.http.get("/api/admin/payments", params={"user_id": buyer, "status": "succeeded"}, headers=admin)
    assert listed.status_code == 200, listed.text
    assert [p["id"] for p in listed.json()["payments"]] == [paid["payment_id"]]
    everyone = stack.http.get("/api/admin/payments", params={"status": "pending"}, headers=admin).json()
    assert unpaid["payment_id"] in [p["id"] for p in everyone["payments"]]
    assert stack.http.get("/api/admin/payments", headers=stack.as_user(buyer)).status_code == 403


def test_concurrent_first_purchases_make_one_stripe_customer(stack: PurchaseStack) -> None:
    buyer = user()

    async def buy_ten() -> list[dict[str, str]]:
        async with httpx.AsyncClient(base_url=stack.gateway.url, timeout=60) as client:

            async def buy() -> dict[str, str]:
                response = await client.post(
                    "/api/stripe/create-checkout-session",
                    headers={**stack.as_user(buyer), "Idempotency-Key": uuid.uuid4().hex},
                    json={
                        "package_id": "credits-100",
                        "success_url": "http://127.0.0.1/",
                        "cancel_url": "http://127.0.0.1/",
                    },
                )
                assert response.status_code == 201, response.text
                body: dict[str, str] = response.json()
                return body

            return await asyncio.gather(*(buy() for _ in range(10)))

    sessions = asyncio.run(buy_ten())
    customers = {stack.stripe.v1.checkout.sessions.retrieve(s["checkout_session_id"]).customer for s in sessions}
    assert len(customers) == 1
    assert len({s["payment_id"] for s in sessions}) == 10
