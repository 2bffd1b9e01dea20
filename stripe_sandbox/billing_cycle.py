"""The billing cycle: what happens to the subscriptions of a test clock's customers as the clock advances.

Every boundary a subscription reaches is handled in time order (ties in the order below), with
the clock's `frozen_time` set to the boundary while it is handled, so objects and events get
that time; a subscription may cross several periods in one advance, each billed in turn.

- incomplete for 23 hours (first invoice unpaid) -> `incomplete_expired`
  (customer.subscription.updated), its invoice voided (invoice.voided)
- `cancel_at` reached (also `cancel_at_period_end`) -> `canceled`, `ended_at` (customer.subscription.deleted);
  no invoice
- `pause_collection.resumes_at` reached -> `pause_collection` cleared (customer.subscription.updated)
- trial end -> `active` and the first paid period (see renewal); with no payment method and
  `trial_settings[end_behavior][missing_payment_method]` `pause` -> `paused`
  (customer.subscription.updated, customer.subscription.paused), `cancel` -> `canceled`
- renewal -> the items' `current_period_start/end` move on (customer.subscription.updated with
  `previous_attributes`), an invoice (`subscription_cycle`) for the new period plus pending
  invoice items (invoice.created), then per `pause_collection`: none -> finalized and charged
  (collection.py); `void` -> voided (invoice.voided); `keep_as_draft` -> left a draft;
  `mark_uncollectible` -> finalized then uncollectible (invoice.marked_uncollectible).
  An `unpaid` subscription's renewal invoices stay drafts.
- `next_payment_attempt` of an open invoice reached -> another attempt (collection.py)
- 3 days before a trial ends: customer.subscription.trial_will_end
- 7 days before a renewal or trial end: invoice.upcoming (an invoice preview, `id` null), not sent
  when the subscription is to be canceled by then

Stripe leaves a renewal invoice a draft for about an hour before finalizing it; here it is
finalized and charged at the boundary itself.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from stripe_sandbox import collection, invoicing
from stripe_sandbox.billing import DAY, period_after, period_end
from stripe_sandbox.sandbox import Sandbox

Obj = dict[str, Any]
HOUR = 60 * 60
TRIAL_WILL_END_BEFORE = 3 * DAY
UPCOMING_BEFORE = 7 * DAY
INCOMPLETE_EXPIRES_AFTER = 23 * HOUR
MAX_STEPS = 100_000
ORDER = ("expire", "cancel", "resume_collection", "trial_end", "renewal", "retry", "trial_will_end", "upcoming")


@dataclass(frozen=True, order=True)
class Due:
    at: int
    rank: int
    subscription_id: str
    kind: str
    invoice_id: str = ""


def _due(at: int, kind: str, subscription: Obj, invoice_id: str = "") -> Due:
    return Due(at, ORDER.index(kind), subscription["id"], kind, invoice_id)


def due(sb: Sandbox, subscription: Obj) -> list[Due]:
    """What is still to happen to this subscription, and when."""
    status = subscription["status"]
    if status in ("canceled", "incomplete_expired"):
        return []
    if status == "incomplete":
        latest = sb.store.get("invoice", subscription["latest_invoice"] or "")
        if latest is None or latest["status"] == "paid":
            return []
        return [_due(int(subscription["created"]) + INCOMPLETE_EXPIRES_AFTER, "expire", subscription)]
    found: list[Due] = []
    if subscription["cancel_at"] is not None:
        found.append(_due(int(subscription["cancel_at"]), "cancel", subscription))
    pause = subscription["pause_collection"]
    if pause and pause.get("resumes_at"):
        found.append(_due(int(pause["resumes_at"]), "resume_collection", subscription))
    if status == "paused":
        return found
    start = int(subscription["items"]["data"][0]["current_period_start"])
    if status == "trialing":
        boundary = int(subscription["trial_end"])
        found.append(_due(boundary, "trial_end", subscription))
        _notice(sb, found, subscription, "trial_will_end", boundary - TRIAL_WILL_END_BEFORE, boundary, start)
    else:
        boundary = int(period_end(subscription) or 0)
        found.append(_due(boundary, "renewal", subscription))
    cancel_at = subscription["cancel_at"]
    if cancel_at is None or int(cancel_at) > boundary:
        _notice(sb, found, subscription, "upcoming", boundary - UPCOMING_BEFORE, boundary, start)
    for invoice in sb.store.select(
        "invoice", lambda i: i.get("subscription") == subscription["id"] and i["status"] == "open"
    ):
        if invoice["next_payment_attempt"] is not None:
            found.append(_due(int(invoice["next_payment_attempt"]), "retry", subscription, invoice["id"]))
    return found


def _notice(sb: Sandbox, found: list[Due], subscription: Obj, kind: str, at: int, boundary: int, start: int) -> None:
    if at > start and (subscription["id"], kind, boundary) not in sb.store.notices:
        found.append(_due(at, kind, subscription))


def run_until(sb: Sandbox, clock: Obj, target: int) -> None:
    """Handle every boundary of the clock's subscriptions up to `target`, in time order."""
    for _ in range(MAX_STEPS):
        subscriptions = subscriptions_on(sb, clock["id"])
        pending = [d for s in subscriptions for d in due(sb, s) if d.at <= target]
        if not pending:
            return
        step = min(pending)
        clock["frozen_time"] = max(int(clock["frozen_time"]), step.at)
        perform(sb, step)
    raise RuntimeError("the billing cycle did not settle")


