"""Subscription invoices and their states: draft, open, paid, uncollectible, void.

- `draft(...)`       a new invoice (not yet shown by events), with lines for the subscription's items and,
                     when asked, the subscription's pending invoice items (prorations), which it takes
- `finalize`         draft -> open: a number from the customer's sequence, the customer's balance
                     applied, `invoice.finalized` (and at once `paid` when nothing is due)
- `mark_paid`        open -> paid: `invoice.paid`, `invoice.payment_succeeded`
- `void`             open/uncollectible -> void: `invoice.voided` (its payment intent is canceled)
- `mark_uncollectible` open -> uncollectible: `invoice.marked_uncollectible`
- `preview`          what the next renewal will invoice (`invoice.upcoming`: `id` null)
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from stripe_sandbox import ids, objects, payments
from stripe_sandbox.errors import invalid
from stripe_sandbox.money import format_amount
from stripe_sandbox.sandbox import Sandbox

Obj = dict[str, Any]


def product_name(sb: Sandbox, price: Mapping[str, Any]) -> str:
    product = sb.store.get("product", price["product"])
    return str(product["name"]) if product else str(price["product"])


def line_description(sb: Sandbox, price: Mapping[str, Any], quantity: int, *, trial: bool = False) -> str:
    name = product_name(sb, price)
    if trial:
        return f"Trial period for {name}"
    rec = price["recurring"]
    every = rec["interval"] if rec["interval_count"] == 1 else f"{rec['interval_count']} {rec['interval']}s"
    unit = format_amount(int(price["unit_amount"]), price["currency"])
    return f"{quantity} × {name} (at {unit} / {every})"  # noqa: RUF001 - Stripe's own wording


def item_lines(
    sb: Sandbox, invoice_id: str | None, subscription: Obj, items: Sequence[Obj], *, trial: bool = False
) -> list[Obj]:
    """One line per subscription item, over the item's current period (0 during a trial)."""
    lines = []
    for item in items:
        price = item["price"]
        amount = 0 if trial else int(price["unit_amount"]) * int(item["quantity"])
        lines.append(
            objects.invoice_line(
                line_id=ids.new_id("line_item"),
                invoice_id=invoice_id,
                subscription_obj=subscription,
                item=item,
                amount=amount,
                description=line_description(sb, price, int(item["quantity"]), trial=trial),
            )
        )
    return lines


def pending_items(sb: Sandbox, subscription_id: str) -> list[Obj]:
    """The subscription's invoice items not yet on an invoice, oldest first."""
    return sb.store.select(
        "invoiceitem",
        lambda ii: (
            ii["invoice"] is None
            and (ii["parent"]["subscription_details"] or {}).get("subscription") == subscription_id
        ),
    )


def draft(
    sb: Sandbox,
    *,
    subscription: Obj,
    billing_reason: str,
    period_start: int,
    period_end: int,
    items: Sequence[Obj] = (),
    trial: bool = False,
    take_pending: bool = True,
) -> Obj:
    """A draft invoice, stored but not announced (`invoice.created` is the caller's to send)."""
    customer = sb.store.require("customer", subscription["customer"])
    invoice_id = ids.new_id("invoice")
    lines = item_lines(sb, invoice_id, subscription, items, trial=trial)
    taken = pending_items(sb, subscription["id"]) if take_pending else []
    for invoice_item in taken:
        invoice_item["invoice"] = invoice_id
        lines.append(
            objects.invoice_item_line(line_id=ids.new_id("line_item"), invoice_id=invoice_id, invoice_item=invoice_item)
        )
    invoice = objects.invoice(
        invoice_id=invoice_id,
        created=sb.now_for(customer["id"]),
        customer_obj=customer,
        subscription_obj=subscription,
        lines=lines,
        number=None,
        billing_reason=billing_reason,
        period_start=period_start,
        period_end=period_end,
        status="draft",
    )
    return sb.store.add(invoice)


def finalize(sb: Sandbox, invoice: Obj, *, announce: bool = True) -> Obj:
    """draft -> open: numbered, the customer's balance applied, `invoice.finalized` (when `announce`)."""
    if invoice["status"] != "draft":
        raise invalid(
            "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
            code="invoice_not_editable",
        )
    customer = sb.store.require("customer", invoice["customer"])
    now = sb.now_for(customer["id"])
    sequence = int(customer["next_invoice_sequence"])
    customer["next_invoice_sequence"] = sequence + 1
    starting = int(customer["balance"])
    after = int(invoice["total"]) + starting
    customer["balance"] = min(after, 0)
    due = max(after, 0)
    sb.update(
        None,
        invoice,
        {
            "status": "open",
            "number": f"{customer['invoice_prefix']}-{sequence:04d}",
            "effective_at": now,
            "webhooks_delivered_at": now,
            "status_transitions": {**invoice["status_transitions"], "finalized_at": now},
            "starting_balance": starting,
            "ending_balance": min(after, 0),
            "amount_due": due,
            "amount_remaining": due,
        },
    )
    if announce:
        sb.emit("invoice.finalized", invoice)
    return invoice


