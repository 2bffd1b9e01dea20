"""Stripe objects built from Stripe's own examples (fixtures/objects.json).

Every builder starts from the example object of its type, so every field Stripe's
object carries is present, and then sets every field: the real value where the
sandbox has one, Stripe's default (mostly null) where the example only
illustrates. No example value survives into an answer.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stripe_sandbox import ids

FIXTURES = Path(__file__).parent / "fixtures" / "objects.json"

Obj = dict[str, Any]

NULL_ADDRESS: Obj = {"city": None, "country": None, "line1": None, "line2": None, "postal_code": None, "state": None}


@functools.cache
def _templates() -> Mapping[str, Obj]:
    resources = json.loads(FIXTURES.read_text(encoding="utf-8"))["resources"]
    assert isinstance(resources, dict)
    return resources


def template(kind: str) -> Obj:
    """A fresh copy of Stripe's example object of this type."""
    return copy.deepcopy(_templates()[kind])


def _build(kind: str, fields: Mapping[str, Any]) -> Obj:
    obj = template(kind)
    obj.update(copy.deepcopy(dict(fields)))
    return obj


def list_object(data: Sequence[Obj], url: str, *, has_more: bool = False) -> Obj:
    return {"object": "list", "data": list(data), "has_more": has_more, "url": url}


def customer(
    *,
    customer_id: str,
    created: int,
    email: str | None,
    name: str | None,
    description: str | None,
    phone: str | None,
    metadata: Mapping[str, str],
    address: Mapping[str, Any] | None,
) -> Obj:
    return _build(
        "customer",
        {
            "id": customer_id,
            "object": "customer",
            "address": None if address is None else {**NULL_ADDRESS, **address},
            "balance": 0,
            "created": created,
            "currency": None,
            "default_source": None,
            "delinquent": False,
            "description": description,
            "discount": None,
            "email": email,
            "invoice_prefix": ids.invoice_prefix(),
            "invoice_settings": {
                "custom_fields": None,
                "default_payment_method": None,
                "footer": None,
                "rendering_options": None,
            },
            "livemode": False,
            "metadata": dict(metadata),
            "name": name,
            "next_invoice_sequence": 1,
            "phone": phone,
            "preferred_locales": [],
            "shipping": None,
            "tax_exempt": "none",
            "test_clock": None,
        },
    )


def product(
    *,
    product_id: str,
    created: int,
    name: str,
    active: bool,
    description: str | None,
    metadata: Mapping[str, str],
    images: Sequence[str] = (),
    statement_descriptor: str | None = None,
    unit_label: str | None = None,
    url: str | None = None,
) -> Obj:
    return _build(
        "product",
        {
            "id": product_id,
            "object": "product",
            "active": active,
            "created": created,
            "default_price": None,
            "description": description,
            "images": list(images),
            "livemode": False,
            "marketing_features": [],
            "metadata": dict(metadata),
            "name": name,
            "package_dimensions": None,
            "shippable": None,
            "statement_descriptor": statement_descriptor,
            "tax_code": None,
            "type": "service",
            "unit_label": unit_label,
            "updated": created,
            "url": url,
        },
    )


def recurring(interval: str, interval_count: int) -> Obj:
    return {
        "interval": interval,
        "interval_count": interval_count,
        "meter": None,
        "trial_period_days": None,
        "usage_type": "licensed",
    }


def price(
    *,
    price_id: str,
    created: int,
    product_id: str,
    currency: str,
    unit_amount: int,
    active: bool,
    recurring_interval: str | None,
    interval_count: int,
    lookup_key: str | None,
    nickname: str | None,
    metadata: Mapping[str, str],
    tax_behavior: str = "unspecified",
) -> Obj:
    return _build(
        "price",
        {
            "id": price_id,
            "object": "price",
            "active": active,
            "billing_scheme": "per_unit",
            "created": created,
            "currency": currency,
            "custom_unit_amount": None,
            "livemode": False,
            "lookup_key": lookup_key,
            "metadata": dict(metadata),
            "nickname": nickname,
            "product": product_id,
            "recurring": None if recurring_interval is None else recurring(recurring_interval, interval_count),
            "tax_behavior": tax_behavior,
            "tiers_mode": None,
            "transform_quantity": None,
            "type": "one_time" if recurring_interval is None else "recurring",
            "unit_amount": unit_amount,
            "unit_amount_decimal": str(unit_amount),
        },
    )


