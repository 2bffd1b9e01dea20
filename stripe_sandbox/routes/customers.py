"""/v1/customers: create, retrieve, update, delete, list (filters `email`, `test_clock`).

`test_clock` (create only) puts the customer on a test clock: it is created at the clock's time
and what is its follows the clock (clocks.py). `payment_method` (create) attaches a payment
method (a test id such as `pm_card_visa` makes a new one); `invoice_settings[default_payment_method]`
names the attached one renewals charge (the same test id given to both means the one attached).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stripe_sandbox import ids, objects
from stripe_sandbox.api import Call, Endpoint
from stripe_sandbox.params import Array, Field, Hash, Metadata, Params, Text, apply_metadata
from stripe_sandbox.routes.common import ADDRESS, check_email, list_params, listing, matches, retrieve
from stripe_sandbox.routes.payment_methods import resolve
from stripe_sandbox.sandbox import Sandbox

Obj = dict[str, Any]

FIELDS: dict[str, Field] = {
    "email": Text(512),
    "name": Text(256),
    "description": Text(350),
    "phone": Text(20),
    "metadata": Metadata(),
    "address": ADDRESS,
    "preferred_locales": Array(Text(20)),
    "invoice_settings": Hash({"default_payment_method": Text(), "footer": Text(5000)}),
}
CREATE_FIELDS: dict[str, Field] = {**FIELDS, "test_clock": Text(), "payment_method": Text()}


def _invoice_settings(sb: Sandbox, customer: Obj, given: Mapping[str, Any]) -> Obj:
    settings = dict(customer["invoice_settings"])
    if "footer" in given:
        settings["footer"] = given["footer"]
    if "default_payment_method" in given:
        value = given["default_payment_method"]
        if value is not None:
            value = resolve(sb, value, customer["id"], param="invoice_settings[default_payment_method]")["id"]
        settings["default_payment_method"] = value
    return settings


def create(call: Call) -> Obj:
    p, sb = call.params, call.sandbox
    clock = None
    if p.get("test_clock") is not None:
        clock = sb.store.require("test_helpers.test_clock", p["test_clock"], param="test_clock")
    customer = objects.customer(
        customer_id=ids.new_id("customer"),
        created=sb.now() if clock is None else int(clock["frozen_time"]),
        email=check_email(p.get("email"), "email"),
        name=p.get("name"),
        description=p.get("description"),
        phone=p.get("phone"),
        metadata=apply_metadata({}, p.get("metadata")),
        address=p.get("address"),
    )
    customer["preferred_locales"] = p.get("preferred_locales") or []
    customer["test_clock"] = None if clock is None else clock["id"]
    sb.store.add(customer)
    attached = None
    if p.get("payment_method") is not None:
        attached = resolve(sb, p["payment_method"], customer["id"], param="payment_method")
    if p.get("invoice_settings") is not None:
        given = p["invoice_settings"]
        if attached is not None and given.get("default_payment_method") == p["payment_method"]:
            given = {**given, "default_payment_method": attached["id"]}
        customer["invoice_settings"] = _invoice_settings(sb, customer, given)
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
    if p.get("invoice_settings") is not None:
        changes["invoice_settings"] = _invoice_settings(sb, customer, p["invoice_settings"])
    return sb.update("customer.updated", customer, changes)


def delete(call: Call) -> Obj:
    sb = call.sandbox
    customer = sb.store.require("customer", call.path["id"])
    sb.store.remove("customer", customer["id"])
    sb.emit("customer.deleted", customer)
    return objects.deleted("customer", customer["id"])


def endpoints() -> list[Endpoint]:
    return [
        Endpoint("POST", "/v1/customers", create, Params(CREATE_FIELDS)),
        Endpoint(
            "GET",
            "/v1/customers",
            listing(
                "customer",
                "/v1/customers",
                lambda c, p: matches(p, "email", c["email"]) and matches(p, "test_clock", c["test_clock"]),
            ),
            list_params({"email": Text(512), "test_clock": Text()}),
        ),
        Endpoint("GET", "/v1/customers/{id}", retrieve("customer")),
        Endpoint("POST", "/v1/customers/{id}", update, Params(FIELDS)),
        Endpoint("DELETE", "/v1/customers/{id}", delete),
    ]
