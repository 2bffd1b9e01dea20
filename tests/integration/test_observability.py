"""Metrics, traces and logs of the real processes: the gateway, Payments and Credits, as deployed.

Counters are compared before and after known requests (never as absolute values), outbox gauges are polled
with a deadline, and the trace context is followed through the JSON logs of each hop.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import ManagedProcess
from tests.support.purchase_stack import PurchaseStack, pay_on_hosted_page, purchase_stack, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
HEX32 = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PurchaseStack]:
    with purchase_stack(tmp_path_factory.mktemp("observability"), payments_settings={"LOG_FORMAT": "json"}) as running:
        # The stack's Credits logs text; the trace checks read its JSON lines.
        assert running.credits.terminate() == 0
        running.credits.start_again(LOG_FORMAT="json")
        yield running


def records(process: ManagedProcess) -> list[dict[str, Any]]:
    lines = process.logs().split("\n")[:-1]
    found = []
    for line in lines:
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


def scrape(process: ManagedProcess) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    port = json.loads(process.ready_file.read_text())["metrics_port"]
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def user() -> str:
    return f"observed-{uuid.uuid4().hex[:10]}"


def signed_post(stack: PurchaseStack, payload: bytes, secret: str | None = None) -> httpx.Response:
    timestamp = int(time.time())
    key = (secret or stack.webhook_secret).encode()
    digest = hmac.new(key, f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return stack.http.post(
        "/api/stripe/webhook",
        content=payload,
        headers={"Stripe-Signature": f"t={timestamp},v1={digest}", "Content-Type": "application/json"},
    )


def checkout(stack: PurchaseStack, buyer: str, headers: dict[str, str]) -> httpx.Response:
    return stack.http.post(
        "/api/stripe/create-checkout-session",
        headers={**stack.as_user(buyer), "Idempotency-Key": uuid.uuid4().hex, **headers},
        json={
            "package_id": "credits-100",
            "success_url": "http://127.0.0.1/billing/checkout/success?session_id={CHECKOUT_SESSION_ID}",
            "cancel_url": "http://127.0.0.1/billing/checkout/cancel",
        },
    )


def access_line(process: ManagedProcess, request_id: str, message: str) -> dict[str, Any] | None:
    return next(
        (r for r in records(process) if r.get("message") == message and r.get("request_id") == request_id), None
    )


# --- tracing ------------------------------------------------------------------------------


def test_a_traceparent_flows_from_the_gateway_to_payments_and_on_to_credits(stack: PurchaseStack) -> None:
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    buyer = user()
    response = checkout(stack, buyer, {"traceparent": f"00-{trace_id}-{parent_id}-01"})
    assert response.status_code == 201, response.text
    request_id = response.headers["x-request-id"]

    gateway = wait_for(lambda: access_line(stack.gateway, request_id, "request"), "the gateway's access line")
    assert gateway["trace_id"] == trace_id
    assert gateway["parent_span_id"] == parent_id
    assert gateway["route"] == "/api/stripe/create-checkout-session"
    payments = wait_for(lambda: access_line(stack.payments, request_id, "call"), "Payments' access line")
    assert payments["method"].endswith("/CreateCheckoutSession")
    assert payments["trace_id"] == trace_id
    # The gateway's span is the parent of Payments' span.
    assert payments["parent_span_id"] == gateway["span_id"]
    assert payments["span_id"] not in (gateway["span_id"], parent_id)

    # Paying makes Stripe's webhook reach Payments, whose outbox relay asks Credits to grant.
    assert pay_on_hosted_page(stack, response.json()["url"], "4242 4242 4242 4242").paid
    wait_for(lambda: stack.balance(buyer) == 100, "the credits granted")
    grants = [
        r
        for r in records(stack.credits)
        if r.get("message") == "call" and r["method"].endswith("/Grant") and r["caller"] == "payments"
    ]
    assert grants, "no Grant call from Payments in Credits' logs"
    for grant in grants:
        # The relay's call carried a traceparent: Credits' span has a remote parent in a valid trace.
        assert HEX32.match(grant["trace_id"])
        assert grant["parent_span_id"] != "-"
    # The webhook's own hop (gateway -> Payments) is one trace too.
    webhook = [
        r for r in records(stack.gateway) if r.get("message") == "request" and r.get("route") == "/api/stripe/webhook"
    ]
    handed_on = [
        (line, call)
        for line in webhook
        if (call := access_line(stack.payments, line["request_id"], "call")) is not None
    ]
    assert handed_on, "no webhook reached Payments"
    for line, call in handed_on:
        assert call["method"].endswith("/HandleStripeEvent")
        assert call["trace_id"] == line["trace_id"]
        assert call["parent_span_id"] == line["span_id"]


def test_a_request_without_traceparent_starts_a_trace(stack: PurchaseStack) -> None:
    response = stack.http.get("/api/credits/balance", headers=stack.as_user(user()))
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    gateway = wait_for(lambda: access_line(stack.gateway, request_id, "request"), "the gateway's access line")
    assert HEX32.match(gateway["trace_id"])
    assert gateway["parent_span_id"] == "-"
    credits = wait_for(lambda: access_line(stack.credits, request_id, "call"), "Credits' access line")
    assert credits["trace_id"] == gateway["trace_id"]
    assert credits["parent_span_id"] == gateway["span_id"]


@pytest.mark.parametrize(
    "traceparent",
    [
        "garbage",
        "00-" + "0" * 32 + "-" + "1" * 16 + "-01",  # an all-zero trace id is invalid
        "00-XYZ-123-01",
        "00-" + "a" * 32 + "-" + "b" * 16 + "-01-extra-" + "x" * 500,
    ],
)
def test_a_malformed_traceparent_is_ignored(stack: PurchaseStack, traceparent: str) -> None:
    response = stack.http.get("/api/credits/balance", headers={**stack.as_user(user()), "traceparent": traceparent})
    assert response.status_code == 200
    gateway = wait_for(
        lambda: access_line(stack.gateway, response.headers["x-request-id"], "request"), "the gateway's access line"
    )
    assert HEX32.match(gateway["trace_id"])
    assert gateway["trace_id"] not in traceparent
    assert gateway["parent_span_id"] == "-"


def test_every_log_line_carries_the_request_and_trace_ids(stack: PurchaseStack) -> None:
    for process in (stack.gateway, stack.payments, stack.credits):
        lines = records(process)
        assert lines
        for line in lines:
            assert {"request_id", "trace_id", "span_id"} <= line.keys(), line
        served = [line for line in lines if line.get("message") in ("request", "call")]
        assert served
        assert all(HEX32.match(line["trace_id"]) for line in served)


# --- metrics ------------------------------------------------------------------------------


def test_requests_and_calls_are_counted_by_route_and_method(stack: PurchaseStack) -> None:
    balance = {"route": "/api/credits/balance", "method": "GET", "status": "200"}
    payment = {"route": "/api/payments/{payment_id}", "method": "GET", "status": "404"}
    unmatched = {"route": "unmatched", "method": "GET", "status": "404"}
    get_balance = {"service": "credits", "method": "GetBalance"}
    get_payment = {"service": "payments", "method": "GetPayment"}
    gw0, cr0, pa0 = scrape(stack.gateway), scrape(stack.credits), scrape(stack.payments)

    buyer, calls = user(), 7
    for _ in range(calls):
        assert stack.http.get("/api/credits/balance", headers=stack.as_user(buyer)).status_code == 200
    missing = f"pay_{uuid.uuid4().hex}"
    assert stack.http.get(f"/api/payments/{missing}", headers=stack.as_user(buyer)).status_code == 404
    assert stack.http.get(f"/api/no-such-thing/{missing}").status_code == 404

    gw1, cr1, pa1 = scrape(stack.gateway), scrape(stack.credits), scrape(stack.payments)
    assert (
        value(gw1, "billing_http_requests_total", **balance) - value(gw0, "billing_http_requests_total", **balance)
        == calls
    )
    count = "billing_http_request_duration_seconds_count"
    assert (
        value(gw1, count, route=balance["route"], method="GET")
        - value(gw0, count, route=balance["route"], method="GET")
        == calls
    )
    assert (
        value(gw1, "billing_http_requests_total", **payment) - value(gw0, "billing_http_requests_total", **payment) == 1
    )
    assert (
        value(gw1, "billing_http_requests_total", **unmatched) - value(gw0, "billing_http_requests_total", **unmatched)
        == 1
    )
    # Routes are templates: no raw path ever becomes a label.
    assert not any(missing in label for _, labels in gw1 for _, label in labels)

    handled = "billing_grpc_server_handled_total"
    assert value(cr1, handled, **get_balance, code="OK") - value(cr0, handled, **get_balance, code="OK") == calls
    seconds = "billing_grpc_server_handling_seconds_count"
    assert value(cr1, seconds, **get_balance) - value(cr0, seconds, **get_balance) == calls
    assert (
        value(pa1, handled, **get_payment, code="NOT_FOUND") - value(pa0, handled, **get_payment, code="NOT_FOUND") == 1
    )


def test_webhook_events_are_counted_by_type_and_outcome(stack: PurchaseStack) -> None:
    events = "billing_webhook_events_total"
    before = scrape(stack.gateway)
    bad = signed_post(stack, b'{"id": "evt_x", "type": "charge.succeeded"}', secret="whsec_not_the_right_one")
    assert bad.status_code == 400
    unknown = {"id": f"evt_{uuid.uuid4().hex}", "object": "event", "type": "customer.created", "data": {"object": {}}}
    assert signed_post(stack, json.dumps(unknown).encode()).status_code == 200
    after = scrape(stack.gateway)
    assert (
        value(after, events, type="other", outcome="invalid_signature")
        - value(before, events, type="other", outcome="invalid_signature")
        == 1
    )
    assert (
        value(after, events, type="other", outcome="ignored") - value(before, events, type="other", outcome="ignored")
        == 1
    )

    # A purchase: Stripe delivers checkout.session.completed once, and Payments acts on it.
    buyer = user()
    completed = {"type": "checkout.session.completed", "outcome": "accepted"}
    before = scrape(stack.gateway)
    session = stack.buy(buyer)
    assert pay_on_hosted_page(stack, session["url"], "4242 4242 4242 4242").paid
    wait_for(lambda: stack.balance(buyer) == 100, "the credits granted")
    stack.wait_deliveries_done()
    after = scrape(stack.gateway)
    assert value(after, events, **completed) - value(before, events, **completed) == 1

    # The same event delivered again is a duplicate, answered from Payments' record.
    event = next(
        e
        for e in stack.stripe.v1.events.list(params={"type": "checkout.session.completed", "limit": 100}).data
        if e.data.object["id"] == session["checkout_session_id"]
    )
    replay = json.dumps(event.to_dict()).encode()
    assert signed_post(stack, replay).status_code == 200
    again = scrape(stack.gateway)
    duplicate = {"type": "checkout.session.completed", "outcome": "duplicate"}
    assert value(again, events, **duplicate) - value(after, events, **duplicate) == 1


def test_outbox_gauges_rise_while_credits_is_down_and_fall_back_after(stack: PurchaseStack) -> None:
    pending = {"service": "payments", "state": "pending"}
    age = "billing_outbox_oldest_pending_age_seconds"
    assert value(scrape(stack.payments), "billing_outbox_scrape_error", service="payments") == 0
    wait_for(lambda: value(scrape(stack.payments), "billing_outbox_messages", **pending) == 0, "an empty outbox")
    buyer = user()
    session = stack.buy(buyer)
    assert stack.credits.terminate() == 0
    try:
        assert pay_on_hosted_page(stack, session["url"], "4242 4242 4242 4242").paid
        wait_for(lambda: value(scrape(stack.payments), "billing_outbox_messages", **pending) >= 1, "a pending grant")
        wait_for(lambda: value(scrape(stack.payments), age, service="payments") > 0.5, "the pending grant ageing")
    finally:
        stack.credits.start_again()
    wait_for(lambda: stack.balance(buyer) == 100, "the grant once Credits is back")
    wait_for(lambda: value(scrape(stack.payments), "billing_outbox_messages", **pending) == 0, "the outbox drained")
    assert value(scrape(stack.payments), age, service="payments") == 0


def test_credits_reports_ledger_totals(stack: PurchaseStack) -> None:
    outstanding, account = "billing_credits_wallets_outstanding", "billing_credits_system_account_balance"
    before = scrape(stack.credits)
    assert value(before, "billing_credits_totals_scrape_error") == 0
    buyer = user()
    session = stack.buy(buyer)
    assert pay_on_hosted_page(stack, session["url"], "4242 4242 4242 4242").paid
    wait_for(lambda: stack.balance(buyer) == 100, "the credits granted")
    after = scrape(stack.credits)
    assert value(after, outstanding) - value(before, outstanding) == 100
    purchase = {"account": "system:purchase"}
    assert value(after, account, **purchase) - value(before, account, **purchase) == -100
    # Every credit in a wallet came out of a system account: together they balance.
    system = sum(v for (name, _), v in after.items() if name == account)
    assert value(after, outstanding) + system == 0
