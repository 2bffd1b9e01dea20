"""Reading Stripe's subscription, invoice and checkout session objects (JSON) into domain values. No I/O.

Only the fields this service needs are read. Period fields are read from the
subscription item (where current API versions keep them), falling back to the
subscription itself (older versions); an invoice's subscription from
`parent.subscription_details` (current) or `subscription` (older).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from subscriptions_svc.domain import PaidInvoice, PauseBehavior, Snapshot, Status


class MalformedObject(ValueError):
    """A Stripe object without what its type promises."""


def _id(value: Any) -> str | None:
    """An id, whether Stripe sent it bare or as an expanded object."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, Mapping) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


def _time(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return datetime.fromtimestamp(value, tz=UTC)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def subscription_snapshot(obj: Mapping[str, Any]) -> Snapshot:
    sub_id = _id(obj.get("id"))
    customer = _id(obj.get("customer"))
    try:
        status = Status(str(obj.get("status")))
    except ValueError as error:
        raise MalformedObject(f"subscription status {obj.get('status')!r}") from error
    items = _mapping(obj.get("items")).get("data")
    if not sub_id or not customer or not isinstance(items, list) or not items:
        raise MalformedObject("a subscription needs an id, a customer and items")
    item = _mapping(items[0])
    price_id = _id(item.get("price")) or _id(item.get("plan"))
    if price_id is None:
        raise MalformedObject("a subscription item needs a price")
    quantity = item.get("quantity")
    pause = _mapping(obj.get("pause_collection"))
    behavior = pause.get("behavior")
    metadata = _mapping(obj.get("metadata"))
    return Snapshot(
        stripe_subscription_id=sub_id,
        stripe_customer_id=customer,
        status=status,
        stripe_price_id=price_id,
        stripe_item_id=_id(item.get("id")) or "",
        quantity=quantity if isinstance(quantity, int) and quantity > 0 else 1,
        current_period_start=_time(item.get("current_period_start")) or _time(obj.get("current_period_start")),
        current_period_end=_time(item.get("current_period_end")) or _time(obj.get("current_period_end")),
        trial_end=_time(obj.get("trial_end")),
        cancel_at_period_end=obj.get("cancel_at_period_end") is True,
        cancel_at=_time(obj.get("cancel_at")),
        canceled_at=_time(obj.get("canceled_at")),
        ended_at=_time(obj.get("ended_at")),
        pause_behavior=PauseBehavior(behavior) if behavior in set(PauseBehavior) else None,
        pause_resumes_at=_time(pause.get("resumes_at")),
        subscription_id=_text(metadata.get("subscription_id")),
        user_id=_text(metadata.get("user_id")),
    )


def invoice_subscription_id(invoice: Mapping[str, Any]) -> str | None:
    details = _mapping(_mapping(invoice.get("parent")).get("subscription_details"))
    return _id(details.get("subscription")) or _id(invoice.get("subscription"))


def paid_invoice(invoice: Mapping[str, Any]) -> PaidInvoice | None:
    """The credit-relevant facts of a subscription invoice; None when it is not a subscription's."""
    invoice_id = _id(invoice.get("id"))
    subscription_id = invoice_subscription_id(invoice)
    if invoice_id is None or subscription_id is None:
        return None
    lines = _mapping(invoice.get("lines")).get("data")
    lines = [_mapping(line) for line in lines] if isinstance(lines, list) else []
    # The line of the subscription's own price, not a proration.
    regular = [line for line in lines if not _is_proration(line)] or lines
    line = regular[0] if regular else {}
    period = _mapping(line.get("period"))
    start = _time(period.get("start")) or _time(invoice.get("period_start"))
    end = _time(period.get("end")) or _time(invoice.get("period_end"))
    if start is None or end is None:
        raise MalformedObject("a subscription invoice needs a period")
    quantity = line.get("quantity")
    amount_paid = invoice.get("amount_paid")
    return PaidInvoice(
        stripe_invoice_id=invoice_id,
        stripe_subscription_id=subscription_id,
        billing_reason=str(invoice.get("billing_reason") or ""),
        amount_paid=amount_paid if isinstance(amount_paid, int) else 0,
        stripe_price_id=_line_price(line),
        quantity=quantity if isinstance(quantity, int) and quantity > 0 else 1,
        period_start=start,
        period_end=end,
        currency=str(invoice.get("currency") or ""),
        paid_at=_time(_mapping(invoice.get("status_transitions")).get("paid_at")),
    )


def _is_proration(line: Mapping[str, Any]) -> bool:
    if line.get("proration") is True:
        return True
    parent = _mapping(line.get("parent"))
    for key in ("subscription_item_details", "invoice_item_details"):
        if _mapping(parent.get(key)).get("proration") is True:
            return True
    return False


def _line_price(line: Mapping[str, Any]) -> str | None:
    pricing = _mapping(_mapping(line.get("pricing")).get("price_details"))
    return _id(pricing.get("price")) or _id(line.get("price")) or _id(line.get("plan"))


@dataclass(frozen=True)
class CheckoutFacts:
    checkout_session_id: str
    stripe_subscription_id: str | None
    subscription_id: str | None


def checkout_facts(session: Mapping[str, Any]) -> CheckoutFacts | None:
    """A subscription checkout session's ids; None for other modes."""
    if session.get("mode") != "subscription":
        return None
    session_id = _id(session.get("id"))
    if session_id is None:
        raise MalformedObject("a checkout session needs an id")
    metadata = _mapping(session.get("metadata"))
    return CheckoutFacts(
        checkout_session_id=session_id,
        stripe_subscription_id=_id(session.get("subscription")),
        subscription_id=_text(metadata.get("subscription_id")),
    )


def customer_email(obj: Mapping[str, Any]) -> str | None:
    return _text(obj.get("customer_email")) or _text(obj.get("email"))
