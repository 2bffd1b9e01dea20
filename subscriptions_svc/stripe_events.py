"""What a Stripe event means to this service: from the event's JSON to facts. No I/O.

The subscription's state is never taken from the event itself (events arrive
late and out of order): the event names the subscription, which is then read
from Stripe. What the event alone tells (an invoice paid, a payment failed, a
trial ending, a checkout closed) is taken from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from subscriptions_svc.domain import PaidInvoice
from subscriptions_svc.notifications import Notice, NoticeKind
from subscriptions_svc.stripe_objects import (
    CheckoutFacts,
    MalformedObject,
    checkout_facts,
    customer_email,
    invoice_subscription_id,
    paid_invoice,
)
from svckit.inbox import MalformedEvent

SUBSCRIPTION_EVENTS = frozenset(
    {
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.subscription.paused",
        "customer.subscription.resumed",
        "customer.subscription.trial_will_end",
        "customer.subscription.pending_update_applied",
        "customer.subscription.pending_update_expired",
    }
)
INVOICE_EVENTS = frozenset({"invoice.paid", "invoice.payment_failed", "invoice.upcoming"})
CHECKOUT_EVENTS = frozenset(
    {
        "checkout.session.completed",
        "checkout.session.expired",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
    }
)
HANDLED_TYPES = SUBSCRIPTION_EVENTS | INVOICE_EVENTS | CHECKOUT_EVENTS


@dataclass(frozen=True)
class EventFacts:
    # The Stripe subscription to read and fold in (None: none concerned).
    stripe_subscription_id: str | None
    checkout: CheckoutFacts | None = None
    checkout_expired: bool = False
    paid_invoice: PaidInvoice | None = None
    notice: Notice | None = None


def _time(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, Mapping) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


def facts_from_event(event_type: str, event: Mapping[str, Any]) -> EventFacts | None:
    """The facts of an event this service acts on; None for any other event."""
    if event_type not in HANDLED_TYPES:
        return None
    data = event.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(obj, Mapping):
        raise MalformedEvent(f"{event_type} without data.object")
    try:
        if event_type in CHECKOUT_EVENTS:
            return _checkout(event_type, obj)
        if event_type in SUBSCRIPTION_EVENTS:
            return _subscription(event_type, obj)
        return _invoice(event_type, obj, str(event.get("id", "")))
    except MalformedObject as error:
        raise MalformedEvent(f"{event_type}: {error}") from error


def _checkout(event_type: str, obj: Mapping[str, Any]) -> EventFacts | None:
    facts = checkout_facts(obj)
    if facts is None:
        return None  # a one-time payment's checkout: the Payments service's
    return EventFacts(
        stripe_subscription_id=facts.stripe_subscription_id,
        checkout=facts,
        checkout_expired=event_type == "checkout.session.expired",
    )


def _subscription(event_type: str, obj: Mapping[str, Any]) -> EventFacts:
    sub_id, customer = _str(obj.get("id")), _str(obj.get("customer"))
    if sub_id is None or customer is None:
        raise MalformedEvent(f"{event_type} without the subscription's id and customer")
    notice = None
    if event_type == "customer.subscription.trial_will_end":
        trial_end = _time(obj.get("trial_end"))
        notice = Notice(
            kind=NoticeKind.TRIAL_ENDING,
            key=f"notify:trial-ending:{sub_id}:{obj.get('trial_end')}",
            stripe_customer_id=customer,
            email=None,
            when=trial_end,
        )
    return EventFacts(stripe_subscription_id=sub_id, notice=notice)


def _invoice(event_type: str, obj: Mapping[str, Any], event_id: str) -> EventFacts | None:
    sub_id = invoice_subscription_id(obj)
    if sub_id is None:
        return None  # not a subscription's invoice
    customer = _str(obj.get("customer"))
    if customer is None:
        raise MalformedEvent(f"{event_type} without a customer")
    if event_type == "invoice.paid":
        return EventFacts(stripe_subscription_id=sub_id, paid_invoice=paid_invoice(obj))
    amount = obj.get("amount_due") if isinstance(obj.get("amount_due"), int) else None
    currency = _str(obj.get("currency"))
    if event_type == "invoice.payment_failed":
        invoice_id = _str(obj.get("id"))
        if invoice_id is None:
            raise MalformedEvent("invoice.payment_failed without an invoice id")
        notice = Notice(
            kind=NoticeKind.PAYMENT_FAILED,
            key=f"notify:payment-failed:{invoice_id}:{obj.get('attempt_count', 0)}",
            stripe_customer_id=customer,
            email=customer_email(obj),
            when=_time(obj.get("next_payment_attempt")),
            amount_minor=amount,
            currency=currency,
            link=_str(obj.get("hosted_invoice_url")),
        )
        return EventFacts(stripe_subscription_id=sub_id, notice=notice)
    # invoice.upcoming: a preview (no id) of the renewal invoice.
    renews = _time(obj.get("next_payment_attempt")) or _time(obj.get("period_end"))
    stamp = obj.get("next_payment_attempt") or obj.get("period_end") or event_id
    notice = Notice(
        kind=NoticeKind.UPCOMING_RENEWAL,
        key=f"notify:upcoming-renewal:{sub_id}:{stamp}",
        stripe_customer_id=customer,
        email=customer_email(obj),
        when=renews,
        amount_minor=amount,
        currency=currency,
    )
    return EventFacts(stripe_subscription_id=sub_id, notice=notice)
