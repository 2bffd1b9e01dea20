"""Money moving: payment intents charged with a test card, delayed payments settling, refunds.

Each function changes the objects and emits the events Stripe emits for that
change, in this order:

- success:  payment_intent.succeeded, charge.succeeded
- decline:  payment_intent.payment_failed, charge.failed
- delayed:  payment_intent.processing, charge.pending; later success as above,
            or payment_intent.payment_failed, charge.failed
- refund:   refund.created, charge.refunded
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stripe_sandbox import ids, objects
from stripe_sandbox.cards import Behaviour, Card
from stripe_sandbox.errors import DOC_URL, StripeApiError, card_error, invalid, unexpected_state
from stripe_sandbox.money import format_amount
from stripe_sandbox.sandbox import Sandbox

Obj = dict[str, Any]
CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
CANCELABLE = ("requires_payment_method", "requires_capture", "requires_confirmation", "requires_action", "processing")
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")
# Test cards are reported with a fixed expiry: what was typed on the page is never kept.
TEST_EXPIRY_MONTH = 12
TEST_EXPIRY_YEARS_AHEAD = 3


class Result(enum.Enum):
    SUCCEEDED = "succeeded"
    PROCESSING = "processing"
    DECLINED = "declined"


@dataclass(frozen=True)
class Attempt:
    result: Result
    intent: Obj
    charge: Obj
    payment_method: Obj
    card: Card

    def decline_error(self) -> StripeApiError:
        """The 402 card_error Stripe answers a confirm with."""
        error = self.intent["last_payment_error"] or {}
        return card_error(
            self.card.message or "Your card was declined.",
            code="card_declined",
            decline_code=self.card.decline_code,
            extra={
                "charge": self.charge["id"],
                "payment_intent": self.intent,
                "payment_method": self.payment_method,
                "request_log_url": None,
                "advice_code": error.get("advice_code"),
            },
        )


def create_intent(
    sb: Sandbox,
    *,
    amount: int,
    currency: str,
    customer_id: str | None,
    description: str | None,
    metadata: Mapping[str, str],
    receipt_email: str | None = None,
    statement_descriptor: str | None = None,
    automatic_payment_methods: bool = False,
) -> Obj:
    intent = objects.payment_intent(
        intent_id=ids.new_id("payment_intent"),
        created=sb.now_for(customer_id),
        amount=amount,
        currency=currency,
        customer_id=customer_id,
        description=description,
        metadata=metadata,
        automatic_payment_methods=automatic_payment_methods,
        receipt_email=receipt_email,
        statement_descriptor=statement_descriptor,
    )
    sb.store.add(intent)
    sb.emit("payment_intent.created", intent)
    return intent


def create_payment_method(
    sb: Sandbox, card: Card, *, customer_id: str | None, email: str | None, name: str | None
) -> Obj:
    created = sb.now_for(customer_id)
    method = objects.payment_method(
        method_id=ids.new_id("payment_method"),
        created=created,
        customer_id=customer_id,
        brand=card.brand,
        last4=card.last4,
        exp_month=TEST_EXPIRY_MONTH,
        exp_year=_year(created) + TEST_EXPIRY_YEARS_AHEAD,
        funding=card.funding,
        country=card.country,
        email=email,
        name=name,
    )
    sb.store.method_cards[method["id"]] = card
    return sb.store.add(method)


def _year(timestamp: int) -> int:
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC).year


def require_confirmable(intent: Obj) -> None:
    if intent["status"] in CONFIRMABLE:
        return
    if intent["status"] == "succeeded":
        message = (
            "You cannot confirm this PaymentIntent because it has already succeeded after being previously confirmed."
        )
    else:
        message = f"You cannot confirm this PaymentIntent because it has a status of {intent['status']}."
    raise unexpected_state(message, code="payment_intent_unexpected_state", extra={"payment_intent": intent})


def charge_card(
    sb: Sandbox,
    intent: Obj,
    card: Card,
    *,
    email: str | None = None,
    name: str | None = None,
    method: Obj | None = None,
) -> Attempt:
    """Confirm `intent` with `card` (and its payment method, created when not given); it must be confirmable."""
    require_confirmable(intent)
    if method is None:
        method = create_payment_method(sb, card, customer_id=intent["customer"], email=email, name=name)
    charge_id = ids.new_id("charge")
    receipt_url = sb.url(f"/receipts/{charge_id}")
    if card.behaviour is Behaviour.SUCCEED:
        charge = sb.store.add(
            objects.charge(
                charge_id=charge_id,
                created=sb.now_for(intent["customer"]),
                intent=intent,
                method=method,
                status="succeeded",
                receipt_url=receipt_url,
            )
        )
        _succeed(sb, intent, charge, method)
        return Attempt(Result.SUCCEEDED, intent, charge, method, card)
    if card.behaviour.delayed:
        charge = sb.store.add(
            objects.charge(
                charge_id=charge_id,
                created=sb.now_for(intent["customer"]),
                intent=intent,
                method=method,
                status="pending",
                receipt_url=receipt_url,
            )
        )
        charge.update({"captured": True, "amount_captured": intent["amount"]})
        sb.update(
            None,
            intent,
            {
                "status": "processing",
                "processing": {"type": "card"},
                "payment_method": method["id"],
                "latest_charge": charge["id"],
                "last_payment_error": None,
            },
        )
        sb.store.links(intent["id"]).pending = card.behaviour
        sb.emit("payment_intent.processing", intent)
        sb.emit("charge.pending", charge)
        return Attempt(Result.PROCESSING, intent, charge, method, card)
    charge = sb.store.add(
        objects.charge(
            charge_id=charge_id,
            created=sb.now_for(intent["customer"]),
            intent=intent,
            method=method,
            status="failed",
            receipt_url=receipt_url,
            failure_code="card_declined",
            failure_message=card.message,
            decline_code=card.decline_code,
        )
    )
    _fail(sb, intent, charge, method, card)
    return Attempt(Result.DECLINED, intent, charge, method, card)


def _succeed(sb: Sandbox, intent: Obj, charge: Obj, method: Obj) -> None:
    sb.update(
        None,
        intent,
        {
            "status": "succeeded",
            "amount_received": intent["amount"],
            "payment_method": method["id"],
            "latest_charge": charge["id"],
            "last_payment_error": None,
            "processing": None,
        },
    )
    sb.emit("payment_intent.succeeded", intent)
    sb.emit("charge.succeeded", charge)


def _fail(sb: Sandbox, intent: Obj, charge: Obj, method: Obj, card: Card) -> None:
    message = card.message or "Your card was declined."
    sb.update(
        None,
        intent,
        {
            "status": "requires_payment_method",
            "payment_method": None,
            "latest_charge": charge["id"],
            "processing": None,
            "last_payment_error": {
                "advice_code": None,
                "charge": charge["id"],
                "code": "card_declined",
                "decline_code": card.decline_code,
                "doc_url": DOC_URL.format("card-declined"),
                "message": message,
                "network_advice_code": None,
                "network_decline_code": None,
                "param": None,
                "payment_method": method,
                "type": "card_error",
            },
        },
    )
    sb.emit("payment_intent.payment_failed", intent)
    sb.emit("charge.failed", charge)


def settle(sb: Sandbox, intent: Obj, *, succeed: bool | None = None) -> bool:
    """Finish a processing (delayed) payment: as its card says, or as told. False when nothing was pending."""
    links = sb.store.links(intent["id"])
    if intent["status"] != "processing" or links.pending is None:
        return False
    outcome = links.pending is Behaviour.DELAYED_SUCCESS if succeed is None else succeed
    links.pending = None
    charge = sb.store.require("charge", intent["latest_charge"])
    method = sb.store.require("payment_method", charge["payment_method"])
    if outcome:
        charge.update(
            {
                "status": "succeeded",
                "paid": True,
                "outcome": objects.outcome("succeeded"),
                "balance_transaction": ids.new_id("balance_transaction"),
            }
        )
        _succeed(sb, intent, charge, method)
    else:
        card = Card(
            method["card"]["brand"],
            method["card"]["last4"],
            Behaviour.DELAYED_FAILURE,
            "generic_decline",
            "Your card was declined.",
        )
        charge.update(
            {
                "status": "failed",
                "paid": False,
                "captured": False,
                "amount_captured": 0,
                "failure_code": "card_declined",
                "failure_message": card.message,
                "outcome": objects.outcome("failed", decline_code=card.decline_code),
            }
        )
        _fail(sb, intent, charge, method, card)
    return True


def cancel(sb: Sandbox, intent: Obj, reason: str | None) -> Obj:
    if intent["status"] not in CANCELABLE:
        raise unexpected_state(
            f"You cannot cancel this PaymentIntent because it has a status of {intent['status']}. Only a "
            f"PaymentIntent with one of the following statuses may be canceled: {', '.join(CANCELABLE)}.",
            code="payment_intent_unexpected_state",
            extra={"payment_intent": intent},
        )
    sb.store.links(intent["id"]).pending = None
    sb.update(
        None,
        intent,
        {
            "status": "canceled",
            "canceled_at": sb.now_for(intent["customer"]),
            "cancellation_reason": reason,
            "processing": None,
        },
    )
    sb.emit("payment_intent.canceled", intent)
    return intent


def refundable_charge(sb: Sandbox, *, charge_id: str | None, intent_id: str | None) -> Obj:
    if charge_id is None and intent_id is None:
        raise invalid("One of `charge` or `payment_intent` is required.", param="charge", code="parameter_missing")
    if intent_id is not None:
        intent = sb.store.require("payment_intent", intent_id, param="payment_intent")
        if intent["status"] != "succeeded" or intent["latest_charge"] is None:
            raise invalid(
                f"This PaymentIntent ({intent_id}) does not have a successful charge to refund.",
                param="payment_intent",
                code="charge_not_refundable" if intent["status"] != "requires_payment_method" else None,
            )
        charge = sb.store.require("charge", intent["latest_charge"])
        if charge_id is not None and charge_id != charge["id"]:
            raise invalid(f"The charge {charge_id} does not belong to the PaymentIntent {intent_id}.", param="charge")
        return charge
    assert charge_id is not None
    charge = sb.store.require("charge", charge_id, param="charge")
    if charge["status"] != "succeeded":
        raise invalid(
            f"Charge {charge_id} has a status of {charge['status']} and cannot be refunded.",
            param="charge",
            code="charge_not_refundable",
        )
    return charge


def refund(sb: Sandbox, charge: Obj, *, amount: int | None, reason: str | None, metadata: Mapping[str, str]) -> Obj:
    remaining = int(charge["amount"]) - int(charge["amount_refunded"])
    if charge["refunded"] or remaining <= 0:
        raise invalid(f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded")
    amount = remaining if amount is None else amount
    if amount <= 0:
        raise invalid("Refund amount must be positive.", param="amount", code="parameter_invalid_integer")
    if amount > remaining:
        what = "charge amount" if charge["amount_refunded"] == 0 else "unrefunded amount on charge"
        raise invalid(
            f"Refund amount ({format_amount(amount, charge['currency'])}) is greater than {what} "
            f"({format_amount(remaining, charge['currency'])})",
            param="amount",
            code="amount_too_large",
        )
    created = objects.refund(
        refund_id=ids.new_id("refund"),
        created=sb.now_for(charge["customer"]),
        charge_obj=charge,
        amount=amount,
        reason=reason,
        metadata=metadata,
    )
    sb.store.add(created)
    refunds = charge["refunds"]
    refunds["data"].insert(0, created)
    refunded_total = int(charge["amount_refunded"]) + amount
    previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
    charge.update({"amount_refunded": refunded_total, "refunded": refunded_total == charge["amount"]})
    sb.emit("refund.created", created)
    sb.emit("charge.refunded", charge, {key: value for key, value in previous.items() if charge[key] != value})
    return created
