"""Stripe answering 500s, 429s, or not at all (beyond our Stripe timeout), through the sandbox's fault injection.

Checkout creation and refunds fail with a retryable problem (503 with Retry-After, or
502/504, always with a reason, never a 500); once Stripe is back the same request
(same Idempotency-Key) succeeds, the outbox catches up (grants, reversals), and
nothing was created twice at Stripe: checkout sessions, customers and refunds are
counted in the sandbox against what was asked for.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.purchase_stack import PurchaseStack, pay_on_hosted_page, purchase_stack, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

GOOD_CARD = "4242 4242 4242 4242"
STRIPE_TIMEOUT_SECONDS = 1.0
RETRYABLE = (502, 503, 504)
# Longer than our Stripe timeout and retries, and shorter than any hang worth the name.
ANSWER_WITHIN_SECONDS = 10.0


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[PurchaseStack]:
    settings = {"STRIPE_TIMEOUT_SECONDS": str(STRIPE_TIMEOUT_SECONDS), "STRIPE_MAX_NETWORK_RETRIES": "1"}
    with purchase_stack(tmp_path, payments_settings=settings) as running:
        yield running


def user() -> str:
    return f"outage-{uuid.uuid4().hex[:10]}"


def checkout(stack: PurchaseStack, buyer: str, key: str) -> httpx.Response:
    return stack.http.post(
        "/api/stripe/create-checkout-session",
        headers={**stack.as_user(buyer), "Idempotency-Key": key},
        json={
            "package_id": "credits-100",
            "success_url": "http://127.0.0.1/billing/checkout/success?session_id={CHECKOUT_SESSION_ID}",
            "cancel_url": "http://127.0.0.1/billing/checkout/cancel",
        },
    )


def refund(stack: PurchaseStack, payment_id: str, key: str, amount_minor: int) -> httpx.Response:
    return stack.http.post(
        f"/api/admin/payments/{payment_id}/refund",
        headers={**stack.as_user("refund-admin", ("user", "admin")), "Idempotency-Key": key},
        json={"amount_minor": amount_minor, "reason": "requested_by_customer"},
    )


def assert_retryable(response: httpx.Response, took: float) -> None:
    assert response.status_code in RETRYABLE, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert body.get("reason"), body
    if response.status_code == 503:
        assert int(response.headers["Retry-After"]) > 0
    assert took < ANSWER_WITHIN_SECONDS, f"answered after {took:.1f}s"


def succeeded(response: httpx.Response, status: int) -> httpx.Response | None:
    """The response when it has `status`, else None (for `wait_for`)."""
    return response if response.status_code == status else None


def timed(call: Any) -> tuple[httpx.Response, float]:
    began = time.monotonic()
    response = call()
    return response, time.monotonic() - began


def stripe_all(stack: PurchaseStack, path: str) -> list[dict[str, Any]]:
    """Every object of a Stripe list endpoint (customers, checkout sessions, refunds)."""
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        data = json.loads(stack.sandbox.client().raw_request("get", path, **params).body)
        found.extend(data["data"])
        if not data["has_more"]:
            return found
        params["starting_after"] = data["data"][-1]["id"]


def customers_of(stack: PurchaseStack, buyer: str) -> list[dict[str, Any]]:
    return [c for c in stripe_all(stack, "/v1/customers") if (c.get("metadata") or {}).get("user_id") == buyer]


def sessions_of(stack: PurchaseStack, buyer: str) -> list[dict[str, Any]]:
    ids = {c["id"] for c in customers_of(stack, buyer)}
    return [s for s in stripe_all(stack, "/v1/checkout/sessions") if s.get("customer") in ids]


def refunds_of(stack: PurchaseStack, payment_intent: str) -> list[dict[str, Any]]:
    return [r for r in stripe_all(stack, "/v1/refunds") if r.get("payment_intent") == payment_intent]


@pytest.mark.parametrize("status", [500, 429, 503])
def test_checkout_during_stripe_errors_is_retryable_and_creates_one_session(stack: PurchaseStack, status: int) -> None:
    buyer, key = user(), uuid.uuid4().hex
    stack.control("faults/failures", method="POST", path_prefix="/v1/", status=str(status), count="1000")
    try:
        for _ in range(3):
            response, took = timed(lambda: checkout(stack, buyer, key))
            assert_retryable(response, took)
    finally:
        stack.sandbox.control("delete", "/faults")
    created = checkout(stack, buyer, key)
    assert created.status_code == 201, created.text
    again = checkout(stack, buyer, key)
    assert again.status_code == 201, again.text
    assert again.json() == created.json()
    assert len(customers_of(stack, buyer)) == 1
    sessions = sessions_of(stack, buyer)
    assert [s["id"] for s in sessions] == [created.json()["checkout_session_id"]]
    # The purchase goes through as usual once Stripe is back.
    assert pay_on_hosted_page(stack, created.json()["url"], GOOD_CARD).paid
    wait_for(lambda: stack.balance(buyer) == 100, "the grant")


def test_a_few_stripe_errors_are_absorbed_by_retries_with_the_same_idempotency_key(stack: PurchaseStack) -> None:
    buyer = user()
    stack.buy(buyer)  # the customer exists: only the session's request meets the fault
    stack.control("faults/failures", method="POST", path_prefix="/v1/checkout/sessions", status="500", count="1")
    created = checkout(stack, buyer, uuid.uuid4().hex)
    assert created.status_code == 201, created.text
    assert stack.sandbox.control("get", "/faults")["failures"] == []  # the fault was met
    assert len(sessions_of(stack, buyer)) == 2
    assert len(customers_of(stack, buyer)) == 1


def test_checkout_when_stripe_does_not_answer_in_time_creates_one_session(stack: PurchaseStack) -> None:
    buyer, key = user(), uuid.uuid4().hex
    stack.buy(buyer)  # the customer exists: only the session's request is held
    hold = stack.control("faults/holds", method="POST", path_prefix="/v1/checkout/sessions")
    try:
        response, took = timed(lambda: checkout(stack, buyer, key))
        assert_retryable(response, took)
        assert took >= STRIPE_TIMEOUT_SECONDS
        held = stack.sandbox.control("get", "/faults")["held_requests"]
        assert len(held) == 1, held  # our retry met Stripe's "still running" for the same idempotency key
    finally:
        released = stack.control("faults/release", hold=hold["id"])
    assert released["released_requests"] == 1
    # The held request ran at Stripe once released: the retry must get that session, not a new one.
    created = wait_for(lambda: succeeded(checkout(stack, buyer, key), 201), "the checkout retried")
    sessions = sessions_of(stack, buyer)
    assert len(sessions) == 2, [s["id"] for s in sessions]
    assert created.json()["checkout_session_id"] in {s["id"] for s in sessions}
    assert len(customers_of(stack, buyer)) == 1


@pytest.mark.parametrize("fault", ["500", "429", "timeout"])
def test_refund_during_a_stripe_outage_is_retryable_refunds_once_and_reverses_once(
    stack: PurchaseStack, fault: str
) -> None:
    buyer = user()
    bought = stack.buy(buyer)
    assert pay_on_hosted_page(stack, bought["url"], GOOD_CARD).paid
    wait_for(lambda: stack.balance(buyer) == 100, "the grant")
    intent = str(stack.stripe.v1.checkout.sessions.retrieve(bought["checkout_session_id"]).payment_intent)
    key = uuid.uuid4().hex
    if fault == "timeout":
        rule = stack.control("faults/holds", method="POST", path_prefix="/v1/refunds")
    else:
        rule = stack.control("faults/failures", method="POST", path_prefix="/v1/refunds", status=fault, count="1000")
    try:
        for _ in range(2):
            response, took = timed(lambda: refund(stack, bought["payment_id"], key, 250))
            assert_retryable(response, took)
    finally:
        if fault == "timeout":
            stack.control("faults/release", hold=rule["id"])
        else:
            stack.sandbox.control("delete", "/faults")
    done = wait_for(lambda: succeeded(refund(stack, bought["payment_id"], key, 250), 201), "the refund retried")
    again = refund(stack, bought["payment_id"], key, 250)
    assert again.status_code == 201, again.text
    assert again.json()["stripe_refund_id"] == done.json()["stripe_refund_id"]
    refunds = refunds_of(stack, intent)
    assert [(r["id"], r["amount"]) for r in refunds] == [(done.json()["stripe_refund_id"], 250)]
    # Half the price refunded: half the credits reversed, once, through the outbox.
    wait_for(lambda: stack.balance(buyer) == 50, "the reversal")
    entries = stack.http.get("/api/credits/ledger", headers=stack.as_user(buyer)).json()["entries"]
    assert sorted(entry["amount"] for entry in entries) == [-50, 100]
