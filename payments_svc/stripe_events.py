"""What a Stripe event says about a payment: from the event's JSON to domain facts. No I/O.

Only the fields this service needs are read; everything else in the event is
kept verbatim in the inbox.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from payments_svc.domain import PAYMENT_ID_PATTERN, PaymentFlow, PaymentStatus, Reported
from svckit.inbox import MalformedEvent

# Event type -> the status it reports (None: it reports ids and links only).
STATUS_BY_TYPE: Mapping[str, PaymentStatus | None] = {
    "checkout.session.async_payment_succeeded": PaymentStatus.SUCCEEDED,
    "checkout.session.async_payment_failed": PaymentStatus.FAILED,
    "checkout.session.expired": PaymentStatus.EXPIRED,
    "payment_intent.succeeded": PaymentStatus.SUCCEEDED,
    "payment_intent.processing": PaymentStatus.PROCESSING,
    "payment_intent.payment_failed": PaymentStatus.FAILED,
    "payment_intent.canceled": PaymentStatus.CANCELED,
    "charge.succeeded": None,
    "charge.refunded": None,
}
CHECKOUT_COMPLETED = "checkout.session.completed"
# What the object itself must say for an event that reports money received: Stripe sends the object
# as it is when the event happens, so a "succeeded" event whose object says otherwise is not believed
# (it would credit a payment that did not succeed).
SUCCESS_WITNESS: Mapping[str, tuple[str, str]] = {
    "payment_intent.succeeded": ("status", "succeeded"),
    "checkout.session.async_payment_succeeded": ("payment_status", "paid"),
}
HANDLED_TYPES = frozenset({CHECKOUT_COMPLETED, *STATUS_BY_TYPE})


@dataclass(frozen=True)
class Origin:
    """Enough to record a payment this service created at Stripe but never got to record itself."""

    payment_id: str
    user_id: str
    package_id: str
    credits: int
    amount_minor: int
    currency: str
    flow: PaymentFlow


@dataclass(frozen=True)
class EventFacts:
    payment_id: str | None
    checkout_session_id: str | None
    payment_intent_id: str | None
    report: Reported
    origin: Origin | None


def _id(value: Any) -> str | None:
    """An id, whether Stripe sent it bare or as an expanded object."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, Mapping) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


def origin_from_metadata(metadata: Mapping[str, Any], amount: Any, currency: Any, flow: PaymentFlow) -> Origin | None:
    try:
        origin = Origin(
            payment_id=str(metadata["payment_id"]),
            user_id=str(metadata["user_id"]),
            package_id=str(metadata["package_id"]),
            credits=int(metadata["credits"]),
            amount_minor=int(amount),
            currency=str(currency),
            flow=flow,
        )
    except (KeyError, TypeError, ValueError):
        return None
    valid = PAYMENT_ID_PATTERN.match(origin.payment_id) and origin.credits > 0 and origin.amount_minor > 0
    return origin if valid else None


def facts_from_event(event_type: str, event: Mapping[str, Any]) -> EventFacts | None:
    """The facts of an event this service acts on; None for any other event."""
    if event_type not in HANDLED_TYPES:
        return None
    data = event.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(obj, Mapping) or not isinstance(obj.get("id"), str):
        raise MalformedEvent(f"{event_type} without data.object.id")
    witness = SUCCESS_WITNESS.get(event_type)
    if witness is not None and obj.get(witness[0]) != witness[1]:
        raise MalformedEvent(f"{event_type} whose object's {witness[0]} is {obj.get(witness[0])!r}, not {witness[1]!r}")
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    assert isinstance(metadata, Mapping)
    payment_id = metadata.get("payment_id") if isinstance(metadata.get("payment_id"), str) else None

    if event_type.startswith("checkout.session."):
        if obj.get("mode") not in (None, "payment"):
            return None  # subscription checkouts belong to the Subscriptions service
        status = STATUS_BY_TYPE.get(event_type)
        if event_type == CHECKOUT_COMPLETED:
            paid = obj.get("payment_status") in ("paid", "no_payment_required")
            status = PaymentStatus.SUCCEEDED if paid else PaymentStatus.PROCESSING
        return EventFacts(
            payment_id=payment_id,
            checkout_session_id=str(obj["id"]),
            payment_intent_id=_id(obj.get("payment_intent")),
            report=Reported(
                status=status, checkout_session_id=str(obj["id"]), payment_intent_id=_id(obj.get("payment_intent"))
            ),
            origin=origin_from_metadata(metadata, obj.get("amount_total"), obj.get("currency"), PaymentFlow.CHECKOUT),
        )

    if event_type.startswith("payment_intent."):
        return EventFacts(
            payment_id=payment_id,
            checkout_session_id=None,
            payment_intent_id=str(obj["id"]),
            report=Reported(
                status=STATUS_BY_TYPE[event_type],
                payment_intent_id=str(obj["id"]),
                charge_id=_id(obj.get("latest_charge")),
            ),
            origin=origin_from_metadata(metadata, obj.get("amount"), obj.get("currency"), PaymentFlow.PAYMENT_INTENT),
        )

    # charge.succeeded, charge.refunded
    refunded = obj.get("amount_refunded") if event_type == "charge.refunded" else None
    if refunded is not None and not isinstance(refunded, int):
        raise MalformedEvent("charge.refunded without an integer amount_refunded")
    receipt = obj.get("receipt_url") if isinstance(obj.get("receipt_url"), str) else None
    return EventFacts(
        payment_id=payment_id,
        checkout_session_id=None,
        payment_intent_id=_id(obj.get("payment_intent")),
        report=Reported(
            payment_intent_id=_id(obj.get("payment_intent")),
            charge_id=str(obj["id"]),
            receipt_url=receipt,
            amount_refunded_minor=refunded,
        ),
        origin=None,
    )
