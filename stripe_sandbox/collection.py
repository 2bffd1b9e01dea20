"""Collecting an open invoice: its payment intent, each attempt, and what a failure does to the subscription.

An invoice has one payment intent, made at its first attempt (or when it is finalized for a
client to confirm: `default_incomplete`), reused by every later attempt. The card is the one
asked for, else the subscription's `default_payment_method`, else the customer's
`invoice_settings.default_payment_method`; with none the attempt fails without a charge.

Events, in order:
- paid:    payment_intent.created (first attempt), payment_intent.succeeded, charge.succeeded,
           invoice.paid, invoice.payment_succeeded, then customer.subscription.updated when the
           subscription was incomplete, past_due or unpaid (-> active)
- failed:  payment_intent.payment_failed, charge.failed, invoice.payment_failed (the invoice stays
           open, `attempt_count` + 1, `next_payment_attempt` set), then customer.subscription.updated
           (active or trialing -> past_due; past_due -> unpaid after the last attempt)

Automatic retries (Smart-Retries-like, fixed): 3, 5 and 7 days after the first failure, 4 attempts
in all; when the fourth fails there is no `next_payment_attempt` and the subscription becomes
`unpaid` (Stripe lets the account choose `unpaid`, `canceled` or leaving it `past_due`). The first
invoice of a subscription is never retried: an `incomplete` subscription expires instead.
"""

from __future__ import annotations

from typing import Any

from stripe_sandbox import ids, invoicing, objects, payments
from stripe_sandbox.payments import Result
from stripe_sandbox.sandbox import Sandbox
from stripe_sandbox.store import Retries

Obj = dict[str, Any]
DAY = 24 * 60 * 60
RETRY_DAYS = (3, 5, 7)
MAX_ATTEMPTS = 1 + len(RETRY_DAYS)


def subscription_of(sb: Sandbox, invoice: Obj) -> Obj | None:
    subscription_id = invoice.get("subscription")
    return sb.store.get("subscription", subscription_id) if subscription_id else None


def usable_method(sb: Sandbox, method_id: str | None) -> Obj | None:
    """A payment method the sandbox can charge (one it made, with its test card)."""
    if not method_id or method_id not in sb.store.method_cards:
        return None
    return sb.store.get("payment_method", method_id)


def default_method(sb: Sandbox, invoice: Obj) -> Obj | None:
    subscription = subscription_of(sb, invoice)
    customer = sb.store.get("customer", invoice["customer"])
    candidates = [
        None if subscription is None else subscription["default_payment_method"],
        None if customer is None else customer["invoice_settings"]["default_payment_method"],
    ]
    for candidate in candidates:
        method = usable_method(sb, candidate)
        if method is not None:
            return method
    return None


def intent_for(sb: Sandbox, invoice: Obj) -> Obj:
    """The invoice's payment intent, made (with its invoice_payment) the first time it is needed."""
    existing = sb.store.invoice_intents.get(invoice["id"])
    if existing is not None:
        intent = sb.store.require("payment_intent", existing)
        if intent["status"] != "canceled":
            return intent
    creating = invoice["billing_reason"] == "subscription_create"
    intent = payments.create_intent(
        sb,
        amount=int(invoice["amount_remaining"]),
        currency=invoice["currency"],
        customer_id=invoice["customer"],
        description="Subscription creation" if creating else "Subscription update",
        metadata={},
    )
    link(sb, invoice, intent)
    return intent


def link(sb: Sandbox, invoice: Obj, intent: Obj) -> None:
    """Record that `intent` pays `invoice` (its `payments` and `confirmation_secret` show it)."""
    sb.store.links(intent["id"]).invoice = invoice["id"]
    sb.store.invoice_intents[invoice["id"]] = intent["id"]
    payment = objects.invoice_payment(
        payment_id=ids.new_id("invoice_payment"),
        created=sb.now_for(invoice["customer"]),
        invoice_obj=invoice,
        intent_id=intent["id"],
    )
    sb.store.add(payment)
    sb.store.invoice_payments.setdefault(invoice["id"], []).append(payment["id"])