def plan_from_price(price_obj: Mapping[str, Any]) -> Obj:
    """The legacy `plan` view of a recurring price, as Stripe nests it in subscription items."""
    plan: Obj = copy.deepcopy(_templates()["subscription_item"]["plan"])
    rec = price_obj["recurring"] or recurring("month", 1)
    plan.update(
        {
            "active": price_obj["active"],
            "amount": price_obj["unit_amount"],
            "amount_decimal": price_obj["unit_amount_decimal"],
            "billing_scheme": "per_unit",
            "created": price_obj["created"],
            "currency": price_obj["currency"],
            "id": price_obj["id"],
            "interval": rec["interval"],
            "interval_count": rec["interval_count"],
            "livemode": False,
            "metadata": dict(price_obj["metadata"]),
            "meter": None,
            "nickname": price_obj["nickname"],
            "object": "plan",
            "product": price_obj["product"],
            "tiers_mode": None,
            "transform_usage": None,
            "trial_period_days": None,
            "usage_type": "licensed",
        }
    )
    return plan


def checkout_line_item(*, item_id: str, price_obj: Mapping[str, Any], quantity: int, description: str) -> Obj:
    amount = int(price_obj["unit_amount"]) * quantity
    return _build(
        "item",
        {
            "id": item_id,
            "object": "item",
            "adjustable_quantity": None,
            "amount_discount": 0,
            "amount_subtotal": amount,
            "amount_tax": 0,
            "amount_total": amount,
            "currency": price_obj["currency"],
            "description": description,
            "metadata": {},
            "price": copy.deepcopy(dict(price_obj)),
            "quantity": quantity,
        },
    )


def checkout_session(
    *,
    session_id: str,
    created: int,
    expires_at: int,
    mode: str,
    url: str,
    currency: str,
    amount_total: int,
    customer_id: str | None,
    customer_email: str | None,
    client_reference_id: str | None,
    success_url: str | None,
    cancel_url: str | None,
    metadata: Mapping[str, str],
    allow_promotion_codes: bool | None,
    locale: str | None,
    submit_type: str | None,
) -> Obj:
    payment = mode == "payment"
    return _build(
        "checkout.session",
        {
            "id": session_id,
            "object": "checkout.session",
            "adaptive_pricing": {"enabled": False},
            "after_expiration": None,
            "allow_promotion_codes": allow_promotion_codes,
            "amount_subtotal": amount_total,
            "amount_total": amount_total,
            "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
            "billing_address_collection": None,
            "cancel_url": cancel_url,
            "client_reference_id": client_reference_id,
            "client_secret": None,
            "collected_information": None,
            "consent": None,
            "consent_collection": None,
            "created": created,
            "currency": currency,
            "currency_conversion": None,
            "custom_fields": [],
            "custom_text": {
                "after_submit": None,
                "shipping_address": None,
                "submit": None,
                "terms_of_service_acceptance": None,
            },
            "customer": customer_id,
            "customer_account": None,
            "customer_creation": None if customer_id else ("if_required" if payment else "always"),
            "customer_details": None,
            "customer_email": customer_email,
            "discounts": [],
            "expires_at": expires_at,
            "integration_identifier": None,
            "invoice": None,
            "invoice_creation": (
                {
                    "enabled": False,
                    "invoice_data": {
                        "account_tax_ids": None,
                        "custom_fields": None,
                        "description": None,
                        "footer": None,
                        "issuer": None,
                        "metadata": {},
                        "rendering_options": None,
                    },
                }
                if payment
                else None
            ),
            "livemode": False,
            "locale": locale,
            "managed_payments": {"enabled": False},
            "metadata": dict(metadata),
            "mode": mode,
            "origin_context": None,
            "payment_intent": None,
            "payment_link": None,
            "payment_method_collection": "if_required" if payment else "always",
            "payment_method_configuration_details": None,
            "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
            "payment_method_types": ["card"],
            "payment_status": "unpaid",
            "permissions": None,
            "phone_number_collection": {"enabled": False},
            "recovered_from": None,
            "saved_payment_method_options": None,
            "setup_intent": None,
            "shipping_address_collection": None,
            "shipping_cost": None,
            "shipping_options": [],
            "status": "open",
            "submit_type": submit_type,
            "subscription": None,
            "success_url": success_url,
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            "ui_mode": "hosted",
            "url": url,
            "wallet_options": None,
        },
    )


