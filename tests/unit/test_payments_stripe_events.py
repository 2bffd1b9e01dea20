"""Reading Stripe events into facts: an event that reports money received must agree with its own object."""

from __future__ import annotations

from typing import Any

import pytest

from payments_svc.domain import PaymentStatus
from payments_svc.stripe_events import facts_from_event
from svckit.inbox import MalformedEvent


def event(event_type: str, **obj: Any) -> dict[str, Any]:
    return {"id": "evt_1", "type": event_type, "data": {"object": {"id": "pi_1", "metadata": {}, **obj}}}


def test_a_succeeded_payment_intent_is_believed_when_its_object_says_succeeded() -> None:
    facts = facts_from_event("payment_intent.succeeded", event("payment_intent.succeeded", status="succeeded"))
    assert facts is not None
    assert facts.report.status is PaymentStatus.SUCCEEDED


@pytest.mark.parametrize("status", ["requires_payment_method", "processing", "canceled", None, 7, "Succeeded"])
def test_a_succeeded_event_whose_object_says_otherwise_is_refused(status: object) -> None:
    body = event("payment_intent.succeeded", **({} if status is None else {"status": status}))
    with pytest.raises(MalformedEvent, match="status"):
        facts_from_event("payment_intent.succeeded", body)


def test_an_async_checkout_success_needs_a_paid_session() -> None:
    kind = "checkout.session.async_payment_succeeded"
    paid = facts_from_event(kind, event(kind, mode="payment", payment_status="paid"))
    assert paid is not None
    assert paid.report.status is PaymentStatus.SUCCEEDED
    with pytest.raises(MalformedEvent, match="payment_status"):
        facts_from_event(kind, event(kind, mode="payment", payment_status="unpaid"))


def test_events_that_report_no_success_need_no_witness() -> None:
    facts = facts_from_event("payment_intent.payment_failed", event("payment_intent.payment_failed"))
    assert facts is not None
    assert facts.report.status is PaymentStatus.FAILED
