"""/v1/products: create, retrieve, update, list (filters `active`, `ids[]`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stripe_sandbox import ids, objects
from stripe_sandbox.api import Call, Endpoint
from stripe_sandbox.errors import invalid
from stripe_sandbox.params import Array, Boolean, Field, Metadata, Params, Text, apply_metadata, required
from stripe_sandbox.routes.common import check_url, list_params, listing, matches, retrieve
from stripe_sandbox.sandbox import Sandbox

Obj = dict[str, Any]

FIELDS: dict[str, Field] = {
    "name": Text(250),
    "active": Boolean(),
    "description": Text(),
    "metadata": Metadata(),
    "images": Array(Text(2048), max_items=8),
    "statement_descriptor": Text(22),
    "unit_label": Text(12),
    "url": Text(2048),
}


def create_product(
    sb: Sandbox, p: Mapping[str, Any], *, product_id: str | None = None, param: str = "", emit: bool = True
) -> Obj:
    name = required(p, "name", prefix=param)
    product = objects.product(
        product_id=product_id or ids.new_id("product"),
        created=sb.now(),
        name=name,
        active=p.get("active") is not False,
        description=p.get("description"),
        metadata=apply_metadata({}, p.get("metadata")),
        images=p.get("images") or [],
        statement_descriptor=p.get("statement_descriptor"),
        unit_label=p.get("unit_label"),
        url=check_url(p.get("url"), "url"),
    )
    sb.store.add(product)
    if emit:
        sb.emit("product.created", product)
    return product


def create(call: Call) -> Obj:
    product_id = call.params.get("id")
    if product_id is not None and call.sandbox.store.find(product_id) is not None:
        raise invalid(f"Product already exists: {product_id}", param="id", code="resource_already_exists")
    return create_product(call.sandbox, call.params, product_id=product_id)


def update(call: Call) -> Obj:
    p, sb = call.params, call.sandbox
    product = sb.store.require("product", call.path["id"])
    changes: dict[str, Any] = {}
    if "name" in p:
        changes["name"] = required(p, "name")
    for name in ("description", "statement_descriptor", "unit_label"):
        if name in p:
            changes[name] = p[name]
    if "url" in p:
        changes["url"] = check_url(p["url"], "url")
    if "active" in p and p["active"] is not None:
        changes["active"] = p["active"]
    if "images" in p:
        changes["images"] = p["images"] or []
    if "metadata" in p:
        changes["metadata"] = apply_metadata(product["metadata"], p["metadata"])
    if "default_price" in p:
        if p["default_price"] is not None:
            price = sb.store.require("price", p["default_price"], param="default_price")
            if price["product"] != product["id"]:
                raise invalid("The default price must belong to this product.", param="default_price")
        changes["default_price"] = p["default_price"]
    if changes:
        changes["updated"] = sb.now()
    return sb.update("product.updated", product, changes)


def _keep(product: Obj, p: Mapping[str, Any]) -> bool:
    return matches(p, "active", product["active"]) and (not p.get("ids") or product["id"] in p["ids"])


def endpoints() -> list[Endpoint]:
    return [
        Endpoint("POST", "/v1/products", create, Params({**FIELDS, "id": Text(250)})),
        Endpoint(
            "GET",
            "/v1/products",
            listing("product", "/v1/products", _keep),
            list_params({"active": Boolean(), "ids": Array(Text())}),
        ),
        Endpoint("GET", "/v1/products/{id}", retrieve("product")),
        Endpoint("POST", "/v1/products/{id}", update, Params({**FIELDS, "default_price": Text()})),
    ]