def customer_details(email: str | None, name: str | None) -> Obj:
    details: Obj = copy.deepcopy(_templates()["checkout.session"]["customer_details"])
    details.update(
        {
            "address": None,
            "business_name": None,
            "email": email,
            "individual_name": None,
            "name": name,
            "phone": None,
            "tax_exempt": "none",
            "tax_ids": [],
        }
    )
    return details


def payment_intent(
    *,
    intent_id: str,
    created: int,
    amount: int,
    currency: str,
    customer_id: str | None,
    description: str | None,
    metadata: Mapping[str, str],
    automatic_payment_methods: bool,
    receipt_email: str | None,
    statement_descriptor: str | None = None,
) -> Obj:
    return _build(
        "payment_intent",
        {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_details": {"tip": {}},
            "amount_received": 0,
            "application": None,
            "application_fee_amount": None,
            "automatic_payment_methods": (
                {"allow_redirects": "always", "enabled": True} if automatic_payment_methods else None
            ),
            "canceled_at": None,
            "cancellation_reason": None,
            "capture_method": "automatic",
            "client_secret": ids.client_secret(intent_id),
            "confirmation_method": "automatic",
            "created": created,
            "currency": currency,
            "customer": customer_id,
            "customer_account": None,
            "description": description,
            "excluded_payment_method_types": None,
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "managed_payments": {"enabled": False},
            "metadata": dict(metadata),
            "next_action": None,
            "on_behalf_of": None,
            "payment_method": None,
            "payment_method_configuration_details": None,
            "payment_method_options": {
                "card": {
                    "installments": None,
                    "mandate_options": None,
                    "network": None,
                    "request_three_d_secure": "automatic",
                }
            },
            "payment_method_types": ["card"],
            "processing": None,
            "receipt_email": receipt_email,
            "review": None,
            "setup_future_usage": None,
            "shipping": None,
            "source": None,
            "statement_descriptor": statement_descriptor,
            "statement_descriptor_suffix": None,
            "status": "requires_payment_method",
            "transfer_data": None,
            "transfer_group": None,
        },
    )


def fingerprint(brand: str, last4: str) -> str:
    """Stable per test card, derived from what is stored (brand and last4), never from a card number."""
    return hashlib.sha256(f"{brand}:{last4}".encode()).hexdigest()[:16]


def payment_method(
    *,
    method_id: str,
    created: int,
    customer_id: str | None,
    brand: str,
    last4: str,
    exp_month: int,
    exp_year: int,
    funding: str,
    country: str,
    email: str | None,
    name: str | None,
) -> Obj:
    card: Obj = copy.deepcopy(_templates()["payment_method"]["card"])
    card.update(
        {
            "brand": brand,
            "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
            "country": country,
            "display_brand": brand,
            "exp_month": exp_month,
            "exp_year": exp_year,
            "fingerprint": fingerprint(brand, last4),
            "funding": funding,
            "generated_from": None,
            "last4": last4,
            "networks": {"available": [brand], "preferred": None},
            "regulated_status": "unregulated",
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        }
    )
    return _build(
        "payment_method",
        {
            "id": method_id,
            "object": "payment_method",
            "allow_redisplay": "unspecified",
            "billing_details": billing_details(email, name),
            "card": card,
            "created": created,
            "customer": customer_id,
            "customer_account": None,
            "livemode": False,
            "metadata": {},
            "type": "card",
        },
    )


