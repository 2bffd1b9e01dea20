"""/v1/webhook_endpoints: create (the `secret` is in this answer only, as Stripe does), retrieve, update,
delete, list. Events go to every enabled endpoint whose `enabled_events` has their type or `*`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from stripe_sandbox import ids, objects
from stripe_sandbox.api import Call, Endpoint
from stripe_sandbox.errors import invalid, missing
from stripe_sandbox.params import Array, Boolean, Field, Metadata, Params, Text, apply_metadata
from stripe_sandbox.routes.common import check_url, list_params, listing, retrieve
from stripe_sandbox.sandbox import Sandbox

Obj = dict[str, Any]
EVENT_TYPE = re.compile(r"^\*$|^[a-z_]+(\.[a-z_]+)+$")
MAX_ENDPOINTS = 16

FIELDS: dict[str, Field] = {
    "url": Text(5000),
    "enabled_events": Array(Text(100), max_items=300),
    "description": Text(5000),
    "metadata": Metadata(),
    "api_version": Text(40),
    "connect": Boolean(),
}


def _events(values: Sequence[str] | None) -> list[str]:
    if not values:
        raise missing("enabled_events")
    for index, value in enumerate(values):
        if value is None or not EVENT_TYPE.match(value):
            raise invalid(f"Invalid event type: {value}", param=f"enabled_events[{index}]")
    return list(dict.fromkeys(values))


def register(
    sb: Sandbox,
    *,
    url: str,
    enabled_events: Sequence[str],
    secret: str | None = None,
    description: str | None = None,
    metadata: dict[str, str] | None = None,
    api_version: str | None = None,
) -> Obj:
    """Add an endpoint; the answer carries its signing secret."""
    endpoint = objects.webhook_endpoint(
        endpoint_id=ids.new_id("webhook_endpoint"),
        created=sb.now(),
        url=url,
        enabled_events=enabled_events,
        description=description,
        metadata=metadata or {},
        api_version=api_version,
    )
    sb.store.add(endpoint)
    sb.store.endpoint_secrets[endpoint["id"]] = secret or ids.webhook_secret()
    return {**endpoint, "secret": sb.store.endpoint_secrets[endpoint["id"]]}


def create(call: Call) -> Obj:
    p, sb = call.params, call.sandbox
    if p.get("url") is None:
        raise missing("url")
    if p.get("connect"):
        raise invalid("The sandbox has no connected accounts: `connect` must be false.", param="connect")
    if len(sb.store.all("webhook_endpoint")) >= MAX_ENDPOINTS:
        raise invalid(f"You have reached the maximum of {MAX_ENDPOINTS} test webhook endpoints.")
    return register(
        sb,
        url=str(check_url(p["url"], "url")),
        enabled_events=_events(p.get("enabled_events")),
        description=p.get("description"),
        metadata=apply_metadata({}, p.get("metadata")),
        api_version=p.get("api_version"),
    )


def update(call: Call) -> Obj:
    p, sb = call.params, call.sandbox
    endpoint = sb.store.require("webhook_endpoint", call.path["id"])
    changes: dict[str, Any] = {}
    if "url" in p:
        if p["url"] is None:
            raise missing("url")
        changes["url"] = check_url(p["url"], "url")
    if "enabled_events" in p:
        changes["enabled_events"] = _events(p["enabled_events"])
    if "description" in p:
        changes["description"] = p["description"]
    if "metadata" in p:
        changes["metadata"] = apply_metadata(endpoint["metadata"], p["metadata"])
    if p.get("disabled") is not None:
        changes["status"] = "disabled" if p["disabled"] else "enabled"
    return sb.update(None, endpoint, changes)


def delete(call: Call) -> Obj:
    sb = call.sandbox
    endpoint = sb.store.require("webhook_endpoint", call.path["id"])
    sb.store.remove("webhook_endpoint", endpoint["id"])
    sb.store.endpoint_secrets.pop(endpoint["id"], None)
    return objects.deleted("webhook_endpoint", endpoint["id"])


def endpoints() -> list[Endpoint]:
    update_fields: dict[str, Field] = {
        key: value for key, value in FIELDS.items() if key not in ("api_version", "connect")
    }
    return [
        Endpoint("POST", "/v1/webhook_endpoints", create, Params(FIELDS)),
        Endpoint("GET", "/v1/webhook_endpoints", listing("webhook_endpoint", "/v1/webhook_endpoints"), list_params()),
        Endpoint("GET", "/v1/webhook_endpoints/{id}", retrieve("webhook_endpoint")),
        Endpoint("POST", "/v1/webhook_endpoints/{id}", update, Params({**update_fields, "disabled": Boolean()})),
        Endpoint("DELETE", "/v1/webhook_endpoints/{id}", delete),
    ]
