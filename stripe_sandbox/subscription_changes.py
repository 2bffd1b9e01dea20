"""Subscriptions created and changed through the API: `POST /v1/subscriptions`, `/{id}` and `/{id}/resume`.

Create, by `payment_behavior`:
- a trial: `trialing`, a 0 invoice `paid` (nothing charged)
- `default_incomplete`: `incomplete`, the first invoice `open` with a payment intent in
  `requires_payment_method` for the client to confirm (`confirmation_secret`); confirming it
  pays the invoice and activates the subscription (collection.py)
- `allow_incomplete` (Stripe's default) and `error_if_incomplete`: charged now to
  `default_payment_method` or the customer's default: `active`; a decline leaves it
  `incomplete` (allow) or answers 402 and creates nothing (error: the declined payment intent stays)

Update: items (price, quantity, new, deleted) with prorations (prorations.py) by
`proration_behavior`; `billing_cycle_anchor=now` (or a change of interval) starts a new period at
once and invoices it (`subscription_update`); `pause_collection`; `cancel_at`,
`cancel_at_period_end`; `trial_end` (`now` ends the trial at once); payment settings.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from stripe_sandbox import billing, billing_cycle, collection, ids, invoicing, objects, payments, prorations
from stripe_sandbox.errors import StripeApiError, card_error, invalid, missing, resource_missing
from stripe_sandbox.params import apply_metadata, required
from stripe_sandbox.payments import Result
from stripe_sandbox.sandbox import Sandbox

Obj = dict[str, Any]
NO_PAYMENT_METHOD = (
    "This customer has no attached payment source or default payment method. Please consider adding a default "
    "payment method. For more information, visit "
    "https://stripe.com/docs/billing/subscriptions/payment-methods-setting#payment-method-priority."
)
CANCELED_FIELDS = {"metadata", "cancellation_details", "expand"}


def recurring_price(sb: Sandbox, price_id: str, param: str, currency: str | None = None) -> Obj:
    price = sb.store.require("price", price_id, param=param)
    if price["type"] != "recurring":
        raise invalid(
            f"The price specified is set to `type=one_time` but this field only accepts prices with "
            f"`type=recurring`. Price: {price_id}",
            param=param,
        )
    if currency is not None and price["currency"] != currency:
        raise invalid(
            f"The price specified ({price_id}) has a currency of {price['currency']}, but this subscription "
            f"is in {currency}. All prices on a subscription must have the same currency.",
            param=param,
        )
    return price


def customer_method(sb: Sandbox, customer: Obj, method_id: str, param: str) -> Obj:
    """A payment method attached to this customer (Stripe refuses any other)."""
    method = collection.usable_method(sb, method_id)
    if method is None:
        raise resource_missing("PaymentMethod", method_id, param=param)
    if method["customer"] != customer["id"]:
        raise invalid(
            f"The customer does not have a payment method with the ID {method_id}. The payment method must be "
            "attached to the customer.",
            param=param,
        )
    return method


def _cancellation(sb: Sandbox, subscription: Obj, cancel_at: int | None, p: Mapping[str, Any]) -> dict[str, Any]:
    details = p.get("cancellation_details") or {}
    end = billing.period_end(subscription)
    return {
        "cancel_at": cancel_at,
        "cancel_at_period_end": cancel_at is not None and cancel_at == end,
        "canceled_at": sb.now_for(subscription["customer"]) if cancel_at is not None else None,
        "cancellation_details": {
            "comment": details.get("comment"),
            "feedback": details.get("feedback"),
            "reason": "cancellation_requested" if cancel_at is not None else None,
        },
    }


def _settings(p: Mapping[str, Any]) -> dict[str, Any]:
    """payment_settings and trial_settings as the subscription shows them."""
    settings: dict[str, Any] = {}
    if p.get("payment_settings") is not None:
        given = p["payment_settings"]
        settings["payment_settings"] = {
            "payment_method_options": None,
            "payment_method_types": given.get("payment_method_types"),
            "save_default_payment_method": given.get("save_default_payment_method") or "off",
        }
    if p.get("trial_settings") is not None:
        behaviour = (p["trial_settings"].get("end_behavior") or {}).get("missing_payment_method")
        if behaviour is None:
            raise missing("trial_settings[end_behavior][missing_payment_method]")
        settings["trial_settings"] = {"end_behavior": {"missing_payment_method": behaviour}}
    return settings


# Create -------------------------------------------------------------------------------------------


def create(sb: Sandbox, p: Mapping[str, Any]) -> Obj:
    customer = sb.store.require("customer", required(p, "customer"), param="customer")
    entries = p.get("items") or []
    if not entries:
        raise missing("items")
    lines: list[Obj] = []
    for index, entry in enumerate(entries):
        param = f"items[{index}][price]"
        currency = lines[0]["price"]["currency"] if lines else None
        price = recurring_price(sb, required(entry, "price", prefix=f"items[{index}]"), param, currency)
        lines.append({"price": price, "quantity": entry.get("quantity") or 1, "metadata": entry.get("metadata")})
    now = sb.now_for(customer["id"])
    trial_end = _trial_end(p, now)
    explicit = p.get("default_payment_method")
    method = customer_method(sb, customer, explicit, "default_payment_method") if explicit else None
    settings = _settings(p)
    rec = lines[0]["price"]["recurring"]
    first_end = trial_end or billing.add_interval(now, rec["interval"], rec["interval_count"])
    cancel_at = first_end if p.get("cancel_at_period_end") else p.get("cancel_at")
    if cancel_at is not None:
        pretend = {"customer": customer["id"], "items": {"data": [{"current_period_end": first_end}]}}
        settings.update(_cancellation(sb, pretend, int(cancel_at), p))
    common: dict[str, Any] = {
        "customer": customer,
        "lines": lines,
        "metadata": apply_metadata({}, p.get("metadata")),
        "description": p.get("description"),
        "settings": settings,
    }
    behaviour = p.get("payment_behavior") or "allow_incomplete"
    if trial_end is not None or behaviour == "default_incomplete":
        subscription, invoice = billing.start_subscription(
            sb, trial_end=trial_end, payment_method_id=explicit, paid=False, **common
        )
        if invoice["status"] == "open":
            collection.intent_for(sb, invoice)
    else:
        charged = method or collection.default_method(sb, _for(customer))
        subscription = _charge_and_start(sb, charged, explicit, behaviour, common)
    _item_metadata(subscription, lines)
    return subscription


def _for(customer: Obj) -> Obj:
    return {"customer": customer["id"], "subscription": None}


def _item_metadata(subscription: Obj, lines: Sequence[Obj]) -> None:
    for item, line in zip(subscription["items"]["data"], lines, strict=True):
        item["metadata"] = apply_metadata({}, line.get("metadata")) if line.get("metadata") else {}


def _trial_end(p: Mapping[str, Any], now: int) -> int | None:
    value = p.get("trial_end")
    if value == "now":
        return None
    if value is not None:
        if int(value) <= now:
            raise invalid("Invalid timestamp: must be an integer Unix timestamp in the future.", param="trial_end")
        return int(value)
    days = p.get("trial_period_days")
    return now + int(days) * billing.DAY if days else None


def _charge_and_start(
    sb: Sandbox, method: Obj | None, explicit: str | None, behaviour: str, common: dict[str, Any]
) -> Obj:
    """allow_incomplete / error_if_incomplete: charge the first period now, then start the subscription."""
    if method is None:
        raise invalid(NO_PAYMENT_METHOD)
    customer = common["customer"]
    total = sum(int(line["price"]["unit_amount"]) * int(line["quantity"]) for line in common["lines"])
    intent = payments.create_intent(
        sb,
        amount=total,
        currency=common["lines"][0]["price"]["currency"],
        customer_id=customer["id"],
        description="Subscription creation",
        metadata={},
    )
    attempt = payments.charge_card(sb, intent, sb.store.method_cards[method["id"]], method=method)
    if attempt.result is Result.DECLINED and behaviour == "error_if_incomplete":
        raise attempt.decline_error()
    saving = (common["settings"].get("payment_settings") or {}).get("save_default_payment_method")
    keep = method["id"] if saving == "on_subscription" and attempt.result is Result.SUCCEEDED else None
    subscription, invoice = billing.start_subscription(
        sb,
        trial_end=None,
        payment_method_id=keep or explicit,
        paid=attempt.result is Result.SUCCEEDED,
        intent=intent,
        **common,
    )
    if attempt.result is Result.DECLINED:
        collection.failed(sb, invoice, automatic=False)
    elif attempt.result is Result.PROCESSING:
        collection.settle_later(sb, intent["id"])
    return subscription


# Update -------------------------------------------------------------------------------------------


def update(sb: Sandbox, subscription: Obj, p: Mapping[str, Any]) -> Obj:
    if subscription["status"] in ("canceled", "incomplete_expired") and set(p) - CANCELED_FIELDS:
        raise invalid("A canceled subscription can only update its cancellation_details and metadata.")
    customer = sb.store.require("customer", subscription["customer"])
    now = sb.now_for(customer["id"])
    changes: dict[str, Any] = _simple_changes(sb, customer, subscription, p)
    anchor_now = p.get("billing_cycle_anchor") == "now"
    behaviour = p.get("proration_behavior") or "create_prorations"
    made: list[Obj] = []
    if p.get("items"):
        old_items = subscription["items"]["data"]
        new_items = apply_items(sb, subscription, p["items"], now)
        old_interval = _interval(old_items[0])
        anchor_now = anchor_now or any(_interval(item) != old_interval for item in new_items)
        billed = subscription["status"] in ("active", "past_due", "unpaid")
        if billed and behaviour != "none":
            at = int(p.get("proration_date") or now)
            made = prorations.create(sb, subscription, old_items, [] if anchor_now else new_items, at)
        changes["items"] = {**subscription["items"], "data": new_items}
    trial_end = p.get("trial_end")
    if trial_end is not None and trial_end != "now":
        changes.update(_new_trial_end(subscription, int(trial_end), now, changes.get("items")))
    invoice: Obj | None = None
    invoice_now = made and behaviour == "always_invoice" and not anchor_now and trial_end != "now"
    if invoice_now:
        invoice = invoicing.draft(
            sb, subscription=subscription, billing_reason="subscription_update", period_start=now, period_end=now
        )
        changes["latest_invoice"] = invoice["id"]
    sb.update("customer.subscription.updated", subscription, changes)
    charge = p.get("payment_behavior") != "default_incomplete"
    if invoice is not None:
        sb.emit("invoice.created", invoice)
        billing_cycle.handle_new_invoice(sb, subscription, invoice, charge=charge)
    elif trial_end == "now" and subscription["status"] == "trialing":
        billing_cycle.end_trial(sb, subscription, now)
        invoice = sb.store.get("invoice", subscription["latest_invoice"] or "")
    elif anchor_now and subscription["status"] in ("active", "past_due", "unpaid", "trialing"):
        changes = {"billing_cycle_anchor": now}
        if subscription["status"] == "trialing":
            changes.update({"status": "active", "trial_end": now})
        invoice = billing_cycle.bill_period(
            sb, subscription, now, changes=changes, billing_reason="subscription_update", charge=charge
        )
    if p.get("payment_behavior") == "error_if_incomplete" and invoice is not None and invoice["status"] == "open":
        raise _payment_error(sb, invoice)
    return subscription


def _interval(item: Mapping[str, Any]) -> tuple[str, int]:
    rec = item["price"]["recurring"]
    return str(rec["interval"]), int(rec["interval_count"])


def _payment_error(sb: Sandbox, invoice: Obj) -> StripeApiError:
    intent = sb.store.get("payment_intent", sb.store.invoice_intents.get(invoice["id"], ""))
    error = (intent or {}).get("last_payment_error") or {}
    return card_error(
        error.get("message") or "Your card was declined.",
        code=error.get("code") or "card_declined",
        decline_code=error.get("decline_code"),
        extra={"payment_intent": intent} if intent else None,
    )


def _simple_changes(sb: Sandbox, customer: Obj, subscription: Obj, p: Mapping[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if "metadata" in p:
        changes["metadata"] = apply_metadata(subscription["metadata"], p["metadata"])
    if "description" in p:
        changes["description"] = p["description"]
    if "default_payment_method" in p:
        method_id = p["default_payment_method"]
        if method_id is not None:
            customer_method(sb, customer, method_id, "default_payment_method")
        changes["default_payment_method"] = method_id
    changes.update(_settings(p))
    if p.get("cancel_at_period_end") is not None:
        details = p.get("cancellation_details") or {}
        changes.update(
            billing.cancel_at_period_end(
                sb,
                subscription,
                bool(p["cancel_at_period_end"]),
                comment=details.get("comment"),
                feedback=details.get("feedback"),
            )
        )
    elif "cancel_at" in p:
        value = p["cancel_at"]
        if value in ("min_period_end", "max_period_end"):
            value = billing.period_end(subscription)
        changes.update(_cancellation(sb, subscription, None if value is None else int(value), p))
    elif p.get("cancellation_details") is not None:
        details = {**subscription["cancellation_details"], **p["cancellation_details"]}
        changes["cancellation_details"] = details
    if "pause_collection" in p:
        pause = p["pause_collection"]
        if pause is not None and pause.get("behavior") is None:
            raise missing("pause_collection[behavior]")
        changes["pause_collection"] = (
            None if pause is None else {"behavior": pause["behavior"], "resumes_at": pause.get("resumes_at")}
        )
    return changes


def _new_trial_end(subscription: Obj, trial_end: int, now: int, items: Obj | None) -> dict[str, Any]:
    if trial_end <= now:
        raise invalid("Invalid timestamp: must be an integer Unix timestamp in the future.", param="trial_end")
    moved: Obj = copy.deepcopy(items or subscription["items"])
    for item in moved["data"]:
        item["current_period_end"] = trial_end
    return {
        "trial_end": trial_end,
        "trial_start": subscription["trial_start"] or now,
        "status": "trialing",
        "billing_cycle_anchor": trial_end,
        "items": moved,
    }


def apply_items(sb: Sandbox, subscription: Obj, entries: Sequence[Mapping[str, Any]], now: int) -> list[Obj]:
    """The subscription's items after `items[]`: changed in place by id, deleted, or added."""
    items: list[Obj] = copy.deepcopy(subscription["items"]["data"])
    first = items[0] if items else None
    for index, entry in enumerate(entries):
        param = f"items[{index}]"
        if entry.get("id") is not None:
            item = next((i for i in items if i["id"] == entry["id"]), None)
            if item is None:
                raise resource_missing("subscription_item", entry["id"], param=f"{param}[id]")
            if entry.get("deleted"):
                items.remove(item)
                continue
            if entry.get("price") is not None:
                price = recurring_price(sb, entry["price"], f"{param}[price]", subscription["currency"])
                item.update({"price": copy.deepcopy(price), "plan": objects.plan_from_price(price)})
            if entry.get("quantity") is not None:
                item["quantity"] = entry["quantity"]
            if "metadata" in entry:
                item["metadata"] = apply_metadata(item["metadata"], entry["metadata"])
            continue
        if entry.get("deleted"):
            raise missing(f"{param}[id]")
        price = recurring_price(sb, required(entry, "price", prefix=param), f"{param}[price]", subscription["currency"])
        added = objects.subscription_item(
            item_id=ids.new_id("subscription_item"),
            created=now,
            subscription_id=subscription["id"],
            price_obj=price,
            quantity=entry.get("quantity") or 1,
            period_start=int(first["current_period_start"]) if first else now,
            period_end=int(first["current_period_end"]) if first else now,
        )
        added["metadata"] = apply_metadata({}, entry.get("metadata")) if entry.get("metadata") else {}
        items.append(added)
    if not items:
        raise invalid("A subscription must have at least one item; to end it, cancel the subscription.", param="items")
    return items


# Resume -------------------------------------------------------------------------------------------


def resume(sb: Sandbox, subscription: Obj, p: Mapping[str, Any]) -> Obj:
    if subscription["status"] != "paused":
        raise invalid(
            f"Only subscriptions with status `paused` can be resumed; this subscription's status is "
            f"{subscription['status']}.",
        )
    now = sb.now_for(subscription["customer"])
    sb.update("customer.subscription.updated", subscription, {"status": "active"})
    sb.emit("customer.subscription.resumed", subscription, {"status": "paused"})
    if (p.get("billing_cycle_anchor") or "now") == "now":
        billing_cycle.bill_period(sb, subscription, now, changes={"billing_cycle_anchor": now})
        return subscription
    anchor = int(subscription["billing_cycle_anchor"])
    rec = subscription["items"]["data"][0]["price"]["recurring"]
    start = billing.period_start_at(anchor, rec["interval"], rec["interval_count"], now)
    sb.update(None, subscription, {"items": billing_cycle.moved_items(subscription, start, anchor)})
    return subscription