def billing_details(email: str | None, name: str | None) -> Obj:
    return {"address": dict(NULL_ADDRESS), "email": email, "name": name, "phone": None, "tax_id": None}


def card_details(method: Mapping[str, Any], amount: int) -> Obj:
    """`charge.payment_method_details.card`, from the charge's payment method."""
    source = method["card"]
    card: Obj = copy.deepcopy(_templates()["charge"]["payment_method_details"]["card"])
    card.update(
        {
            "amount_authorized": amount,
            "authorization_code": None,
            "brand": source["brand"],
            "checks": copy.deepcopy(source["checks"]),
            "country": source["country"],
            "exp_month": source["exp_month"],
            "exp_year": source["exp_year"],
            "extended_authorization": {"status": "disabled"},
            "fingerprint": source["fingerprint"],
            "funding": source["funding"],
            "incremental_authorization": {"status": "unavailable"},
            "installments": None,
            "last4": source["last4"],
            "mandate": None,
            "multicapture": {"status": "unavailable"},
            "network": source["brand"],
            "network_token": {"used": False},
            "network_transaction_id": None,
            "overcapture": {"maximum_amount_capturable": amount, "status": "unavailable"},
            "regulated_status": "unregulated",
            "three_d_secure": None,
            "transaction_link_id": None,
            "wallet": None,
        }
    )
    return card


def outcome(status: str, *, decline_code: str | None = None, message: str | None = None) -> Obj:
    outcome_obj: Obj = copy.deepcopy(_templates()["charge"]["outcome"])
    if status == "succeeded":
        outcome_obj.update(
            {
                "network_status": "approved_by_network",
                "reason": None,
                "risk_level": "normal",
                "risk_score": 20,
                "seller_message": "Payment complete.",
                "type": "authorized",
            }
        )
    elif status == "pending":
        outcome_obj.update(
            {
                "network_status": "approved_by_network",
                "reason": None,
                "risk_level": "not_assessed",
                "seller_message": "The payment is pending.",
                "type": "authorized",
            }
        )
    else:
        outcome_obj.update(
            {
                "network_status": "declined_by_network",
                "reason": decline_code,
                "risk_level": "normal",
                "risk_score": 20,
                "seller_message": "The bank did not return any further details with this decline.",
                "type": "issuer_declined",
            }
        )
    outcome_obj.update({"advice_code": None, "network_advice_code": None, "network_decline_code": None})
    return outcome_obj


def charge(
    *,
    charge_id: str,
    created: int,
    intent: Mapping[str, Any],
    method: Mapping[str, Any],
    status: str,
    receipt_url: str,
    failure_code: str | None = None,
    failure_message: str | None = None,
    decline_code: str | None = None,
) -> Obj:
    succeeded = status == "succeeded"
    amount = int(intent["amount"])
    return _build(
        "charge",
        {
            "id": charge_id,
            "object": "charge",
            "amount": amount,
            "amount_captured": amount if succeeded else 0,
            "amount_refunded": 0,
            "application": None,
            "application_fee": None,
            "application_fee_amount": None,
            "balance_transaction": ids.new_id("balance_transaction") if succeeded else None,
            "billing_details": copy.deepcopy(method["billing_details"]),
            "calculated_statement_descriptor": "SANDBOX",
            "captured": succeeded,
            "created": created,
            "currency": intent["currency"],
            "customer": intent["customer"],
            "description": intent["description"],
            "disputed": False,
            "failure_balance_transaction": None,
            "failure_code": failure_code,
            "failure_message": failure_message,
            "fraud_details": {},
            "livemode": False,
            "metadata": dict(intent["metadata"]),
            "on_behalf_of": None,
            "outcome": outcome(status, decline_code=decline_code),
            "paid": succeeded,
            "payment_intent": intent["id"],
            "payment_method": method["id"],
            "payment_method_details": {"card": card_details(method, amount), "type": "card"},
            "receipt_email": intent["receipt_email"],
            "receipt_number": None,
            "receipt_url": receipt_url,
            "refunded": False,
            "refunds": list_object([], f"/v1/charges/{charge_id}/refunds"),
            "review": None,
            "shipping": None,
            "source": None,
            "source_transfer": None,
            "statement_descriptor": intent["statement_descriptor"],
            "statement_descriptor_suffix": None,
            "status": status,
            "transfer_data": None,
            "transfer_group": None,
        },
    )


