"""/v1/billing_portal/sessions: create (`customer`, `return_url`).

The session's `url` is the sandbox's portal page, listing the customer's subscriptions.
"""

from __future__ import annotations

from typing import Any

from stripe_sandbox import ids, objects
from stripe_sandbox.api import Call, Endpoint
from stripe_sandbox.errors import invalid, missing
from stripe_sandbox.params import Params, Text
from stripe_sandbox.routes.common import check_url

Obj = dict[str, Any]


def create(call: Call) -> Obj:
    p, sb = call.params, call.sandbox
    if p.get("customer") is None:
        raise missing("customer")
    customer = sb.store.require("customer", p["customer"], param="customer")
    configuration = p.get("configuration")
    if configuration is not None and configuration != sb.portal_configuration:
        raise invalid(f"No such configuration: '{configuration}'", param="configuration", code="resource_missing")
    session_id = ids.new_id("billing_portal.session")
    session = objects.portal_session(
        session_id=session_id,
        created=sb.now(),
        customer_id=customer["id"],
        return_url=check_url(p.get("return_url"), "return_url"),
        url=sb.url(f"/billing_portal/{session_id}"),
        configuration=sb.portal_configuration,
    )
    if p.get("locale") is not None:
        session["locale"] = p["locale"]
    sb.store.add(session)
    sb.emit("billing_portal.session.created", session)
    return session


def endpoints() -> list[Endpoint]:
    fields = {"customer": Text(), "return_url": Text(5000), "configuration": Text(), "locale": Text(10)}
    return [Endpoint("POST", "/v1/billing_portal/sessions", create, Params(fields))]
