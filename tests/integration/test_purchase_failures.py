"""Exactly once whatever happens: duplicated, reordered and forged webhooks, a service down, a process killed.

Every process is real, on PostgreSQL, over real sockets; webhooks are signed
with the endpoint's secret exactly as Stripe signs them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from sqlalchemy import func, select

from billing.credits.v1 import credits_pb2 as pb
from payments_svc.models import credit_shortfalls, stripe_events
from tests.support.grpc_calls import credits_stub, metadata, new_key
from tests.support.purchase_stack import PurchaseStack, pay_on_hosted_page, purchase_stack, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def user() -> str:
    return f"buyer-{uuid.uuid4().hex[:10]}"


def sign(payload: bytes, secret: str, at: int | None = None) -> str:
    """A Stripe-Signature header, computed as Stripe computes it."""
    timestamp = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def ledger_entries(stack: PurchaseStack, buyer: str) -> list[int]:
    body = stack.http.get("/api/credits/ledger", headers=stack.as_user(buyer)).json()
    return [entry["amount"] for entry in body["entries"]]


def inbox_count(stack: PurchaseStack, event_id: str) -> int:
    engine = stack.payments_engine()
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(stripe_events).where(stripe_events.c.event_id == event_id)
                ).scalar_one()
            )
    finally:
        engine.dispose()


def completed_event(stack: PurchaseStack, session_id: str) -> bytes:
    """The checkout.session.completed event of a session, as Stripe's API returns it."""
    events = stack.stripe.v1.events.list(params={"type": "checkout.session.completed", "limit": 100})
    event = next(e for e in events.data if e.data.object["id"] == session_id)
    return json.dumps(event.to_dict()).encode()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PurchaseStack]:
    with purchase_stack(tmp_path_factory.mktemp("failures")) as running:
        yield running


def test_the_same_webhook_a_hundred_times_at_once_grants_once(stack: PurchaseStack) -> None:
    buyer = user()
    session = stack.buy(buyer)
    pay_on_hosted_page(stack, session["url"], "4242 4242 4242 4242")
    wait_for(lambda: stack.balance(buyer) == 100, "the first grant")
    payload = completed_event(stack, session["checkout_session_id"])

    async def deliver_100() -> list[int]:
        async with httpx.AsyncClient(base_url=stack.gateway.url, timeout=60) as client:

            async def deliver() -> int:
                headers = {"Stripe-Signature": sign(payload, stack.webhook_secret), "Content-Type": "application/json"}
                response = await client.post("/api/stripe/webhook", content=payload, headers=headers)
                return response.status_code

            return await asyncio.gather(*(deliver() for _ in range(100)))

    statuses = asyncio.run(deliver_100())
    assert statuses == [200] * 100
    assert ledger_entries(stack, buyer) == [100]
    assert stack.balance(buyer) == 100


def test_reordered_and_duplicated_deliveries_grant_once(stack: PurchaseStack) -> None:
    buyer = user()
    session = stack.buy(buyer)
    with stack.deliveries_held():
        pay_on_hosted_page(stack, session["url"], "4242 4242 4242 4242")
    stack.flush_deliveries(order="reverse", times=3)
    wait_for(lambda: stack.balance(buyer) == 100, "the grant")
    stack.wait_deliveries_done()
    assert ledger_entries(stack, buyer) == [100]
    assert stack.payment(buyer, session["payment_id"])["status"] == "succeeded"


@pytest.mark.parametrize("case", ["forged", "stale", "missing", "oversized", "malformed"])
def test_bad_webhooks_are_refused_and_record_nothing(stack: PurchaseStack, case: str) -> None:
    event_id = f"evt_test_{uuid.uuid4().hex}"
    event = {
        "id": event_id,
        "object": "event",
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": "pi_x", "metadata": {}}},
    }
    payload = json.dumps(event).encode()
    headers = {"Content-Type": "application/json", "Stripe-Signature": sign(payload, stack.webhook_secret)}
    expected = 400
    if case == "forged":
        headers["Stripe-Signature"] = sign(payload, "whsec_not_the_secret")
    elif case == "stale":
        headers["Stripe-Signature"] = sign(payload, stack.webhook_secret, at=int(time.time()) - 301)
    elif case == "missing":
        del headers["Stripe-Signature"]
    elif case == "oversized":
        payload = json.dumps({**event, "padding": "x" * (600 * 1024)}).encode()
        headers["Stripe-Signature"] = sign(payload, stack.webhook_secret)
        expected = 413
    elif case == "malformed":
        payload = b'{"id": "' + event_id.encode() + b'", "type": '
        headers["Stripe-Signature"] = sign(payload, stack.webhook_secret)
    response = stack.http.post("/api/stripe/webhook", content=payload, headers=headers)
    assert response.status_code == expected, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert inbox_count(stack, event_id) == 0