def refund(
    *,
    refund_id: str,
    created: int,
    charge_obj: Mapping[str, Any],
    amount: int,
    reason: str | None,
    metadata: Mapping[str, str],
) -> Obj:
    return _build(
        "refund",
        {
            "id": refund_id,
            "object": "refund",
            "amount": amount,
            "balance_transaction": ids.new_id("balance_transaction"),
            "charge": charge_obj["id"],
            "created": created,
            "currency": charge_obj["currency"],
            "customer": charge_obj["customer"],
            "customer_account": None,
            "destination_details": {
                "card": {
                    "reference": None,
                    "reference_status": "pending",
                    "reference_type": "acquirer_reference_number",
                    "type": "refund",
                },
                "type": "card",
            },
            "metadata": dict(metadata),
            "payment_intent": charge_obj["payment_intent"],
            "payment_method": charge_obj["payment_method"],
            "reason": reason,
            "receipt_number": None,
            "source_transfer_reversal": None,
            "status": "succeeded",
            "transfer_reversal": None,
        },
    )


def event(
    *,
    event_id: str,
    created: int,
    event_type: str,
    api_version: str,
    data_object: Mapping[str, Any],
    previous_attributes: Mapping[str, Any] | None,
    pending_webhooks: int,
    request_id: str | None,
    idempotency_key: str | None,
) -> Obj:
    data: Obj = {"object": copy.deepcopy(dict(data_object))}
    if previous_attributes is not None:
        data["previous_attributes"] = copy.deepcopy(dict(previous_attributes))
    return _build(
        "event",
        {
            "id": event_id,
            "object": "event",
            "api_version": api_version,
            "created": created,
            "data": data,
            "livemode": False,
            "pending_webhooks": pending_webhooks,
            "request": {"id": request_id, "idempotency_key": idempotency_key},
            "type": event_type,
        },
    )


def webhook_endpoint(
    *,
    endpoint_id: str,
    created: int,
    url: str,
    enabled_events: Sequence[str],
    description: str | None,
    metadata: Mapping[str, str],
    api_version: str | None,
    enabled: bool = True,
) -> Obj:
    return _build(
        "webhook_endpoint",
        {
            "id": endpoint_id,
            "object": "webhook_endpoint",
            "api_version": api_version,
            "application": None,
            "created": created,
            "description": description,
            "enabled_events": list(enabled_events),
            "livemode": False,
            "metadata": dict(metadata),
            "status": "enabled" if enabled else "disabled",
            "url": url,
        },
    )


def deleted(kind: str, object_id: str) -> Obj:
    obj = template("deleted_webhook_endpoint")
    obj.update({"id": object_id, "object": kind, "deleted": True})
    return obj


def portal_session(
    *, session_id: str, created: int, customer_id: str, return_url: str | None, url: str, configuration: str
) -> Obj:
    return _build(
        "billing_portal.session",
        {
            "id": session_id,
            "object": "billing_portal.session",
            "configuration": configuration,
            "created": created,
            "customer": customer_id,
            "customer_account": None,
            "flow": None,
            "livemode": False,
            "locale": None,
            "on_behalf_of": None,
            "return_url": return_url,
            "url": url,
        },
    )


