"""/v1/test_helpers/test_clocks: create, retrieve, list, delete, `/{id}/advance` (clocks.py)."""

from __future__ import annotations

from typing import Any

from stripe_sandbox import clocks
from stripe_sandbox.api import Call, Endpoint
from stripe_sandbox.params import Integer, Params, Text, required
from stripe_sandbox.routes.common import list_params, listing, retrieve

Obj = dict[str, Any]
KIND = "test_helpers.test_clock"
PATH = "/v1/test_helpers/test_clocks"


def create(call: Call) -> Obj:
    return clocks.create(call.sandbox, frozen_time=required(call.params, "frozen_time"), name=call.params.get("name"))


def advance(call: Call) -> Obj:
    clock = call.sandbox.store.require(KIND, call.path["id"])
    return clocks.advance(call.sandbox, clock, required(call.params, "frozen_time"))


def delete(call: Call) -> Obj:
    return clocks.delete(call.sandbox, call.sandbox.store.require(KIND, call.path["id"]))


def endpoints() -> list[Endpoint]:
    return [
        Endpoint("POST", PATH, create, Params({"frozen_time": Integer(minimum=0), "name": Text(300)})),
        Endpoint("GET", PATH, listing(KIND, PATH), list_params()),
        Endpoint("GET", PATH + "/{id}", retrieve(KIND)),
        Endpoint("DELETE", PATH + "/{id}", delete),
        Endpoint("POST", PATH + "/{id}/advance", advance, Params({"frozen_time": Integer(minimum=0)})),
    ]
