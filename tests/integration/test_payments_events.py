"""Payments' event handling on a real database, with a fake payment provider (our port, not Stripe's library).

The whole path through Stripe's library, the sandbox and the gateway is in
test_purchase_*.py; here each rule of event handling is pinned down fast.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Engine, select

from payments_svc import domain
from payments_svc.bootstrap import MIGRATIONS
from payments_svc.catalog import DEFAULT_CATALOG, load_catalog
from payments_svc.models import idempotency_records, outbox_messages, stripe_events
from payments_svc.service import PaymentsService
from payments_svc.stripe_provider import CheckoutRequest, CreatedIntent, CreatedRefund, CreatedSession
from svckit.actors import Actor, ActorKind
from svckit.db import make_engine, run_transaction
from svckit.errors import Aborted, InvalidArgument
from svckit.idempotency import IdempotencyStore, IdempotentCall
from svckit.inbox import Inbox
from svckit.migrations import upgrade
from svckit.outbox import Outbox

WEBHOOK = Actor(ActorKind.SERVICE, "gateway")
USER = Actor(ActorKind.USER, "alice")


@dataclass
class FakeProvider:
    """Stands in for Stripe behind the PaymentProvider port; remembers what it was asked."""

    sessions: dict[str, CheckoutRequest] = field(default_factory=dict)
    customers: dict[str, str] = field(default_factory=dict)
    intents: dict[str, Mapping[str, str]] = field(default_factory=dict)
    fail_next: Exception | None = None

    def create_customer(self, user_id: str, *, idempotency_key: str) -> str:
        return self.customers.setdefault(idempotency_key, f"cus_{uuid.uuid4().hex[:14]}")

    def create_checkout_session(self, request: CheckoutRequest, *, idempotency_key: str) -> CreatedSession:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        session_id = f"cs_test_{uuid.uuid5(uuid.NAMESPACE_URL, idempotency_key).hex}"
        self.sessions[session_id] = request
        return CreatedSession(session_id, f"https://checkout.test/{session_id}", None)

    def create_payment_intent(self, request: CheckoutRequest, *, idempotency_key: str) -> CreatedIntent:
        intent_id = f"pi_{uuid.uuid5(uuid.NAMESPACE_URL, idempotency_key).hex}"
        self.intents[intent_id] = request.metadata()
        return CreatedIntent(intent_id, f"{intent_id}_secret_x")

    def refund(self, payment_intent_id: str, amount_minor: int, reason: str, *, idempotency_key: str) -> CreatedRefund:
        raise AssertionError("not used here")

    def payment_intent_metadata(self, payment_intent_id: str) -> tuple[Mapping[str, str], int, str]:
        return self.intents.get(payment_intent_id, {}), 500, "usd"


@dataclass
class Harness:
    engine: Engine
    service: PaymentsService
    provider: FakeProvider

    def event(self, event_type: str, obj: Mapping[str, Any], event_id: str | None = None) -> bool:
        event_id = event_id or f"evt_{uuid.uuid4().hex}"
        payload = json.dumps({"id": event_id, "type": event_type, "object": "event", "data": {"object": obj}})
        call = IdempotentCall.for_request("gateway", event_id, "/HandleStripeEvent", payload.encode())
        outcome = self.service.handle_event(
            WEBHOOK,
            event_id=event_id,
            event_type=event_type,
            payload=payload.encode(),
            call=call,
            encode=lambda handled: b"1" if handled else b"0",
        )
        return outcome.response == b"1"

    def outbox(self) -> list[tuple[str, dict[str, Any]]]:
        t = outbox_messages
        rows = run_transaction(
            self.engine, lambda conn: conn.execute(select(t.c.key, t.c.payload).order_by(t.c.id)).all(), read_only=True
        )
        return [(row.key, json.loads(row.payload)) for row in rows]

    def inbox(self) -> dict[str, str]:
        t = stripe_events
        rows = run_transaction(
            self.engine, lambda conn: conn.execute(select(t.c.event_id, t.c.status)).all(), read_only=True
        )
        return {row.event_id: row.status for row in rows}

    def buy(self, user: str = "alice") -> tuple[str, str]:
        """A checkout session created through the service: (payment id, session id)."""
        cmd = domain.BuyPackage(user, "credits-100", "", "https://app.test/ok", "https://app.test/no")
        call = IdempotentCall.for_request("gateway", uuid.uuid4().hex, "/CreateCheckoutSession", b"x")
        outcome = self.service.create_checkout_session(
            Actor(ActorKind.USER, user), cmd, call, lambda created: created.payment.id.encode()
        )
        payment_id = outcome.response.decode()
        session_id = next(s for s, r in self.provider.sessions.items() if r.payment_id == payment_id)
        return payment_id, session_id


@pytest.fixture
def harness(any_database: str) -> Iterator[Harness]:
    upgrade(any_database, MIGRATIONS)
    engine = make_engine(any_database, pool_size=4)
    provider = FakeProvider()
    service = PaymentsService(
        engine,
        idempotency=IdempotencyStore(idempotency_records),
        inbox=Inbox(stripe_events),
        outbox=Outbox(outbox_messages),
        provider=provider,
        catalog=load_catalog(DEFAULT_CATALOG),
    )
    yield Harness(engine, service, provider)
    engine.dispose()


def session(session_id: str, payment_id: str, paid: bool = True, **metadata: str) -> dict[str, Any]:
    return {
        "id": session_id,
        "object": "checkout.session",
        "mode": "payment",
        "payment_status": "paid" if paid else "unpaid",
        "payment_intent": f"pi_for_{session_id}",
        "amount_total": 500,
        "currency": "usd",
        "metadata": {"payment_id": payment_id, **metadata},
    }


def intent(intent_id: str, payment_id: str, status: str = "succeeded") -> dict[str, Any]:
    return {
        "id": intent_id,
        "object": "payment_intent",
        "status": status,
        "metadata": {"payment_id": payment_id},
        "amount": 500,
        "currency": "usd",
        "latest_charge": "ch_1",
    }


def test_one_grant_for_every_event_about_a_paid_payment(harness: Harness) -> None:
    payment_id, session_id = harness.buy()
    assert harness.event("checkout.session.completed", session(session_id, payment_id))
    assert harness.event("payment_intent.succeeded", intent(f"pi_for_{session_id}", payment_id))
    assert harness.event("checkout.session.completed", session(session_id, payment_id))
    grants = [key for key, _ in harness.outbox() if key.startswith("grant:")]
    assert grants == [f"grant:{payment_id}"]
    assert harness.service.get_payment(USER, payment_id).status is domain.PaymentStatus.SUCCEEDED


def test_the_same_event_again_is_a_replay(harness: Harness) -> None:
    payment_id, session_id = harness.buy()
    event_id = "evt_same"
    assert harness.event("checkout.session.completed", session(session_id, payment_id), event_id)
    assert harness.event("checkout.session.completed", session(session_id, payment_id), event_id)
    assert len(harness.outbox()) == 1
    assert harness.inbox() == {event_id: "processed"}


def test_an_event_id_reused_for_another_payload_is_refused(harness: Harness) -> None:
    payment_id, session_id = harness.buy()
    harness.event("checkout.session.completed", session(session_id, payment_id), "evt_x")
    with pytest.raises(InvalidArgument):
        harness.event("checkout.session.expired", session(session_id, payment_id), "evt_x")


def test_a_delayed_payment_grants_only_on_success_and_a_late_event_changes_nothing(harness: Harness) -> None:
    payment_id, session_id = harness.buy()
    harness.event("checkout.session.completed", session(session_id, payment_id, paid=False))
    assert harness.outbox() == []
    assert harness.service.get_payment(USER, payment_id).status is domain.PaymentStatus.PROCESSING
    harness.event("checkout.session.async_payment_succeeded", session(session_id, payment_id))
    harness.event("payment_intent.processing", intent(f"pi_for_{session_id}", payment_id, "processing"))
    assert [key for key, _ in harness.outbox()] == [f"grant:{payment_id}"]
    assert harness.service.get_payment(USER, payment_id).status is domain.PaymentStatus.SUCCEEDED


def test_a_failed_payment_grants_nothing(harness: Harness) -> None:
    payment_id, session_id = harness.buy()
    harness.event(
        "payment_intent.payment_failed", intent(f"pi_for_{session_id}", payment_id, "requires_payment_method")
    )
    harness.event("checkout.session.async_payment_failed", session(session_id, payment_id, paid=False))
    assert harness.outbox() == []
    assert harness.service.get_payment(USER, payment_id).status is domain.PaymentStatus.FAILED


def test_a_payment_we_never_recorded_is_recovered_from_its_metadata(harness: Harness) -> None:
    payment_id = domain.payment_id_for("gateway", "lost-" + uuid.uuid4().hex)
    obj = session("cs_test_lost", payment_id, user_id="bob", package_id="credits-500", credits="500")
    assert harness.event("checkout.session.completed", obj)
    payment = harness.service.get_payment(WEBHOOK, payment_id)
    assert (payment.user_id, payment.credits, payment.status) == ("bob", 500, domain.PaymentStatus.SUCCEEDED)
    [(key, payload)] = harness.outbox()
    assert key == f"grant:{payment_id}"
    assert payload["user_id"] == "bob"
    assert payload["credits"] == 500
    assert payload["reference"] == f"payment:{payment_id}"


def test_refunds_ask_back_the_refunded_share_once(harness: Harness) -> None:
    payment_id, session_id = harness.buy()
    harness.event("checkout.session.completed", session(session_id, payment_id))
    charge = {"id": "ch_1", "object": "charge", "payment_intent": f"pi_for_{session_id}", "amount_refunded": 250}
    harness.event("charge.refunded", charge)
    harness.event("charge.refunded", {**charge, "amount_refunded": 100})  # older, late: nothing
    harness.event("charge.refunded", charge)
    reversals = [(key, payload["credits"]) for key, payload in harness.outbox() if key.startswith("reverse:")]
    assert reversals == [(f"reverse:{payment_id}:50", 50)]
    harness.event("charge.refunded", {**charge, "amount_refunded": 500})
    reversals = [(key, payload["credits"]) for key, payload in harness.outbox() if key.startswith("reverse:")]
    assert reversals == [(f"reverse:{payment_id}:50", 50), (f"reverse:{payment_id}:100", 50)]
    assert harness.service.get_payment(USER, payment_id).status is domain.PaymentStatus.REFUNDED


def test_events_for_others_are_recorded_and_ignored(harness: Harness) -> None:
    assert not harness.event("customer.created", {"id": "cus_1", "object": "customer"})
    assert not harness.event("payment_intent.succeeded", {"id": "pi_unknown", "status": "succeeded", "metadata": {}})
    subscription_checkout = {"id": "cs_sub", "object": "checkout.session", "mode": "subscription", "metadata": {}}
    assert not harness.event("checkout.session.completed", subscription_checkout)
    assert not harness.event("checkout.session.completed", {"object": "checkout.session"})
    assert sorted(harness.inbox().values()) == ["ignored", "ignored", "ignored", "rejected"]
    assert harness.outbox() == []


def test_a_create_call_retried_after_a_stripe_failure_runs_again(harness: Harness) -> None:
    harness.provider.fail_next = Aborted("Stripe down")
    cmd = domain.BuyPackage("alice", "credits-100", "", "https://app.test/ok", "https://app.test/no")
    call = IdempotentCall.for_request("gateway", "retry-me", "/CreateCheckoutSession", b"x")
    with pytest.raises(Aborted):
        harness.service.create_checkout_session(USER, cmd, call, lambda created: created.payment.id.encode())
    first = harness.service.create_checkout_session(USER, cmd, call, lambda created: created.payment.id.encode())
    again = harness.service.create_checkout_session(USER, cmd, call, lambda created: created.payment.id.encode())
    assert not first.replayed
    assert again.replayed
    assert first.response == again.response
    assert len(harness.provider.sessions) == 1


def test_a_user_buys_only_for_themselves(harness: Harness) -> None:
    cmd = domain.BuyPackage("bob", "credits-100", "", "https://app.test/ok", "https://app.test/no")
    call = IdempotentCall.for_request("gateway", "k", "/CreateCheckoutSession", b"x")
    with pytest.raises(Exception, match="own"):
        harness.service.create_checkout_session(USER, cmd, call, lambda created: b"")