def subscription_item(
    *,
    item_id: str,
    created: int,
    subscription_id: str,
    price_obj: Mapping[str, Any],
    quantity: int,
    period_start: int,
    period_end: int,
) -> Obj:
    return _build(
        "subscription_item",
        {
            "id": item_id,
            "object": "subscription_item",
            "billing_thresholds": None,
            "created": created,
            "current_period_end": period_end,
            "current_period_start": period_start,
            "discounts": [],
            "metadata": {},
            "plan": plan_from_price(price_obj),
            "price": copy.deepcopy(dict(price_obj)),
            "quantity": quantity,
            "subscription": subscription_id,
            "tax_rates": [],
        },
    )


def subscription(
    *,
    subscription_id: str,
    created: int,
    customer_id: str,
    currency: str,
    items: Sequence[Obj],
    status: str,
    metadata: Mapping[str, str],
    description: str | None,
    default_payment_method: str | None,
    trial_start: int | None,
    trial_end: int | None,
    billing_cycle_anchor: int,
    test_clock: str | None = None,
) -> Obj:
    return _build(
        "subscription",
        {
            "id": subscription_id,
            "object": "subscription",
            "application": None,
            "application_fee_percent": None,
            "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
            "billing_cycle_anchor": billing_cycle_anchor,
            "billing_cycle_anchor_config": None,
            "billing_mode": {"flexible": None, "type": "classic"},
            "billing_schedules": [],
            "billing_thresholds": None,
            "cancel_at": None,
            "cancel_at_period_end": False,
            "canceled_at": None,
            "cancellation_details": {"comment": None, "feedback": None, "reason": None},
            "collection_method": "charge_automatically",
            "created": created,
            "currency": currency,
            "customer": customer_id,
            "customer_account": None,
            "days_until_due": None,
            "default_payment_method": default_payment_method,
            "default_source": None,
            "default_tax_rates": [],
            "description": description,
            "discounts": [],
            "ended_at": None,
            "invoice_settings": {
                "account_tax_ids": None,
                "custom_fields": None,
                "description": None,
                "footer": None,
                "issuer": {"type": "self"},
            },
            "items": list_object(items, f"/v1/subscription_items?subscription={subscription_id}"),
            "latest_invoice": None,
            "livemode": False,
            "managed_payments": {"enabled": False},
            "metadata": dict(metadata),
            "next_pending_invoice_item_invoice": None,
            "on_behalf_of": None,
            "pause_collection": None,
            "payment_settings": {
                "payment_method_options": None,
                "payment_method_types": None,
                "save_default_payment_method": "off",
            },
            "pending_invoice_item_interval": None,
            "pending_setup_intent": None,
            "pending_update": None,
            "schedule": None,
            "start_date": created,
            "status": status,
            "test_clock": test_clock,
            "transfer_data": None,
            "trial_end": trial_end,
            "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
            "trial_start": trial_start,
        },
    )


def invoice_line(
    *,
    line_id: str,
    invoice_id: str | None,
    subscription_obj: Mapping[str, Any],
    item: Mapping[str, Any],
    amount: int,
    description: str,
) -> Obj:
    """A line for a subscription item over its current period."""
    price_obj = item["price"]
    return _build(
        "line_item",
        {
            "id": line_id,
            "object": "line_item",
            "amount": amount,
            "currency": price_obj["currency"],
            "description": description,
            "discount_amounts": [],
            "discountable": True,
            "discounts": [],
            "invoice": invoice_id,
            "livemode": False,
            "metadata": {},
            "parent": {
                "invoice_item_details": None,
                "subscription_item_details": {
                    "invoice_item": None,
                    "proration": False,
                    "proration_details": {"credited_items": None},
                    "subscription": subscription_obj["id"],
                    "subscription_item": item["id"],
                },
                "type": "subscription_item_details",
            },
            "period": {"end": item["current_period_end"], "start": item["current_period_start"]},
            "pretax_credit_amounts": [],
            "pricing": {
                "price_details": {"price": price_obj["id"], "product": price_obj["product"]},
                "type": "price_details",
                "unit_amount_decimal": price_obj["unit_amount_decimal"],
            },
            "quantity": item["quantity"],
            "quantity_decimal": str(item["quantity"]),
            "subscription": subscription_obj["id"],
            "subtotal": amount,
            "taxes": [],
        },
    )