def mark_paid(sb: Sandbox, invoice: Obj, *, attempt_count: int | None = None) -> None:
    now = sb.now_for(invoice["customer"])
    transitions = {**invoice["status_transitions"], "paid_at": now}
    if attempt_count is None:
        attempt_count = 1 if invoice["amount_due"] else 0
    sb.update(
        None,
        invoice,
        {
            "status": "paid",
            "amount_paid": invoice["amount_due"],
            "amount_remaining": 0,
            "attempt_count": attempt_count,
            "attempted": True,
            "auto_advance": False,
            "next_payment_attempt": None,
            "status_transitions": transitions,
        },
    )
    for payment_id in sb.store.invoice_payments.get(invoice["id"], []):
        payment = sb.store.require("invoice_payment", payment_id)
        payment.update(
            {
                "status": "paid",
                "amount_paid": invoice["amount_paid"],
                "status_transitions": {"canceled_at": None, "paid_at": now},
            }
        )
    sb.store.retries.pop(invoice["id"], None)
    sb.emit("invoice.paid", invoice)
    sb.emit("invoice.payment_succeeded", invoice)


def void(sb: Sandbox, invoice: Obj) -> Obj:
    if invoice["status"] not in ("open", "uncollectible"):
        raise invalid(
            f"You can only void open or uncollectible invoices; this invoice's status is {invoice['status']}.",
            code="invoice_not_editable" if invoice["status"] == "draft" else None,
        )
    now = sb.now_for(invoice["customer"])
    _cancel_intent(sb, invoice, now)
    sb.update(
        None,
        invoice,
        {
            "status": "void",
            "amount_remaining": 0,
            "auto_advance": False,
            "next_payment_attempt": None,
            "status_transitions": {**invoice["status_transitions"], "voided_at": now},
        },
    )
    sb.store.retries.pop(invoice["id"], None)
    sb.emit("invoice.voided", invoice)
    return invoice


def _cancel_intent(sb: Sandbox, invoice: Obj, now: int) -> None:
    intent_id = sb.store.invoice_intents.get(invoice["id"])
    intent = sb.store.get("payment_intent", intent_id) if intent_id else None
    if intent is not None and intent["status"] in payments.CANCELABLE:
        payments.cancel(sb, intent, None)
    for payment_id in sb.store.invoice_payments.get(invoice["id"], []):
        payment = sb.store.require("invoice_payment", payment_id)
        if payment["status"] == "open":
            payment.update({"status": "canceled", "status_transitions": {"canceled_at": now, "paid_at": None}})


def mark_uncollectible(sb: Sandbox, invoice: Obj) -> Obj:
    if invoice["status"] != "open":
        raise invalid(
            f"You can only mark open invoices as uncollectible; this invoice's status is {invoice['status']}.",
        )
    now = sb.now_for(invoice["customer"])
    sb.update(
        None,
        invoice,
        {
            "status": "uncollectible",
            "auto_advance": False,
            "next_payment_attempt": None,
            "status_transitions": {**invoice["status_transitions"], "marked_uncollectible_at": now},
        },
    )
    sb.store.retries.pop(invoice["id"], None)
    sb.emit("invoice.marked_uncollectible", invoice)
    return invoice


def preview(sb: Sandbox, subscription: Obj, period_start: int, period_end: int) -> Obj:
    """The invoice the renewal at `period_start` will make, as `invoice.upcoming` shows it (`id` null)."""
    customer = sb.store.require("customer", subscription["customer"])
    items = []
    for item in subscription["items"]["data"]:
        upcoming = copy.deepcopy(item)
        upcoming.update({"current_period_start": period_start, "current_period_end": period_end})
        items.append(upcoming)
    lines = item_lines(sb, None, subscription, items)
    lines += [
        objects.invoice_item_line(line_id=ids.new_id("line_item"), invoice_id=None, invoice_item=invoice_item)
        for invoice_item in pending_items(sb, subscription["id"])
    ]
    invoice = objects.invoice(
        invoice_id="",
        created=period_start,
        customer_obj=customer,
        subscription_obj=subscription,
        lines=lines,
        number=None,
        billing_reason="upcoming",
        period_start=int(subscription["items"]["data"][0]["current_period_start"]),
        period_end=period_start,
        status="draft",
    )
    invoice.update({"id": None, "lines": objects.list_object(lines, "/v1/invoices/upcoming/lines")})
    starting = int(customer["balance"])
    invoice.update(
        {
            "starting_balance": starting,
            "amount_due": max(int(invoice["total"]) + starting, 0),
            "amount_remaining": max(int(invoice["total"]) + starting, 0),
            "next_payment_attempt": period_start,
        }
    )
    return invoice
