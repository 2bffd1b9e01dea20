"""Subscriptions starting and ending, as a paid Checkout Session or `POST /v1/subscriptions` starts them.

- paid now:     subscription `active`, invoice `paid`
- trial:        subscription `trialing`, an invoice of 0 that is `paid` (nothing is charged)
- not paid yet: subscription `incomplete`, invoice `open` until its payment succeeds (collection.py):
                then `paid` and `active`, or `invoice.payment_failed` and still `incomplete`

Events: customer.subscription.created, invoice.created, invoice.finalized, then
invoice.paid and invoice.payment_succeeded once paid; customer.subscription.updated
when a later payment activates the subscription. Renewals are billing_cycle.py's.
"""

from __future__ import annotations

import calendar
import copy
import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from stripe_sandbox import collection, ids, invoicing, objects
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


def period_after(anchor: int, interval: str, count: int, start: int) -> int:
    """The first period end after `start` on a cycle anchored at `anchor` (months keep the anchor's day)."""
    if anchor > start:
        return anchor
    step = 1
    while True:
        end = add_interval(anchor, interval, count * step)
        if end > start:
            return end
        step += 1


def period_start_at(anchor: int, interval: str, count: int, moment: int) -> int:
    """The start of the period containing `moment` on a cycle anchored at `anchor`."""
    start, step = anchor, 1
    if moment < anchor:
        return moment
    while True:
        following = add_interval(anchor, interval, count * step)
        if following > moment:
            return start
        start, step = following, step + 1


def start_subscription(
    sb: Sandbox,
    *,
    customer: Obj,
    lines: Sequence[Obj],
    metadata: Mapping[str, str],
    description: str | None,
    trial_end: int | None,
    payment_method_id: str | None,
    paid: bool,
    intent: Obj | None = None,
    settings: Mapping[str, Any] | None = None,
) -> tuple[Obj, Obj]:
    """A subscription for line items (objects with a recurring `price` and a `quantity`) and its first invoice.

    The invoice is paid (trial, or `paid`: the payment `intent` already succeeded) or left open.
    `settings` are further subscription fields (payment_settings, trial_settings, cancel_at, ...).
    """
    now = sb.now_for(customer["id"])
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
        currency=lines[0]["price"]["currency"],
        items=items,
        status=status,
        metadata=metadata,
        description=description,
        default_payment_method=payment_method_id,
        trial_start=now if trial_end else None,
        trial_end=trial_end,
        billing_cycle_anchor=trial_end or now,
        test_clock=customer.get("test_clock"),
    )
    subscription.update(copy.deepcopy(dict(settings or {})))
    sb.store.add(subscription)
    invoice = invoicing.draft(
        sb,
        subscription=subscription,
        billing_reason="subscription_create",
        period_start=now,
        period_end=now,
        items=items,
        trial=trial_end is not None,
        take_pending=False,
    )
    subscription["latest_invoice"] = invoice["id"]
    invoicing.finalize(sb, invoice, announce=False)
    if intent is not None:
        collection.link(sb, invoice, intent)
    sb.emit("customer.subscription.created", subscription)
    sb.emit("invoice.created", invoice)
    sb.emit("invoice.finalized", invoice)
    if paid or trial_end or int(invoice["amount_due"]) == 0:
        invoicing.mark_paid(sb, invoice)
    return subscription, invoice


def cancel_subscription(sb: Sandbox, subscription: Obj, *, comment: str | None, feedback: str | None) -> Obj:
    now = sb.now_for(subscription["customer"])
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
        "canceled_at": sb.now_for(subscription["customer"]) if at_end else None,
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