def invoice(
    *,
    invoice_id: str,
    created: int,
    customer_obj: Mapping[str, Any],
    subscription_obj: Mapping[str, Any],
    lines: Sequence[Obj],
    number: str | None,
    billing_reason: str,
    period_start: int,
    period_end: int,
    status: str = "open",
) -> Obj:
    """An invoice for a subscription; `status` `draft` leaves it unfinalized (no number, no finalized_at)."""
    total = sum(int(line["amount"]) for line in lines)
    finalized = None if status == "draft" else created
    return _build(
        "invoice",
        {
            "id": invoice_id,
            "object": "invoice",
            "account_country": "US",
            "account_name": "Stripe Sandbox",
            "account_tax_ids": None,
            "amount_due": total,
            "amount_overpaid": 0,
            "amount_paid": 0,
            "amount_remaining": total,
            "amount_shipping": 0,
            "application": None,
            "attempt_count": 0,
            "attempted": False,
            "auto_advance": True,
            "automatic_tax": {
                "disabled_reason": None,
                "enabled": False,
                "liability": None,
                "provider": None,
                "status": None,
            },
            "automatically_finalizes_at": None,
            "billing_reason": billing_reason,
            "collection_method": "charge_automatically",
            "created": created,
            "currency": subscription_obj["currency"],
            "custom_fields": None,
            "customer": customer_obj["id"],
            "customer_account": None,
            "customer_address": customer_obj["address"],
            "customer_email": customer_obj["email"],
            "customer_name": customer_obj["name"],
            "customer_phone": customer_obj["phone"],
            "customer_shipping": None,
            "customer_tax_exempt": "none",
            "customer_tax_ids": [],
            "default_payment_method": None,
            "default_source": None,
            "default_tax_rates": [],
            "description": None,
            "discounts": [],
            "due_date": None,
            "effective_at": finalized,
            "ending_balance": 0,
            "footer": None,
            "from_invoice": None,
            "hosted_invoice_url": None,
            "invoice_pdf": None,
            "issuer": {"type": "self"},
            "last_finalization_error": None,
            "latest_revision": None,
            "lines": list_object(lines, f"/v1/invoices/{invoice_id}/lines"),
            "livemode": False,
            "metadata": {},
            "next_payment_attempt": None,
            "number": number,
            "on_behalf_of": None,
            "parent": {
                "quote_details": None,
                "subscription_details": {
                    "metadata": dict(subscription_obj["metadata"]),
                    "subscription": subscription_obj["id"],
                },
                "type": "subscription_details",
            },
            "payment_settings": {"default_mandate": None, "payment_method_options": None, "payment_method_types": None},
            "period_end": period_end,
            "period_start": period_start,
            "post_payment_credit_notes_amount": 0,
            "pre_payment_credit_notes_amount": 0,
            "receipt_number": None,
            "rendering": None,
            "shipping_cost": None,
            "shipping_details": None,
            "starting_balance": 0,
            "statement_descriptor": None,
            "status": status,
            "status_transitions": {
                "finalized_at": finalized,
                "marked_uncollectible_at": None,
                "paid_at": None,
                "voided_at": None,
            },
            "subscription": subscription_obj["id"],
            "subtotal": total,
            "subtotal_excluding_tax": total,
            "test_clock": subscription_obj.get("test_clock"),
            "total": total,
            "total_discount_amounts": [],
            "total_excluding_tax": total,
            "total_pretax_credit_amounts": [],
            "total_taxes": [],
            "webhooks_delivered_at": finalized,
        },
    )


