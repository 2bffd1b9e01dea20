"""Prorations: pending invoice items for a change of a subscription's items in the middle of a period.

For each item whose price or quantity changes at time `t` (the `proration_date`, else now) within
the current period [start, end):

- a credit for the unused time on the old price:  -round(unit_amount * quantity * (end - t) / (end - start))
- a charge for the remaining time on the new one: +round(unit_amount * quantity * (end - t) / (end - start))

rounded half up to the currency's minor unit, to the second, as Stripe computes them. A removed
item gets only the credit, an added one only the charge. The items are `invoiceitem`s with
`proration: true`, pending (`invoice` null) until an invoice takes them (invoice.py `draft`):
the next renewal's, or at once with `proration_behavior=always_invoice`.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

from stripe_sandbox import ids, invoicing, objects
from stripe_sandbox.sandbox import Sandbox

Obj = dict[str, Any]


def prorated(unit_amount: int, quantity: int, at: int, start: int, end: int) -> int:
    """The part of a period's price for the time from `at` to the period's end, rounded half up."""
    if end <= start:
        return 0
    exact = Fraction(unit_amount * quantity * (end - at), end - start)
    return int(exact + Fraction(1, 2)) if exact >= 0 else -int(-exact + Fraction(1, 2))


def _date(timestamp: int) -> str:
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC).strftime("%d %b %Y")


def _description(sb: Sandbox, item: Mapping[str, Any], at: int, *, credit: bool) -> str:
    name = invoicing.product_name(sb, item["price"])
    quantity = int(item["quantity"])
    what = name if quantity == 1 else f"{quantity} × {name}"  # noqa: RUF001 - Stripe's own wording
    return f"{'Unused' if credit else 'Remaining'} time on {what} after {_date(at)}"


def _changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return bool(old["price"]["id"] != new["price"]["id"] or old["quantity"] != new["quantity"])


def create(sb: Sandbox, subscription: Obj, old_items: Sequence[Obj], new_items: Sequence[Obj], at: int) -> list[Obj]:
    """The proration invoice items for going from `old_items` to `new_items` at `at` (stored, announced)."""
    first = subscription["items"]["data"][0]
    start, end = int(first["current_period_start"]), int(first["current_period_end"])
    at = min(max(at, start), end)
    if at >= end:
        return []
    customer = sb.store.require("customer", subscription["customer"])
    now = sb.now_for(customer["id"])
    old_by_id = {item["id"]: item for item in old_items}
    new_by_id = {item["id"]: item for item in new_items}
    made: list[Obj] = []
    for item_id in [*old_by_id, *(i for i in new_by_id if i not in old_by_id)]:
        old, new = old_by_id.get(item_id), new_by_id.get(item_id)
        if old is not None and new is not None and not _changed(old, new):
            continue
        for item, credit in ((old, True), (new, False)):
            if item is None:
                continue
            amount = prorated(int(item["price"]["unit_amount"]), int(item["quantity"]), at, start, end)
            made.append(
                objects.invoice_item(
                    item_id=ids.new_id("invoiceitem"),
                    created=now,
                    customer_obj=customer,
                    subscription_item=item,
                    price_obj=item["price"],
                    quantity=int(item["quantity"]),
                    amount=-amount if credit else amount,
                    description=_description(sb, item, at, credit=credit),
                    period_start=at,
                    period_end=end,
                    proration=True,
                )
            )
    for invoice_item in made:
        sb.store.add(invoice_item)
        sb.emit("invoiceitem.created", invoice_item)
    return made