def test_credits_down_the_webhook_is_acknowledged_and_the_grant_lands_later(stack: PurchaseStack) -> None:
    buyer = user()
    session = stack.buy(buyer)
    assert stack.credits.terminate() == 0
    try:
        pay_on_hosted_page(stack, session["url"], "4242 4242 4242 4242")
        wait_for(
            lambda: stack.polled_payment(buyer, session["payment_id"]).get("status") == "succeeded",
            "the payment recorded",
        )
        stack.wait_deliveries_done()
        assert not stack.payment(buyer, session["payment_id"])["credits_granted"]
    finally:
        stack.credits.start_again()
    wait_for(lambda: stack.balance(buyer) == 100, "the grant once Credits is back")
    assert ledger_entries(stack, buyer) == [100]


def test_payments_killed_before_the_grant_grants_once_after_restart(stack: PurchaseStack) -> None:
    buyer = user()
    session = stack.buy(buyer)
    stack.payments.terminate()
    stack.payments.start_again(OUTBOX_RELAY="false")
    pay_on_hosted_page(stack, session["url"], "4242 4242 4242 4242")
    wait_for(
        lambda: stack.polled_payment(buyer, session["payment_id"]).get("status") == "succeeded", "the payment recorded"
    )
    assert stack.payments.process is not None
    stack.payments.process.send_signal(signal.SIGKILL)
    stack.payments.process.wait(timeout=10)
    assert stack.balance(buyer) == 0
    stack.payments.start_again(OUTBOX_RELAY="true")
    wait_for(lambda: stack.balance(buyer) == 100, "the grant after the restart")
    wait_for(lambda: stack.polled_payment(buyer, session["payment_id"]).get("credits_granted"), "the grant confirmed")
    assert ledger_entries(stack, buyer) == [100]


def test_payments_killed_after_credits_granted_grants_once_after_restart(stack: PurchaseStack) -> None:
    buyer = user()
    session = stack.buy(buyer)
    stack.payments.terminate()
    stack.payments.start_again(FAULT_INJECTION="crash-after-grant")
    pay_on_hosted_page(stack, session["url"], "4242 4242 4242 4242")
    assert stack.payments.process is not None
    assert stack.payments.process.wait(timeout=60) == -signal.SIGKILL
    assert stack.balance(buyer) == 100  # Credits applied it; Payments never marked it sent
    stack.payments.start_again(FAULT_INJECTION="")
    wait_for(
        lambda: stack.polled_payment(buyer, session["payment_id"]).get("credits_granted"), "the resent grant confirmed"
    )
    assert ledger_entries(stack, buyer) == [100]


def test_refunding_a_half_spent_package_reverses_what_is_left_and_records_the_shortfall(stack: PurchaseStack) -> None:
    buyer = user()
    session = stack.buy(buyer)
    pay_on_hosted_page(stack, session["url"], "4242 4242 4242 4242")
    wait_for(lambda: stack.balance(buyer) == 100, "the grant")

    async def spend_half() -> None:
        async with grpc.aio.insecure_channel(stack.credits.target) as channel:
            await credits_stub(channel).Spend(
                pb.SpendRequest(user_id=buyer, amount=50, reference=f"job:{new_key()}"),
                metadata=metadata(key=new_key()),
            )

    asyncio.run(spend_half())
    admin = stack.as_user("refund-admin", ("user", "admin"))
    response = stack.http.post(
        f"/api/admin/payments/{session['payment_id']}/refund",
        headers={**admin, "Idempotency-Key": uuid.uuid4().hex},
        json={"reason": "requested_by_customer"},
    )
    assert response.status_code == 201, response.text
    payment = wait_for(
        lambda: (p := stack.polled_payment(buyer, session["payment_id"])).get("credit_shortfall") == 50 and p,
        "the shortfall recorded",
    )
    assert payment["status"] == "refunded"
    assert payment["credits_reversed"] == 100
    assert stack.balance(buyer) == 0
    assert sorted(ledger_entries(stack, buyer)) == [-50, -50, 100]
    check = stack.http.get("/api/admin/credits/ledger-check", headers=admin).json()
    assert check["balanced"]
    engine = stack.payments_engine()
    try:
        with engine.connect() as conn:
            row = conn.execute(
                select(
                    credit_shortfalls.c.requested, credit_shortfalls.c.reversed, credit_shortfalls.c.shortfall
                ).where(credit_shortfalls.c.payment_id == session["payment_id"])
            ).one()
    finally:
        engine.dispose()
    assert tuple(row) == (100, 50, 50)


def test_a_second_refund_of_a_refunded_payment_is_refused(stack: PurchaseStack, tmp_path: Path) -> None:
    buyer = user()
    session = stack.buy(buyer)
    pay_on_hosted_page(stack, session["url"], "4242 4242 4242 4242")
    wait_for(lambda: stack.balance(buyer) == 100, "the grant")
    admin = stack.as_user("refund-admin", ("user", "admin"))
    url = f"/api/admin/payments/{session['payment_id']}/refund"
    first = stack.http.post(url, headers={**admin, "Idempotency-Key": uuid.uuid4().hex}, json={"amount_minor": 500})
    assert first.status_code == 201, first.text
    again = stack.http.post(url, headers={**admin, "Idempotency-Key": uuid.uuid4().hex}, json={})
    assert again.status_code == 400
    assert again.json()["reason"] == "PAYMENT_NOT_REFUNDABLE"
    wait_for(lambda: stack.balance(buyer) == 0, "the credits taken back")