def invoice_item_line(*, line_id: str, invoice_id: str | None, invoice_item: Mapping[str, Any]) -> Obj:
    """An invoice's line for a pending invoice item (a proration, say) it picked up."""
    details = invoice_item["parent"]["subscription_details"] or {}
    return _build(
        "line_item",
        {
            "id": line_id,
            "object": "line_item",
            "amount": invoice_item["amount"],
            "currency": invoice_item["currency"],
            "description": invoice_item["description"],
            "discount_amounts": [],
            "discountable": invoice_item["discountable"],
            "discounts": [],
            "invoice": invoice_id,
            "livemode": False,
            "metadata": dict(invoice_item["metadata"]),
            "parent": {
                "invoice_item_details": {
                    "invoice_item": invoice_item["id"],
                    "proration": invoice_item["proration"],
                    "proration_details": {"credited_items": None},
                    "subscription": details.get("subscription"),
                },
                "subscription_item_details": None,
                "type": "invoice_item_details",
            },
            "period": copy.deepcopy(invoice_item["period"]),
            "pretax_credit_amounts": [],
            "pricing": copy.deepcopy(invoice_item["pricing"]),
            "quantity": invoice_item["quantity"],
            "quantity_decimal": invoice_item["quantity_decimal"],
            "subscription": details.get("subscription"),
            "subtotal": invoice_item["amount"],
            "taxes": [],
        },
    )


def invoice_item(
    *,
    item_id: str,
    created: int,
    customer_obj: Mapping[str, Any],
    subscription_item: Mapping[str, Any],
    price_obj: Mapping[str, Any],
    quantity: int,
    amount: int,
    description: str,
    period_start: int,
    period_end: int,
    proration: bool,
) -> Obj:
    unit = amount / quantity if quantity else amount
    return _build(
        "invoiceitem",
        {
            "id": item_id,
            "object": "invoiceitem",
            "amount": amount,
            "currency": price_obj["currency"],
            "customer": customer_obj["id"],
            "customer_account": None,
            "date": created,
            "description": description,
            "discountable": False,
            "discounts": [],
            "invoice": None,
            "livemode": False,
            "metadata": {},
            "net_amount": amount,
            "parent": {
                "subscription_details": {
                    "subscription": subscription_item["subscription"],
                    "subscription_item": subscription_item["id"],
                },
                "type": "subscription_details",
            },
            "period": {"end": period_end, "start": period_start},
            "pricing": {
                "price_details": {"price": price_obj["id"], "product": price_obj["product"]},
                "type": "price_details",
                "unit_amount_decimal": f"{unit:.12f}".rstrip("0").rstrip("."),
            },
            "proration": proration,
            "quantity": quantity,
            "quantity_decimal": str(quantity),
            "tax_rates": [],
            "test_clock": customer_obj.get("test_clock"),
        },
    )


def invoice_payment(*, payment_id: str, created: int, invoice_obj: Mapping[str, Any], intent_id: str) -> Obj:
    return _build(
        "invoice_payment",
        {
            "id": payment_id,
            "object": "invoice_payment",
            "amount_paid": None,
            "amount_requested": invoice_obj["amount_remaining"],
            "created": created,
            "currency": invoice_obj["currency"],
            "invoice": invoice_obj["id"],
            "is_default": True,
            "livemode": False,
            "payment": {"payment_intent": intent_id, "type": "payment_intent"},
            "status": "open",
            "status_transitions": {"canceled_at": None, "paid_at": None},
        },
    )


def test_clock(*, clock_id: str, created: int, frozen_time: int, name: str | None, deletes_after: int) -> Obj:
    return _build(
        "test_helpers.test_clock",
        {
            "id": clock_id,
            "object": "test_helpers.test_clock",
            "created": created,
            "deletes_after": deletes_after,
            "frozen_time": frozen_time,
            "livemode": False,
            "name": name,
            "status": "ready",
            "status_details": {},
        },
    )