def subscriptions_on(sb: Sandbox, clock_id: str) -> list[Obj]:
    customers = {c["id"] for c in sb.store.all("customer") if c.get("test_clock") == clock_id}
    return sb.store.select("subscription", lambda s: s["customer"] in customers)


def perform(sb: Sandbox, step: Due) -> None:
    subscription = sb.store.require("subscription", step.subscription_id)
    now = sb.now_for(subscription["customer"])
    if step.kind == "expire":
        expire_incomplete(sb, subscription)
    elif step.kind == "cancel":
        end(sb, subscription)
    elif step.kind == "resume_collection":
        sb.update("customer.subscription.updated", subscription, {"pause_collection": None})
    elif step.kind == "trial_end":
        end_trial(sb, subscription, now)
    elif step.kind == "renewal":
        bill_period(sb, subscription, int(period_end(subscription) or now), changes={})
    elif step.kind == "retry":
        invoice = sb.store.require("invoice", step.invoice_id)
        invoice["next_payment_attempt"] = None
        collection.attempt(sb, invoice, automatic=True)
    elif step.kind == "trial_will_end":
        sb.store.notices.add((subscription["id"], "trial_will_end", int(subscription["trial_end"])))
        sb.emit("customer.subscription.trial_will_end", subscription)
    elif step.kind == "upcoming":
        trialing = subscription["status"] == "trialing"
        boundary = int(subscription["trial_end"]) if trialing else int(period_end(subscription) or now)
        sb.store.notices.add((subscription["id"], "upcoming", boundary))
        anchor = boundary if trialing else int(subscription["billing_cycle_anchor"])
        price = subscription["items"]["data"][0]["price"]["recurring"]
        next_end = period_after(anchor, price["interval"], price["interval_count"], boundary)
        sb.emit("invoice.upcoming", invoicing.preview(sb, subscription, boundary, next_end))


def moved_items(subscription: Obj, start: int, anchor: int) -> Obj:
    """The subscription's items (a list object) moved to the period beginning at `start`."""
    items: Obj = copy.deepcopy(subscription["items"])
    for item in items["data"]:
        rec = item["price"]["recurring"]
        item["current_period_start"] = start
        item["current_period_end"] = period_after(anchor, rec["interval"], rec["interval_count"], start)
    return items


