"""/v1/checkout/sessions: create, retrieve, list, expire, line items.

A session's `url` is the sandbox's hosted payment page (`<public url>/checkout/<id>`),
where a test card pays it (pages.py), or the control API does the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stripe_sandbox import checkout, ids, lists, objects
from stripe_sandbox.api import Call, Endpoint
from stripe_sandbox.errors import invalid, missing
from stripe_sandbox.params import (
    Array,
    Boolean,
    Choice,
    Field,
    Hash,
    Integer,
    Metadata,
    Params,
    Text,
    apply_metadata,
    exclusive,
)
from stripe_sandbox.routes import prices
from stripe_sandbox.routes.common import check_email, check_url, list_params, listing, matches, retrieve
from stripe_sandbox.sandbox import Sandbox

Obj = dict[str, Any]
MIN_EXPIRY_SECONDS = 30 * 60
MAX_EXPIRY_SECONDS = 24 * 60 * 60
# Stripe's minimum charge, in minor units, for the common currencies.
MINIMUM_AMOUNT = 50

PRICE_DATA = Hash(
    {
        "currency": Text(3),
        "unit_amount": Integer(minimum=0, maximum=prices.MAX_AMOUNT),
        "product": Text(),
        "product_data": Hash(
            {
                "name": Text(250),
                "description": Text(),
                "metadata": Metadata(),
                "images": Array(Text(2048), max_items=8),
            }
        ),
        "recurring": prices.RECURRING,
        "tax_behavior": Choice(("exclusive", "inclusive", "unspecified")),
    }
)
LINE_ITEM = Hash({"price": Text(), "price_data": PRICE_DATA, "quantity": Integer(minimum=1, maximum=999_999)})
FIELDS: dict[str, Field] = {
    "mode": Choice(("payment", "setup", "subscription")),
    "customer": Text(),
    "customer_email": Text(800),
    "client_reference_id": Text(200),
    "line_items": Array(LINE_ITEM),
    "success_url": Text(5000),
    "cancel_url": Text(5000),
    "metadata": Metadata(),
    "payment_intent_data": Hash(
        {
            "metadata": Metadata(),
            "description": Text(1000),
            "receipt_email": Text(800),
            "statement_descriptor": Text(22),
            "statement_descriptor_suffix": Text(22),
        }
    ),
    "subscription_data": Hash(
        {"metadata": Metadata(), "trial_period_days": Integer(minimum=1, maximum=730), "description": Text(500)}
    ),
    "allow_promotion_codes": Boolean(),
    "expires_at": Integer(),
    "payment_method_types": Array(Choice(("card",))),
    "locale": Text(10),
    "submit_type": Choice(("auto", "book", "donate", "pay", "subscribe")),
    "customer_creation": Choice(("always", "if_required")),
    "billing_address_collection": Choice(("auto", "required")),
}


def _line_items(sb: Sandbox, raw: list[Obj]) -> list[Obj]:
    """Checkout line items (objects "item"), with their prices resolved or created inline."""
    lines: list[Obj] = []
    for index, line in enumerate(raw):
        param = f"line_items[{index}]"
        exclusive(line, "price", "price_data", prefix=param)
        if line.get("price") is not None:
            price = sb.store.require("price", line["price"], param=f"{param}[price]")
            if not price["active"]:
                raise invalid(
                    "The price specified is inactive. This field only accepts active prices.",
                    param=f"{param}[price]",
                )
        elif line.get("price_data") is not None:
            price = None
        else:
            raise invalid(
                "You must specify either `price` or `price_data` for each line item.",
                param=f"{param}[price]",
                code="parameter_missing",
            )
        if line.get("quantity") is None:
            raise missing(f"{param}[quantity]")
        lines.append(
            {"price": price, "price_data": line.get("price_data"), "quantity": line["quantity"], "param": param}
        )
    # Every check that needs no new object is done: now create inline prices.
    built = []
    for line in lines:
        price = line["price"] or prices.create_price(
            sb, line["price_data"], param=f"{line['param']}[price_data]", active=False, emit=False
        )
        product = sb.store.get("product", price["product"])
        name = product["name"] if product else price["product"]
        built.append(
            objects.checkout_line_item(
                item_id=ids.new_id("item"), price_obj=price, quantity=line["quantity"], description=name
            )
        )
    return built


def _check_prices(raw: list[Obj], sb: Sandbox, mode: str) -> None:
    """Mode and currency rules, checked before any inline price is created."""
    currencies = set()
    intervals = set()
    for index, line in enumerate(raw):
        param = f"line_items[{index}]"
        if line.get("price") is not None:
            price = sb.store.get("price", line["price"])
            if price is None:
                continue
            currency, rec = price["currency"], price["recurring"]
            rec_key = None if rec is None else (rec["interval"], rec["interval_count"])
        else:
            data = line.get("price_data") or {}
            currency = (data.get("currency") or "").lower()
            rec = data.get("recurring")
            rec_key = None if rec is None else (rec.get("interval"), rec.get("interval_count") or 1)
        currencies.add(currency)
        if mode == "payment" and rec_key is not None:
            raise invalid(
                "You specified `payment` mode but passed a recurring price. Either switch to `subscription` mode "
                "or use only one-time prices.",
                param=param,
            )
        if mode == "subscription":
            if rec_key is None:
                raise invalid(
                    "The sandbox supports only recurring prices in `subscription` mode.",
                    param=param,
                )
            intervals.add(rec_key)
    if len(currencies) > 1:
        raise invalid("All line items must use the same currency.", param="line_items")
    if len(intervals) > 1:
        raise invalid("Checkout does not support multiple prices with different billing intervals.", param="line_items")


def create(call: Call) -> Obj:
    p, sb = call.params, call.sandbox
    mode = p.get("mode")
    if mode is None:
        raise missing("mode")
    if mode == "setup":
        raise invalid("The sandbox does not support `setup` mode.", param="mode")
    exclusive(p, "customer", "customer_email")
    customer_id = p.get("customer")
    if customer_id is not None:
        sb.store.require("customer", customer_id, param="customer")
    if not p.get("line_items"):
        raise missing("line_items")
    if mode == "payment" and p.get("subscription_data") is not None:
        raise invalid("You can not pass `subscription_data` in `payment` mode.", param="subscription_data")
    if mode == "subscription" and p.get("payment_intent_data") is not None:
        raise invalid("You can not pass `payment_intent_data` in `subscription` mode.", param="payment_intent_data")
    now = sb.now()
    expires_at = p.get("expires_at")
    if expires_at is not None and not now + MIN_EXPIRY_SECONDS <= expires_at <= now + MAX_EXPIRY_SECONDS:
        raise invalid(
            "The `expires_at` timestamp must be between 30 minutes and 24 hours from Checkout Session creation.",
            param="expires_at",
        )
    _check_prices(p["line_items"], sb, mode)
    for index, line in enumerate(p["line_items"]):
        data = line.get("price_data")
        if data is not None:
            _check_price_data(data, f"line_items[{index}][price_data]")
    success_url = check_url(p.get("success_url"), "success_url", template=True)
    cancel_url = check_url(p.get("cancel_url"), "cancel_url")
    customer_email = check_email(p.get("customer_email"), "customer_email")
    intent_data = p.get("payment_intent_data") or {}
    if intent_data.get("receipt_email") is not None:
        check_email(intent_data["receipt_email"], "payment_intent_data[receipt_email]")
    lines = _line_items(sb, p["line_items"])
    total = sum(int(line["amount_total"]) for line in lines)
    currency = lines[0]["currency"]
    if mode == "payment" and total < MINIMUM_AMOUNT:
        raise invalid(
            f"The Checkout Session's total amount due must add up to at least {MINIMUM_AMOUNT} {currency} minor units.",
            param="line_items",
            code="amount_too_small",
        )
    session_id = ids.new_id("checkout.session")
    session = objects.checkout_session(
        session_id=session_id,
        created=now,
        expires_at=expires_at or now + MAX_EXPIRY_SECONDS,
        mode=mode,
        url=sb.url(f"/checkout/{session_id}"),
        currency=currency,
        amount_total=total,
        customer_id=customer_id,
        customer_email=customer_email,
        client_reference_id=p.get("client_reference_id"),
        success_url=success_url,
        cancel_url=cancel_url,
        metadata=apply_metadata({}, p.get("metadata")),
        allow_promotion_codes=p.get("allow_promotion_codes"),
        locale=p.get("locale"),
        submit_type=p.get("submit_type"),
    )
    if p.get("customer_creation") is not None and customer_id is None:
        session["customer_creation"] = p["customer_creation"]
    if p.get("billing_address_collection") is not None:
        session["billing_address_collection"] = p["billing_address_collection"]
    sb.store.add(session)
    sb.store.session_lines[session_id] = lines
    sb.store.session_intent_data[session_id] = {
        **intent_data,
        "metadata": apply_metadata({}, intent_data.get("metadata")),
    }
    subscription_data = p.get("subscription_data") or {}
    sb.store.session_subscription_data[session_id] = {
        **subscription_data,
        "metadata": apply_metadata({}, subscription_data.get("metadata")),
    }
    return session


def _check_price_data(data: Mapping[str, Any], param: str) -> None:
    if data.get("currency") is None:
        raise missing(f"{param}[currency]")
    if data.get("unit_amount") is None:
        raise missing(f"{param}[unit_amount]")
    exclusive(data, "product", "product_data", prefix=param)
    if data.get("product") is None and data.get("product_data") is None:
        raise invalid(
            f"You must specify either `{param}[product]` or `{param}[product_data]`.",
            param=f"{param}[product_data]",
            code="parameter_missing",
        )
    if data.get("product_data") is not None and data["product_data"].get("name") is None:
        raise missing(f"{param}[product_data][name]")


def expire(call: Call) -> Obj:
    session = call.sandbox.store.require("checkout.session", call.path["id"])
    return checkout.expire(call.sandbox, session)


def line_items(call: Call) -> Obj:
    sb = call.sandbox
    session = sb.store.require("checkout.session", call.path["id"])
    lines = sb.store.session_lines.get(session["id"], [])
    url = f"/v1/checkout/sessions/{session['id']}/line_items"
    return lists.page(lines, call.params, url, "item", newest_first=False)


def _keep(session: Obj, p: Mapping[str, Any]) -> bool:
    details = p.get("customer_details") or {}
    email = (session["customer_details"] or {}).get("email")
    return (
        matches(p, "customer", session["customer"])
        and matches(p, "payment_intent", session["payment_intent"])
        and matches(p, "status", session["status"])
        and matches(p, "subscription", session["subscription"])
        and (details.get("email") is None or details["email"] == email)
    )


def endpoints() -> list[Endpoint]:
    filters: dict[str, Field] = {
        "customer": Text(),
        "payment_intent": Text(),
        "status": Choice(("open", "complete", "expired")),
        "subscription": Text(),
        "customer_details": Hash({"email": Text(800)}),
    }
    return [
        Endpoint("POST", "/v1/checkout/sessions", create, Params(FIELDS)),
        Endpoint(
            "GET",
            "/v1/checkout/sessions",
            listing("checkout.session", "/v1/checkout/sessions", _keep),
            list_params(filters),
        ),
        Endpoint("GET", "/v1/checkout/sessions/{id}", retrieve("checkout.session")),
        Endpoint("POST", "/v1/checkout/sessions/{id}/expire", expire),
        Endpoint("GET", "/v1/checkout/sessions/{id}/line_items", line_items, list_params()),
    ]
