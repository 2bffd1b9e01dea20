"""/v1/payment_intents: create, retrieve, update, confirm, cancel, list (filter `customer`).

Confirming the payment intent of an invoice (`latest_invoice.confirmation_secret`, as
Elements does) pays that invoice and activates its subscription (collection.py).

Confirm with Stripe's test payment method ids: `pm_card_visa` and `pm_card_mastercard`
succeed; `pm_card_chargeDeclined` (and `pm_card_chargeDeclinedInsufficientFunds`)
is declined with a 402 card_error, and `payment_intent.payment_failed`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stripe_sandbox import cards, checkout, collection, payments
from stripe_sandbox.api import Call, Endpoint
from stripe_sandbox.errors import StripeApiError, invalid, missing, resource_missing, unexpected_state
from stripe_sandbox.params import Array, Boolean, Choice, Field, Hash, Integer, Metadata, Params, Text, apply_metadata
from stripe_sandbox.payments import Result
from stripe_sandbox.routes.checkout_sessions import MINIMUM_AMOUNT
from stripe_sandbox.routes.common import check_currency, check_email, check_url, list_params, listing, matches, retrieve
from stripe_sandbox.sandbox import Sandbox

Obj = dict[str, Any]
MAX_AMOUNT = 99_999_999

FIELDS: dict[str, Field] = {
    "amount": Integer(minimum=1, maximum=MAX_AMOUNT),
    "currency": Text(3),
    "customer": Text(),
    "description": Text(1000),
    "metadata": Metadata(),
    "automatic_payment_methods": Hash({"enabled": Boolean(), "allow_redirects": Choice(("always", "never"))}),
    "payment_method_types": Array(Choice(("card",))),
    "payment_method": Text(),
    "confirm": Boolean(),
    "return_url": Text(5000),
    "receipt_email": Text(800),
    "statement_descriptor": Text(22),
    "capture_method": Choice(("automatic", "automatic_async")),
}
UPDATE_FIELDS: dict[str, Field] = {
    "amount": Integer(minimum=1, maximum=MAX_AMOUNT),
    "currency": Text(3),
    "customer": Text(),
    "description": Text(1000),
    "metadata": Metadata(),
    "payment_method": Text(),
    "receipt_email": Text(800),
    "statement_descriptor": Text(22),
}
CONFIRM_FIELDS: dict[str, Field] = {"payment_method": Text(), "return_url": Text(5000), "receipt_email": Text(800)}
CANCEL_FIELDS: dict[str, Field] = {
    "cancellation_reason": Choice(("abandoned", "duplicate", "fraudulent", "requested_by_customer"))
}


def _method(sb: Sandbox, value: str, customer_id: str | None) -> tuple[cards.Card, Obj]:
    """A payment method for a confirm: one of Stripe's test ids (a fresh `pm_...` is made), or one made before."""
    card = cards.card_for_payment_method(value)
    if card is not None:
        return card, payments.create_payment_method(sb, card, customer_id=customer_id, email=None, name=None)
    method = sb.store.get("payment_method", value)
    stored = sb.store.method_cards.get(value)
    if method is None or stored is None:
        raise resource_missing("PaymentMethod", value, param="payment_method")
    return stored, method


def _check_amount(amount: int, currency: str) -> None:
    if amount < MINIMUM_AMOUNT:
        raise invalid(
            f"Amount must be at least {MINIMUM_AMOUNT} {currency} minor units.", param="amount", code="amount_too_small"
        )


def create(call: Call) -> Obj:
    p, sb = call.params, call.sandbox
    if p.get("amount") is None:
        raise missing("amount")
    if p.get("currency") is None:
        raise missing("currency")
    currency = check_currency(p["currency"], "currency")
    _check_amount(p["amount"], currency)
    if p.get("customer") is not None:
        sb.store.require("customer", p["customer"], param="customer")
    automatic = p.get("automatic_payment_methods") or {}
    if automatic and automatic.get("enabled") is None:
        raise missing("automatic_payment_methods[enabled]")
    check_url(p.get("return_url"), "return_url")
    intent = payments.create_intent(
        sb,
        amount=p["amount"],
        currency=currency,
        customer_id=p.get("customer"),
        description=p.get("description"),
        metadata=apply_metadata({}, p.get("metadata")),
        receipt_email=check_email(p.get("receipt_email"), "receipt_email"),
        statement_descriptor=p.get("statement_descriptor"),
        automatic_payment_methods=bool(automatic.get("enabled")),
    )
    if p.get("payment_method") is not None:
        card, method = _method(sb, p["payment_method"], intent["customer"])
        if p.get("confirm"):
            return _confirm(sb, intent, card, method)
        sb.update(None, intent, {"payment_method": method["id"], "status": "requires_confirmation"})
    elif p.get("confirm"):
        raise missing("payment_method")
    return intent