def bill_period(
    sb: Sandbox,
    subscription: Obj,
    start: int,
    *,
    changes: dict[str, Any],
    billing_reason: str = "subscription_cycle",
    charge: bool = True,
) -> Obj:
    """Move to the period beginning at `start` (with `changes`), invoice it and collect it as the
    subscription's `pause_collection` says; the invoice."""
    anchor: int = changes.get("billing_cycle_anchor") or subscription["billing_cycle_anchor"]
    previous_start = int(subscription["items"]["data"][0]["current_period_start"])
    items = moved_items(subscription, start, anchor)
    invoice = invoicing.draft(
        sb,
        subscription=subscription,
        billing_reason=billing_reason,
        period_start=previous_start,
        period_end=start,
        items=items["data"],
    )
    moved = {"items": items, "latest_invoice": invoice["id"], **changes}
    sb.update("customer.subscription.updated", subscription, moved)
    sb.emit("invoice.created", invoice)
    handle_new_invoice(sb, subscription, invoice, charge=charge)
    return invoice


def handle_new_invoice(sb: Sandbox, subscription: Obj, invoice: Obj, *, charge: bool = True) -> None:
    """A new draft invoice of the subscription: finalized and collected, or as `pause_collection` says."""
    pause = subscription["pause_collection"]
    behavior = pause["behavior"] if pause else None
    if behavior == "keep_as_draft" or subscription["status"] == "unpaid":
        invoice["auto_advance"] = False
        return
    if behavior == "void":
        invoicing.finalize(sb, invoice, announce=False)
        invoicing.void(sb, invoice)
        return
    invoicing.finalize(sb, invoice)
    if behavior == "mark_uncollectible":
        invoicing.mark_uncollectible(sb, invoice)
        return
    if charge:
        collection.collect(sb, invoice)
    elif int(invoice["amount_due"]) > 0:
        collection.intent_for(sb, invoice)
    else:
        invoicing.mark_paid(sb, invoice)


def end_trial(sb: Sandbox, subscription: Obj, now: int) -> None:
    """The trial is over (at its `trial_end`, or now when told): the first paid period begins."""
    changes: dict[str, Any] = {"billing_cycle_anchor": now}
    if subscription["trial_end"] != now:
        changes["trial_end"] = now
    behaviour = subscription["trial_settings"]["end_behavior"]["missing_payment_method"]
    if collection.default_method(sb, _pretend_invoice(subscription)) is None and behaviour != "create_invoice":
        if behaviour == "pause":
            items = moved_items(subscription, now, now)
            sb.update("customer.subscription.updated", subscription, {"status": "paused", "items": items, **changes})
            sb.emit("customer.subscription.paused", subscription, {"status": "trialing"})
        else:
            end(sb, subscription)
        return
    bill_period(sb, subscription, now, changes={"status": "active", **changes})


def _pretend_invoice(subscription: Obj) -> Obj:
    """Just enough of an invoice for finding the payment method a subscription's invoice would use."""
    return {"customer": subscription["customer"], "subscription": subscription["id"]}


def end(sb: Sandbox, subscription: Obj) -> None:
    """`cancel_at` reached (or a trial ending with no way to pay): the subscription is canceled."""
    now = sb.now_for(subscription["customer"])
    changes = {"status": "canceled", "ended_at": now, "canceled_at": subscription["canceled_at"] or now}
    sb.update(None, subscription, changes)
    sb.emit("customer.subscription.deleted", subscription)


def expire_incomplete(sb: Sandbox, subscription: Obj) -> None:
    now = sb.now_for(subscription["customer"])
    sb.update("customer.subscription.updated", subscription, {"status": "incomplete_expired", "ended_at": now})
    invoice = sb.store.get("invoice", subscription["latest_invoice"] or "")
    if invoice is not None and invoice["status"] == "open":
        invoicing.void(sb, invoice)
