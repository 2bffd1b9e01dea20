"""/v1/payment_methods: retrieve, list (`customer`), `/{id}/attach` (`customer`), `/{id}/detach`.

Attaching one of Stripe's test ids (`pm_card_visa`, `pm_card_mastercard`,
`pm_card_chargeCustomerFail`, ...) makes a new `pm_...` attached to the customer, as Stripe
does. As at Stripe, a card that is declined outright (`pm_card_chargeDeclined`) cannot be
attached (402 card_error); `pm_card_chargeCustomerFail` (4000 0000 0000 0341) attaches fine
and every charge to it is declined.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stripe_sandbox import cards, payments
from stripe_sandbox.api import Call, Endpoint
from stripe_sandbox.cards import Behaviour
from stripe_sandbox.errors import card_error, invalid, resource_missing
from stripe_sandbox.params import Choice, Params, Text, required
from stripe_sandbox.routes.common import list_params, listing, matches, retrieve
from stripe_sandbox.sandbox import Sandbox

Obj = dict[str, Any]


def resolve(sb: Sandbox, value: str, customer_id: str, *, param: str) -> Obj:
    """A payment method for this customer: a test id (a new one, attached) or one attached before."""
    card = cards.card_for_payment_method(value)
    if card is not None:
        return attach_card(sb, card, customer_id)
    method = sb.store.get("payment_method", value)
    if method is None or value not in sb.store.method_cards:
        raise resource_missing("PaymentMethod", value, param=param)
    if method["customer"] not in (None, customer_id):
        raise invalid(
            f"The customer does not have a payment method with the ID {value}. The payment method must be "
            "attached to the customer.",
            param=param,
        )
    if method["customer"] is None:
        _attach(sb, method, customer_id)
    return method


def attach_card(sb: Sandbox, card: cards.Card, customer_id: str) -> Obj:
    if card.behaviour is Behaviour.DECLINE:
        raise card_error(card.message or cards.DECLINED, code="card_declined", decline_code=card.decline_code)
    method = payments.create_payment_method(sb, card, customer_id=None, email=None, name=None)
    _attach(sb, method, customer_id)
    return method


def _attach(sb: Sandbox, method: Obj, customer_id: str) -> None:
    method["customer"] = customer_id
    sb.emit("payment_method.attached", method)


def attach(call: Call) -> Obj:
    sb = call.sandbox
    customer = sb.store.require("customer", required(call.params, "customer"), param="customer")
    value = call.path["id"]
    card = cards.card_for_payment_method(value)
    if card is not None:
        return attach_card(sb, card, customer["id"])
    method = sb.store.require("payment_method", value)
    if method["customer"] is not None and method["customer"] != customer["id"]:
        raise invalid(
            "The payment method you provided has already been attached to a customer.",
            code="payment_method_unexpected_state",
        )
    if method["customer"] is None:
        _attach(sb, method, customer["id"])
    return method


def detach(call: Call) -> Obj:
    sb = call.sandbox
    method = sb.store.require("payment_method", call.path["id"])
    customer_id = method["customer"]
    if customer_id is None:
        raise invalid(
            f"The payment method {method['id']} is not attached to a customer so detachment is impossible.",
            code="payment_method_unexpected_state",
        )
    customer = sb.store.get("customer", customer_id)
    if customer is not None and customer["invoice_settings"]["default_payment_method"] == method["id"]:
        settings = {**customer["invoice_settings"], "default_payment_method": None}
        sb.update("customer.updated", customer, {"invoice_settings": settings})
    sb.update(None, method, {"customer": None})
    sb.emit("payment_method.detached", method, {"customer": customer_id})
    return method


def _keep(method: Obj, p: Mapping[str, Any]) -> bool:
    return matches(p, "customer", method["customer"]) and matches(p, "type", method["type"])


def endpoints() -> list[Endpoint]:
    return [
        Endpoint(
            "GET",
            "/v1/payment_methods",
            listing("payment_method", "/v1/payment_methods", _keep),
            list_params({"customer": Text(), "type": Choice(("card",))}),
        ),
        Endpoint("GET", "/v1/payment_methods/{id}", retrieve("payment_method")),
        Endpoint("POST", "/v1/payment_methods/{id}/attach", attach, Params({"customer": Text()})),
        Endpoint("POST", "/v1/payment_methods/{id}/detach", detach),
    ]
