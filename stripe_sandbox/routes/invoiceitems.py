"""/v1/invoiceitems: retrieve, list (filters `customer`, `invoice`, `pending`): the prorations a
subscription change made (prorations.py), pending until an invoice takes them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stripe_sandbox.api import Endpoint
from stripe_sandbox.params import Boolean, Field, Text
from stripe_sandbox.routes.common import list_params, listing, matches, retrieve

Obj = dict[str, Any]


def _keep(item: Obj, p: Mapping[str, Any]) -> bool:
    pending = p.get("pending")
    return (
        matches(p, "customer", item["customer"])
        and matches(p, "invoice", item["invoice"])
        and (pending is None or pending == (item["invoice"] is None))
    )


def endpoints() -> list[Endpoint]:
    filters: dict[str, Field] = {"customer": Text(), "invoice": Text(), "pending": Boolean()}
    return [
        Endpoint("GET", "/v1/invoiceitems", listing("invoiceitem", "/v1/invoiceitems", _keep), list_params(filters)),
        Endpoint("GET", "/v1/invoiceitems/{id}", retrieve("invoiceitem")),
    ]
