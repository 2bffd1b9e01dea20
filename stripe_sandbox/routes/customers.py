"""/v1/customers: create, retrieve, update, delete, list (filter `email`)."""

from __future__ import annotations

from typing import Any

from stripe_sandbox import ids, objects
from stripe_sandbox.api import Call, Endpoint
from stripe_sandbox.params import Array, Field, Metadata, Params, Text, apply_metadata
from stripe_sandbox.routes.common import ADDRESS, check_email, list_params, listing, matches, retrieve

Obj = dict[str, Any]

FIELDS: dict[str, Field] = {
    "email": Text(512),
    "name": Text(256),
    "description": Text(350),
    "phone": Text(20),
    "metadata": Metadata(),
    "address": ADDRESS,
    "preferred_locales": Array(Text(20)),
}


def create(call: Call) -> Obj:
    p, sb = call.params, call.sandbox
    customer = objects.customer(
        customer_id=ids.new_id("customer"),
        created=sb.now(),
        email=check_email(p.get("email"), "email"),
        name=p.get("name"),
        description=p.get("description"),
        phone=p.get("phone"),
        metadata=apply_metadata({}, p.get("metadata")),
        address=p.get("address"),
    )
    customer["preferred_locales"] = p.get("preferred_locales") or []
    sb.store.add(customer)
    sb.emit("customer.created", customer)
    return customer


def update(call: Call) -> Obj:
    p, sb = call.params, call.sandbox
    customer = sb.store.require("customer", call.path["id"])
    changes: dict[str, Any] = {}
    for name in ("name", "description", "phone"):
        if name in p:
            changes[name] = p[name]
    if "email" in p:
        changes["email"] = check_email(p["email"], "email")
    if "address" in p:
        changes["address"] = None if p["address"] is None else {**objects.NULL_ADDRESS, **p["address"]}
    if "preferred_locales" in p:
        changes["preferred_locales"] = p["preferred_locales"] or []
    if "metadata" in p:
        changes["metadata"] = apply_metadata(customer["metadata"], p["metadata"])
    return sb.update("customer.updated", customer, changes)


def delete(call: Call) -> Obj:
    sb = call.sandbox
    customer = sb.store.require("customer", call.path["id"])
    sb.store.remove("customer", customer["id"])
    sb.emit("customer.deleted", customer)
    return objects.deleted("customer", customer["id"])


def endpoints() -> list[Endpoint]:
    return [
        Endpoint("POST", "/v1/customers", create, Params(FIELDS)),
        Endpoint(
            "GET",
            "/v1/customers",
            listing("customer", "/v1/customers", lambda c, p: matches(p, "email", c["email"])),
            list_params({"email": Text(512)}),
        ),
        Endpoint("GET", "/v1/customers/{id}", retrieve("customer")),
        Endpoint("POST", "/v1/customers/{id}", update, Params(FIELDS)),
        Endpoint("DELETE", "/v1/customers/{id}", delete),
    ]