def attempt(sb: Sandbox, invoice: Obj, *, method: Obj | None = None, automatic: bool = True) -> payments.Attempt | None:
    """Try to pay an open invoice now; None when there was nothing to charge (no payment method)."""
    method = method or default_method(sb, invoice)
    intent = intent_for(sb, invoice)
    if method is None:
        failed(sb, invoice, automatic=automatic)
        return None
    if intent["status"] not in payments.CONFIRMABLE:
        return None
    card = sb.store.method_cards[method["id"]]
    result = payments.charge_card(sb, intent, card, method=method)
    if result.result is Result.SUCCEEDED:
        succeeded(sb, invoice, method["id"])
    elif result.result is Result.PROCESSING:
        settle_later(sb, intent["id"])
    else:
        failed(sb, invoice, automatic=automatic)
    return result


def settle_later(sb: Sandbox, intent_id: str) -> None:
    def settle_now() -> None:
        intent = sb.store.get("payment_intent", intent_id)
        if intent is not None and payments.settle(sb, intent):
            settled(sb, intent)

    sb.schedule(sb.async_delay_seconds, settle_now)


def settled(sb: Sandbox, intent: Obj) -> None:
    """A delayed payment of an invoice has settled (the intent is `succeeded` or failed)."""
    invoice_id = sb.store.links(intent["id"]).invoice
    invoice = sb.store.get("invoice", invoice_id) if invoice_id else None
    if invoice is None or invoice["status"] not in ("open", "uncollectible"):
        return
    if intent["status"] == "succeeded":
        succeeded(sb, invoice, intent["payment_method"])
    else:
        failed(sb, invoice, automatic=invoice["billing_reason"] != "subscription_create")


def succeeded(sb: Sandbox, invoice: Obj, method_id: str | None) -> None:
    invoicing.mark_paid(sb, invoice, attempt_count=int(invoice["attempt_count"]) + 1)
    subscription = subscription_of(sb, invoice)
    if subscription is None:
        return
    changes: dict[str, Any] = {}
    still_open = sb.store.select(
        "invoice", lambda other: other.get("subscription") == subscription["id"] and other["status"] == "open"
    )
    if subscription["status"] in ("incomplete", "past_due", "unpaid") and not still_open:
        changes["status"] = "active"
    saving = subscription["payment_settings"]["save_default_payment_method"] == "on_subscription"
    if saving and method_id and subscription["default_payment_method"] != method_id:
        changes["default_payment_method"] = method_id
    sb.update("customer.subscription.updated", subscription, changes)


def failed(sb: Sandbox, invoice: Obj, *, automatic: bool) -> None:
    now = sb.now_for(invoice["customer"])
    subscription = subscription_of(sb, invoice)
    next_attempt = invoice["next_payment_attempt"]
    exhausted = False
    first_invoice = invoice["billing_reason"] == "subscription_create" or (
        subscription is not None and subscription["status"] == "incomplete"
    )
    if first_invoice:
        next_attempt = None
    elif automatic:
        retries = sb.store.retries.setdefault(invoice["id"], Retries(first_failure=now))
        retries.automatic_attempts += 1
        if retries.automatic_attempts < MAX_ATTEMPTS:
            next_attempt = retries.first_failure + RETRY_DAYS[retries.automatic_attempts - 1] * DAY
        else:
            next_attempt, exhausted = None, True
    sb.update(
        None,
        invoice,
        {"attempt_count": int(invoice["attempt_count"]) + 1, "attempted": True, "next_payment_attempt": next_attempt},
    )
    sb.emit("invoice.payment_failed", invoice)
    if subscription is None:
        return
    if exhausted and subscription["status"] in ("active", "trialing", "past_due"):
        sb.update("customer.subscription.updated", subscription, {"status": "unpaid"})
    elif subscription["status"] in ("active", "trialing"):
        sb.update("customer.subscription.updated", subscription, {"status": "past_due"})


def collect(sb: Sandbox, invoice: Obj, *, charge: bool = True) -> None:
    """A just-finalized invoice: paid at once when nothing is due, else charged (when `charge`)."""
    if invoice["status"] != "open":
        return
    if int(invoice["amount_due"]) == 0:
        invoicing.mark_paid(sb, invoice)
        return
    if charge:
        attempt(sb, invoice, automatic=True)