def _confirm(sb: Sandbox, intent: Obj, card: cards.Card, method: Obj) -> Obj:
    attempt = payments.charge_card(sb, intent, card, method=method)
    invoice_id = sb.store.links(intent["id"]).invoice
    invoice = sb.store.get("invoice", invoice_id) if invoice_id else None
    if invoice is not None and invoice["status"] in ("open", "uncollectible"):
        # The payment intent of an invoice (`confirmation_secret`): its outcome is the invoice's.
        if attempt.result is Result.SUCCEEDED:
            collection.succeeded(sb, invoice, method["id"])
        elif attempt.result is Result.DECLINED:
            collection.failed(sb, invoice, automatic=False)
    if attempt.result is Result.DECLINED:
        raise attempt.decline_error()
    if attempt.result is Result.PROCESSING:
        checkout.schedule_settlement(sb, intent["id"])
    return intent


def confirm(call: Call) -> Obj:
    p, sb = call.params, call.sandbox
    intent = sb.store.require("payment_intent", call.path["id"])
    payments.require_confirmable(intent)
    if sb.store.links(intent["id"]).checkout_session is not None:
        raise _checkout_owned(intent, "confirm")
    check_url(p.get("return_url"), "return_url")
    if p.get("receipt_email") is not None:
        intent["receipt_email"] = check_email(p["receipt_email"], "receipt_email")
    chosen = p.get("payment_method") or intent["payment_method"]
    if chosen is None:
        raise unexpected_state(
            "You cannot confirm this PaymentIntent because it's missing a payment method. To confirm the "
            "PaymentIntent with a test card, pass `payment_method=pm_card_visa`.",
            code="payment_intent_unexpected_state",
            extra={"payment_intent": intent},
        )
    card, method = _method(sb, chosen, intent["customer"])
    return _confirm(sb, intent, card, method)


def _checkout_owned(intent: Obj, action: str) -> StripeApiError:
    return unexpected_state(
        f"You cannot {action} this PaymentIntent because it belongs to a Checkout Session; "
        "pay or expire the Checkout Session instead.",
        code="payment_intent_unexpected_state",
        extra={"payment_intent": intent},
    )


def update(call: Call) -> Obj:
    p, sb = call.params, call.sandbox
    intent = sb.store.require("payment_intent", call.path["id"])
    changes: dict[str, Any] = {}
    if "metadata" in p:
        changes["metadata"] = apply_metadata(intent["metadata"], p["metadata"])
    if "description" in p:
        changes["description"] = p["description"]
    if "receipt_email" in p:
        changes["receipt_email"] = check_email(p["receipt_email"], "receipt_email")
    if "statement_descriptor" in p:
        changes["statement_descriptor"] = p["statement_descriptor"]
    money = {name: p[name] for name in ("amount", "currency", "customer", "payment_method") if p.get(name) is not None}
    if money and intent["status"] not in payments.CONFIRMABLE:
        raise unexpected_state(
            f"You cannot update this PaymentIntent's {', '.join(money)} because it has a status of {intent['status']}.",
            code="payment_intent_unexpected_state",
            extra={"payment_intent": intent},
        )
    if "currency" in money:
        changes["currency"] = check_currency(money["currency"], "currency")
    if "amount" in money:
        _check_amount(money["amount"], str(changes.get("currency", intent["currency"])))
        changes["amount"] = money["amount"]
    if "customer" in money:
        changes["customer"] = sb.store.require("customer", money["customer"], param="customer")["id"]
    if "payment_method" in money:
        _, method = _method(sb, money["payment_method"], intent["customer"])
        changes.update({"payment_method": method["id"], "status": "requires_confirmation"})
    return sb.update(None, intent, changes)


def cancel(call: Call) -> Obj:
    sb = call.sandbox
    intent = sb.store.require("payment_intent", call.path["id"])
    if sb.store.links(intent["id"]).checkout_session is not None:
        raise _checkout_owned(intent, "cancel")
    return payments.cancel(sb, intent, call.params.get("cancellation_reason"))


def _keep(intent: Obj, p: Mapping[str, Any]) -> bool:
    return matches(p, "customer", intent["customer"])


def endpoints() -> list[Endpoint]:
    return [
        Endpoint("POST", "/v1/payment_intents", create, Params(FIELDS)),
        Endpoint(
            "GET",
            "/v1/payment_intents",
            listing("payment_intent", "/v1/payment_intents", _keep),
            list_params({"customer": Text()}),
        ),
        Endpoint("GET", "/v1/payment_intents/{id}", retrieve("payment_intent")),
        Endpoint("POST", "/v1/payment_intents/{id}", update, Params(UPDATE_FIELDS)),
        Endpoint("POST", "/v1/payment_intents/{id}/confirm", confirm, Params(CONFIRM_FIELDS)),
        Endpoint("POST", "/v1/payment_intents/{id}/cancel", cancel, Params(CANCEL_FIELDS)),
    ]
