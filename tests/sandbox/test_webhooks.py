"""Webhook delivery: signed as Stripe signs, retried with backoff, in creation order; held, flushed and
redelivered as a test asks. Every delivery is verified with `stripe.WebhookSignature.verify_header`."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import stripe

from svckit import devdefaults
from tests.sandbox.conftest import FAST_RETRIES, unique
from tests.support.gateway import refused_target
from tests.support.stripe_sandbox import (
    SandboxProcess,
    WebhookReceiver,
    running_receiver,
    running_sandbox,
    wait_until,
)


@pytest.fixture(autouse=True)
def fresh(sandbox: SandboxProcess) -> Iterator[None]:
    """Each test starts from an empty sandbox that delivers as it happens (nothing held, no endpoints)."""
    sandbox.control("post", "/reset")
    yield
    sandbox.control("post", "/reset")


def names(events: list[dict[str, Any]]) -> list[str]:
    return [event["data"]["object"].get("name") for event in events]


def make_products(client: stripe.StripeClient, count: int) -> list[str]:
    marker = unique("p")
    return [client.v1.products.create(params={"name": f"{marker}-{n}"}).name for n in range(count)]


def test_deliveries_are_signed_like_stripe(client: stripe.StripeClient, receiver: WebhookReceiver) -> None:
    customer = client.v1.customers.create(params={"email": "hook@example.com"})
    (delivery,) = receiver.wait_for(lambda ds: len(ds) == 1, what="customer.created")
    assert delivery.signature_ok, delivery.signature_error
    assert delivery.headers["content-type"] == "application/json; charset=utf-8"
    assert delivery.headers["user-agent"] == "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
    signature = delivery.headers["stripe-signature"]
    assert signature.startswith("t=")
    assert ",v1=" in signature
    event = delivery.event
    assert (event["type"], event["object"], event["livemode"]) == ("customer.created", "event", False)
    assert event["data"]["object"]["id"] == customer.id
    assert event["request"]["id"]
    assert event["api_version"] == stripe.api_version
    stored = client.v1.events.retrieve(event["id"])
    assert stored.data.object.email == "hook@example.com"
    wait_until(lambda: client.v1.events.retrieve(event["id"]).pending_webhooks == 0, what="pending_webhooks 0")
    assert event["pending_webhooks"] == 1
    wrong = stripe.SignatureVerificationError
    with pytest.raises(wrong):
        stripe.WebhookSignature.verify_header(delivery.body, signature, "whsec_not_the_secret", 300)


def test_failed_deliveries_are_retried_until_accepted(
    sandbox: SandboxProcess, client: stripe.StripeClient, receiver: WebhookReceiver
) -> None:
    answers = iter([500, 503, 404])
    receiver.respond = lambda event: next(answers, 200)
    customer = client.v1.customers.create(params={"email": "retry@example.com"})
    deliveries = receiver.wait_for(lambda ds: any(d.status == 200 for d in ds), what="an accepted delivery")
    assert [d.status for d in deliveries] == [500, 503, 404, 200]
    assert len({d.event["id"] for d in deliveries}) == 1
    assert all(d.signature_ok for d in deliveries)
    assert deliveries[0].event["data"]["object"]["id"] == customer.id
    attempts = sandbox.control("get", "/webhooks/attempts", event=deliveries[0].event["id"])["data"]
    assert [(a["attempt"], a["status"], a["succeeded"]) for a in attempts] == [
        (1, 500, False),
        (2, 503, False),
        (3, 404, False),
        (4, 200, True),
    ]
    # Exponential backoff: at least 0.05 s, 0.1 s, then 0.2 s between attempts (never less; more under load).
    gaps = [later["started_at"] - earlier["finished_at"] for earlier, later in itertools.pairwise(attempts)]
    assert [gap >= 0.05 * 2**n * 0.9 for n, gap in enumerate(gaps)] == [True, True, True], gaps


def test_an_unreachable_endpoint_is_tried_then_given_up(sandbox: SandboxProcess, client: stripe.StripeClient) -> None:
    with refused_target() as target:
        endpoint = client.v1.webhook_endpoints.create(
            params={"url": f"http://{target}/hook", "enabled_events": ["customer.created"]}
        )
        client.v1.customers.create(params={"email": "nobody@example.com"})
        attempts = wait_until(
            lambda: (
                [
                    a
                    for a in sandbox.control("get", "/webhooks/attempts", endpoint=endpoint.id)["data"]
                    if a["finished_at"]
                ]
                if sandbox.control("get", "/webhooks")["idle"]
                else []
            ),
            what="the deliveries to be given up",
        )
    assert len(attempts) == int(FAST_RETRIES["webhook_max_attempts"])
    assert all(a["status"] is None and a["error"] and not a["succeeded"] for a in attempts)


def test_delivery_never_blocks_the_api_call(client: stripe.StripeClient, receiver: WebhookReceiver) -> None:
    receiver.gate = threading.Event()
    customer = client.v1.customers.create(params={"email": "fast@example.com"})
    wait_until(lambda: receiver.in_flight == 1, what="the delivery to be waiting in the receiver")
    assert customer.id
    assert receiver.deliveries == []
    receiver.gate.set()
    receiver.wait_for(lambda ds: len(ds) == 1)


def test_in_creation_order_per_endpoint(client: stripe.StripeClient, receiver: WebhookReceiver) -> None:
    made = make_products(client, 6)
    receiver.wait_for(lambda ds: len(ds) == 6)
    assert names(receiver.events()) == made


def test_endpoints_get_only_their_event_types(client: stripe.StripeClient, receiver: WebhookReceiver) -> None:
    with running_receiver() as charges_only:
        endpoint = client.v1.webhook_endpoints.create(
            params={"url": charges_only.url, "enabled_events": ["charge.succeeded"]}
        )
        charges_only.secret = endpoint.secret
        intent = client.v1.payment_intents.create(params={"amount": 800, "currency": "usd"})
        client.v1.payment_intents.confirm(intent.id, params={"payment_method": "pm_card_visa"})
        charges_only.wait_for(lambda ds: len(ds) == 1)
        receiver.wait_for(lambda ds: len(ds) == 3)
        assert [e["type"] for e in charges_only.events()] == ["charge.succeeded"]
        assert [e["type"] for e in receiver.events()] == [
            "payment_intent.created",
            "payment_intent.succeeded",
            "charge.succeeded",
        ]
        assert all(d.signature_ok for d in charges_only.deliveries)


class TestHeldDelivery:
    def test_pause_then_flush_in_reverse(
        self, sandbox: SandboxProcess, client: stripe.StripeClient, receiver: WebhookReceiver
    ) -> None:
        sandbox.control("post", "/webhooks/pause")
        made = make_products(client, 4)
        status = sandbox.control("get", "/webhooks")
        assert (status["paused"], status["held"], status["queued"]) == (True, 4, 0)
        assert receiver.deliveries == []
        flushed = sandbox.control("post", "/webhooks/flush", order="reverse", wait="true")
        assert flushed["delivered"] == [True] * 4
        assert names(receiver.events()) == list(reversed(made))
        assert all(d.signature_ok for d in receiver.deliveries)
        # Still paused: later events are held again.
        make_products(client, 1)
        assert sandbox.control("get", "/webhooks")["held"] == 1

    def test_shuffle_is_reproducible_with_a_seed(
        self, sandbox: SandboxProcess, client: stripe.StripeClient, receiver: WebhookReceiver
    ) -> None:
        orders = []
        for _ in range(2):
            sandbox.control("post", "/webhooks/pause")
            made = make_products(client, 6)
            flushed = sandbox.control("post", "/webhooks/flush", order="shuffle", seed=42, wait="true")
            delivered = names(receiver.events())[-6:]
            assert sorted(delivered) == sorted(made)
            planned = [d["event"] for d in flushed["deliveries"]]
            assert [d.event["id"] for d in receiver.deliveries[-6:]] == planned
            orders.append([made.index(name) for name in delivered])
            sandbox.control("post", "/webhooks/resume")
        assert orders[0] == orders[1]
        assert orders[0] != sorted(orders[0])
        with pytest.raises(stripe.InvalidRequestError):
            sandbox.control("post", "/webhooks/flush", order="shuffle")

    def test_each_event_several_times_one_after_another(
        self, sandbox: SandboxProcess, client: stripe.StripeClient, receiver: WebhookReceiver
    ) -> None:
        sandbox.control("post", "/webhooks/pause")
        made = make_products(client, 2)
        sandbox.control("post", "/webhooks/flush", copies=3, wait="true")
        assert names(receiver.events()) == [made[0]] * 3 + [made[1]] * 3
        assert receiver.max_in_flight == 1
        assert len({d.event["id"] for d in receiver.deliveries}) == 2

    def test_concurrently(
        self, sandbox: SandboxProcess, client: stripe.StripeClient, receiver: WebhookReceiver
    ) -> None:
        sandbox.control("post", "/webhooks/pause")
        made = make_products(client, 2)
        receiver.gate = threading.Event()
        sandbox.control("post", "/webhooks/flush", copies=2, concurrent="true")
        wait_until(lambda: receiver.in_flight == 4, what="four deliveries in flight at once")
        receiver.gate.set()
        receiver.wait_for(lambda ds: len(ds) == 4)
        assert sorted(names(receiver.events())) == sorted(made * 2)

    def test_resume_delivers_in_order(
        self, sandbox: SandboxProcess, client: stripe.StripeClient, receiver: WebhookReceiver
    ) -> None:
        sandbox.control("post", "/webhooks/pause")
        made = make_products(client, 3)
        assert sandbox.control("post", "/webhooks/resume")["released"] == 3
        receiver.wait_for(lambda ds: len(ds) == 3)
        assert names(receiver.events()) == made
        later = make_products(client, 1)
        receiver.wait_for(lambda ds: len(ds) == 4)
        assert names(receiver.events())[-1] == later[0]


def test_redeliver_one_event(sandbox: SandboxProcess, client: stripe.StripeClient, receiver: WebhookReceiver) -> None:
    client.v1.customers.create(params={"email": "again@example.com"})
    (first,) = receiver.wait_for(lambda ds: len(ds) == 1)
    event_id = first.event["id"]
    answer = sandbox.control("post", f"/events/{event_id}/redeliver", copies=2, wait="true")
    assert answer["delivered"] == [True, True]
    deliveries = receiver.wait_for(lambda ds: len(ds) == 3)
    assert [d.event["id"] for d in deliveries] == [event_id] * 3
    assert all(d.signature_ok for d in deliveries)
    assert len(sandbox.control("get", "/webhooks/attempts", event=event_id)["data"]) == 3


def test_reset_forgets_everything(sandbox: SandboxProcess, client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"email": "gone@example.com"})
    sandbox.control("post", "/webhooks/pause")
    state = sandbox.control("post", "/reset")
    assert state["webhook_endpoints"] == []
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.retrieve(customer.id)
    assert sandbox.control("get", "/webhooks")["paused"] is False
    assert client.v1.events.list().data == []


def test_endpoint_from_settings_and_delayed_payment_order(tmp_path: Path) -> None:
    """The endpoint configured at start-up gets every event, and a delayed card's success comes after completion."""
    secret = "whsec_" + unique("settings").replace("-", "")
    with (
        running_receiver(secret) as receiver,
        running_sandbox(
            tmp_path, webhook_url=receiver.url, webhook_secret=secret, async_delay_seconds="0.3", **FAST_RETRIES
        ) as delayed,
    ):
        client = delayed.client()
        endpoints = client.v1.webhook_endpoints.list().data
        assert [(e.url, e.enabled_events) for e in endpoints] == [(receiver.url, ["*"])]
        session = client.v1.checkout.sessions.create(
            params={
                "mode": "payment",
                "success_url": "https://example.com/ok",
                "line_items": [
                    {
                        "quantity": 1,
                        "price_data": {"currency": "usd", "unit_amount": 1000, "product_data": {"name": "x"}},
                    }
                ],
            }
        )
        assert session.url.startswith(f"http://127.0.0.1:{delayed.port}/checkout/")
        delayed.control("post", f"/checkout/sessions/{session.id}/pay", card="4000000000001125")
        receiver.wait_for(
            lambda ds: any(d.event["type"] == "checkout.session.async_payment_succeeded" for d in ds),
            what="the delayed payment to succeed",
        )
        types = [event["type"] for event in receiver.events()]
        assert all(d.signature_ok for d in receiver.deliveries)
        completed = types.index("checkout.session.completed")
        assert (
            completed
            < types.index("payment_intent.succeeded")
            < types.index("checkout.session.async_payment_succeeded")
        )
        assert types.index("payment_intent.processing") < completed
        assert client.v1.checkout.sessions.retrieve(session.id).payment_status == "paid"


def test_settings_endpoint_defaults_to_the_development_secret(tmp_path: Path) -> None:
    """With only STRIPE_SANDBOX_WEBHOOK_URL set, events are signed with the secret the gateway expects by default."""
    with (
        running_receiver(devdefaults.STRIPE_WEBHOOK_SECRET) as receiver,
        running_sandbox(tmp_path, webhook_url=receiver.url, **FAST_RETRIES) as plain,
    ):
        plain.client().v1.customers.create(params={"email": "dev@example.com"})
        (delivery,) = receiver.wait_for(lambda ds: len(ds) == 1)
        assert delivery.signature_ok, delivery.signature_error
