"""Subscriptions and their invoices, as a paid Checkout Session in mode `subscription` creates them.

- paid now:     subscription `active`, invoice `paid`
- trial:        subscription `trialing`, an invoice of 0 that is `paid` (nothing is charged)
- delayed:      subscription `incomplete`, invoice `open` until the payment settles:
                then `paid` and `active`, or `invoice.payment_failed` and still `incomplete`

Events: customer.subscription.created, invoice.created, invoice.finalized, then
invoice.paid and invoice.payment_succeeded once paid; customer.subscription.updated
when a settled payment activates the subscription.
"""

from __future__ import annotations

import calendar
import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from stripe_sandbox import ids, objects
from stripe_sandbox.money import format_amount
from stripe_sandbox.sandbox import Sandbox

Obj = dict[str, Any]
DAY = 24 * 60 * 60


def add_interval(timestamp: int, interval: str, count: int) -> int:
    """`timestamp` plus `count` days, weeks, months or years (months keep the day, clamped to month end)."""
    if interval == "day":
        return timestamp + count * DAY
    if interval == "week":
        return timestamp + count * 7 * DAY
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
    months = count * (12 if interval == "year" else 1)
    year, month = divmod(moment.month - 1 + months, 12)
    year += moment.year
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return int(moment.replace(year=year, month=month + 1, day=day).timestamp())


def _line_description(price: Mapping[str, Any], quantity: int, product_name: str, trial: bool) -> str:
    if trial:
        return f"Trial period for {product_name}"
    rec = price["recurring"]
    every = rec["interval"] if rec["interval_count"] == 1 else f"{rec['interval_count']} {rec['interval']}s"
    unit = format_amount(int(price["unit_amount"]), price["currency"])
    return f"{quantity} × {product_name} (at {unit} / {every})"  # noqa: RUF001 - Stripe's own wording


def start_subscription(
    sb: Sandbox,
    *,
    customer: Obj,
    lines: Sequence[Obj],
    metadata: Mapping[str, str],
    description: str | None,
    trial_days: int | None,
    payment_method_id: str | None,
    paid: bool,
) -> tuple[Obj, Obj]:
    """A subscription for checkout line items (objects "item" with recurring prices) and its first invoice."""
    now = sb.now()
    trial_end = now + trial_days * DAY if trial_days else None
    subscription_id = ids.new_id("subscription")
    items = []
    for line in lines:
        price = line["price"]
        rec = price["recurring"]
        period_end = trial_end or add_interval(now, rec["interval"], rec["interval_count"])
        items.append(
            objects.subscription_item(
                item_id=ids.new_id("subscription_item"),
                created=now,
                subscription_id=subscription_id,
                price_obj=price,
                quantity=line["quantity"],
                period_start=now,
                period_end=period_end,
            )
        )
    status = "trialing" if trial_end else ("active" if paid else "incomplete")
    subscription = objects.subscription(
        subscription_id=subscription_id,
        created=now,
        customer_id=customer["id"],
        currency=lines[0]["currency"],
        items=items,
        status=status,
        metadata=metadata,
        description=description,
        default_payment_method=payment_method_id,
        trial_start=now if trial_end else None,
        trial_end=trial_end,
        billing_cycle_anchor=trial_end or now,
    )
    sb.store.add(subscription)
    invoice = _first_invoice(sb, customer, subscription, items, trial=trial_end is not None)
    subscription["latest_invoice"] = invoice["id"]
    sb.emit("customer.subscription.created", subscription)
    sb.emit("invoice.created", invoice)
    sb.emit("invoice.finalized", invoice)
    if paid or trial_end:
        mark_paid(sb, invoice)
    return subscription, invoice


def _first_invoice(sb: Sandbox, customer: Obj, subscription: Obj, items: Sequence[Obj], *, trial: bool) -> Obj:
    invoice_id = ids.new_id("invoice")
    lines = []
    for item in items:
        price = item["price"]
        product = sb.store.get("product", price["product"])
        name = product["name"] if product else price["product"]
        amount = 0 if trial else int(price["unit_amount"]) * int(item["quantity"])
        lines.append(
            objects.invoice_line(
                line_id=ids.new_id("line_item"),
                invoice_id=invoice_id,
                subscription_obj=subscription,
                item=item,
                amount=amount,
                description=_line_description(price, item["quantity"], name, trial),
            )
        )
    sequence = int(customer["next_invoice_sequence"])
    customer["next_invoice_sequence"] = sequence + 1
    now = sb.now()
    invoice = objects.invoice(
        invoice_id=invoice_id,
        created=now,
        customer_obj=customer,
        subscription_obj=subscription,
        lines=lines,
        number=f"{customer['invoice_prefix']}-{sequence:04d}",
        billing_reason="subscription_create",
        period_start=now,
        period_end=now,
    )
    return sb.store.add(invoice)


def mark_paid(sb: Sandbox, invoice: Obj) -> None:
    now = sb.now()
    transitions = {**invoice["status_transitions"], "paid_at": now}
    sb.update(
        None,
        invoice,
        {
            "status": "paid",
            "amount_paid": invoice["amount_due"],
            "amount_remaining": 0,
            "attempt_count": 1 if invoice["amount_due"] else 0,
            "attempted": True,
            "auto_advance": False,
            "status_transitions": transitions,
        },
    )
    sb.emit("invoice.paid", invoice)
    sb.emit("invoice.payment_succeeded", invoice)


def settle_invoice(sb: Sandbox, invoice: Obj, *, succeeded: bool) -> None:
    """The delayed first payment of a subscription has settled."""
    subscription = sb.store.get("subscription", invoice["subscription"])
    if not succeeded:
        sb.update(None, invoice, {"attempt_count": invoice["attempt_count"] + 1, "attempted": True})
        sb.emit("invoice.payment_failed", invoice)
        return
    mark_paid(sb, invoice)
    if subscription is not None and subscription["status"] == "incomplete":
        sb.update("customer.subscription.updated", subscription, {"status": "active"})


def cancel_subscription(sb: Sandbox, subscription: Obj, *, comment: str | None, feedback: str | None) -> Obj:
    now = sb.now()
    sb.update(
        None,
        subscription,
        {
            "status": "canceled",
            "canceled_at": now,
            "ended_at": now,
            "cancel_at_period_end": False,
            "cancellation_details": {"comment": comment, "feedback": feedback, "reason": "cancellation_requested"},
        },
    )
    sb.emit("customer.subscription.deleted", subscription)
    return subscription


def cancel_at_period_end(
    sb: Sandbox, subscription: Obj, at_end: bool, *, comment: str | None = None, feedback: str | None = None
) -> dict[str, Any]:
    """The changes that (un)schedule a cancellation at the end of the current period."""
    return {
        "cancel_at_period_end": at_end,
        "cancel_at": period_end(subscription) if at_end else None,
        "canceled_at": sb.now() if at_end else None,
        "cancellation_details": {
            "comment": comment,
            "feedback": feedback,
            "reason": "cancellation_requested" if at_end else None,
        },
    }


def period_end(subscription: Mapping[str, Any]) -> int | None:
    """When the current period ends (from the items, where the current API keeps it)."""
    ends = [int(item["current_period_end"]) for item in subscription["items"]["data"]]
    return min(ends) if ends else None
