"""/v1/events: list (filters `type` with `*` wildcards, `types[]`, `created`, cursors; newest first) and retrieve.

Each event holds a snapshot of its object at the moment it happened, and
`previous_attributes` on `*.updated` events.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any

from stripe_sandbox.api import Call, Endpoint
from stripe_sandbox.params import Array, Boolean, Field, Text, exclusive
from stripe_sandbox.routes.common import list_params, listing, retrieve

Obj = dict[str, Any]


def _keep(event: Obj, p: Mapping[str, Any]) -> bool:
    if p.get("type") is not None and not fnmatch.fnmatchcase(event["type"], p["type"]):
        return False
    if p.get("types") and event["type"] not in p["types"]:
        return False
    delivered = p.get("delivery_success")
    return delivered is None or delivered == (event["pending_webhooks"] == 0)


def list_events(call: Call) -> Obj:
    exclusive(call.params, "type", "types")
    return listing("event", "/v1/events", _keep)(call)


def endpoints() -> list[Endpoint]:
    filters: dict[str, Field] = {
        "type": Text(100),
        "types": Array(Text(100), max_items=20),
        "delivery_success": Boolean(),
    }
    return [
        Endpoint("GET", "/v1/events", list_events, list_params(filters)),
        Endpoint("GET", "/v1/events/{id}", retrieve("event")),
    ]
