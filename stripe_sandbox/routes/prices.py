"""/v1/prices: create, retrieve, update, list (filters `active`, `product`, `lookup_keys[]`, `type`, `currency`).

A lookup key belongs to one price at a time: another price may take it over with
`transfer_lookup_key=true`, otherwise reusing it is refused, as Stripe does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stripe_sandbox import ids, objects
from stripe_sandbox.api import Call, Endpoint
from stripe_sandbox.errors import invalid
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
    required,
)
from stripe_sandbox.routes import products
from stripe_sandbox.routes.common import check_currency, list_params, listing, matches, retrieve
from stripe_sandbox.sandbox import Sandbox

Obj = dict[str, Any]
INTERVALS = ("day", "week", "month", "year")
MAX_AMOUNT = 99_999_999

RECURRING = Hash({"interval": Choice(INTERVALS), "interval_count": Integer(minimum=1, maximum=365)})
PRODUCT_DATA = Hash(
    {
        "name": Text(250),
        "active": Boolean(),
        "metadata": Metadata(),
        "statement_descriptor": Text(22),
        "unit_label": Text(12),
    }
)
FIELDS: dict[str, Field] = {
    "currency": Text(3),
    "unit_amount": Integer(minimum=0, maximum=MAX_AMOUNT),
    "product": Text(),
    "product_data": PRODUCT_DATA,
    "recurring": RECURRING,
    "lookup_key": Text(200),
    "transfer_lookup_key": Boolean(),
    "active": Boolean(),
    "nickname": Text(250),
    "metadata": Metadata(),
    "tax_behavior": Choice(("exclusive", "inclusive", "unspecified")),
}
UPDATE_FIELDS: dict[str, Field] = {
    "active": Boolean(),
    "lookup_key": Text(200),
    "transfer_lookup_key": Boolean(),
    "nickname": Text(250),
    "metadata": Metadata(),
    "tax_behavior": Choice(("exclusive", "inclusive", "unspecified")),
}


def create_price(sb: Sandbox, p: Mapping[str, Any], *, param: str = "", active: bool = True, emit: bool = True) -> Obj:
    """A price from `price` parameters (also used for Checkout's inline `price_data`, with `param` its name)."""
    exclusive(p, "product", "product_data", prefix=param)
    currency = check_currency(required(p, "currency", prefix=param), f"{param}[currency]" if param else "currency")
    unit_amount = required(p, "unit_amount", prefix=param)
    lookup_key = p.get("lookup_key")
    holder = None
    if lookup_key is not None:
        holder = _check_lookup_key(sb, lookup_key, None, transfer=bool(p.get("transfer_lookup_key")))
    rec = p.get("recurring")
    if rec is not None:
        required(rec, "interval", prefix=f"{param}[recurring]" if param else "recurring")
    if p.get("product") is not None:
        product_param = f"{param}[product]" if param else "product"
        product = sb.store.require("product", p["product"], param=product_param)
    elif p.get("product_data") is not None:
        product_prefix = f"{param}[product_data]" if param else "product_data"
        product = products.create_product(sb, p["product_data"], param=product_prefix, emit=emit)
    else:
        raise invalid(
            "You must specify either `product` or `product_data` when creating a price.",
            param=f"{param}[product]" if param else "product",
            code="parameter_missing",
        )
    price_id = ids.new_id("price")
    if lookup_key is not None:
        _claim_lookup_key(sb, lookup_key, price_id, holder)
    price = objects.price(
        price_id=price_id,
        created=sb.now(),
        product_id=product["id"],
        currency=currency,
        unit_amount=unit_amount,
        active=active if p.get("active") is None else bool(p["active"]),
        recurring_interval=None if rec is None else rec["interval"],
        interval_count=1 if rec is None else rec.get("interval_count") or 1,
        lookup_key=lookup_key,
        nickname=p.get("nickname"),
        metadata=apply_metadata({}, p.get("metadata")),
        tax_behavior=p.get("tax_behavior") or "unspecified",
    )
    sb.store.add(price)
    if emit:
        sb.emit("price.created", price)
    return price


def _check_lookup_key(sb: Sandbox, lookup_key: str, price_id: str | None, *, transfer: bool) -> Obj | None:
    """The price holding `lookup_key` that must give it up, or None; refused unless `transfer`."""
    holder_id = sb.store.lookup_keys.get(lookup_key)
    holder = sb.store.get("price", holder_id) if holder_id else None
    if holder is None or holder["id"] == price_id:
        return None
    if not transfer:
        raise invalid(
            f"A price (`{holder['id']}`) already uses that lookup key. "
            "Pass `transfer_lookup_key=true` to move it to this price.",
            param="lookup_key",
        )
    return holder


def _claim_lookup_key(sb: Sandbox, lookup_key: str, price_id: str, holder: Obj | None) -> None:
    if holder is not None:
        sb.update("price.updated", holder, {"lookup_key": None})
    sb.store.lookup_keys[lookup_key] = price_id


def create(call: Call) -> Obj:
    return create_price(call.sandbox, call.params)


def update(call: Call) -> Obj:
    p, sb = call.params, call.sandbox
    price = sb.store.require("price", call.path["id"])
    changes: dict[str, Any] = {}
    if p.get("active") is not None:
        changes["active"] = p["active"]
    if "nickname" in p:
        changes["nickname"] = p["nickname"]
    if p.get("tax_behavior") is not None:
        changes["tax_behavior"] = p["tax_behavior"]
    if "metadata" in p:
        changes["metadata"] = apply_metadata(price["metadata"], p["metadata"])
    if "lookup_key" in p:
        old = price["lookup_key"]
        if p["lookup_key"] is not None:
            holder = _check_lookup_key(sb, p["lookup_key"], price["id"], transfer=bool(p.get("transfer_lookup_key")))
            _claim_lookup_key(sb, p["lookup_key"], price["id"], holder)
        if old is not None and old != p["lookup_key"] and sb.store.lookup_keys.get(old) == price["id"]:
            del sb.store.lookup_keys[old]
        changes["lookup_key"] = p["lookup_key"]
    return sb.update("price.updated", price, changes)


def _keep(price: Obj, p: Mapping[str, Any]) -> bool:
    lookup_keys = p.get("lookup_keys")
    rec = p.get("recurring") or {}
    return (
        matches(p, "active", price["active"])
        and matches(p, "product", price["product"])
        and matches(p, "type", price["type"])
        and matches(p, "currency", price["currency"])
        and (not lookup_keys or price["lookup_key"] in lookup_keys)
        and (not rec.get("interval") or (price["recurring"] or {}).get("interval") == rec["interval"])
    )


def endpoints() -> list[Endpoint]:
    filters: dict[str, Field] = {
        "active": Boolean(),
        "product": Text(),
        "lookup_keys": Array(Text(200), max_items=10),
        "type": Choice(("one_time", "recurring")),
        "currency": Text(3),
        "recurring": Hash({"interval": Choice(INTERVALS), "usage_type": Choice(("licensed", "metered"))}),
    }
    return [
        Endpoint("POST", "/v1/prices", create, Params(FIELDS)),
        Endpoint("GET", "/v1/prices", listing("price", "/v1/prices", _keep), list_params(filters)),
        Endpoint("GET", "/v1/prices/{id}", retrieve("price")),
        Endpoint("POST", "/v1/prices/{id}", update, Params(UPDATE_FIELDS)),
    ]
