"""/v1/invoices: retrieve, list (filters `customer`, `subscription`, `status`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stripe_sandbox.api import Endpoint
from stripe_sandbox.params import Choice, Field, Text
from stripe_sandbox.routes.common import list_params, listing, matches, retrieve

Obj = dict[str, Any]


def _keep(invoice: Obj, p: Mapping[str, Any]) -> bool:
    return (
        matches(p, "customer", invoice["customer"])
        and matches(p, "subscription", invoice["subscription"])
        and matches(p, "status", invoice["status"])
    )


def endpoints() -> list[Endpoint]:
    filters: dict[str, Field] = {
        "customer": Text(),
        "subscription": Text(),
        "status": Choice(("draft", "open", "paid", "uncollectible", "void")),
    }
    return [
        Endpoint("GET", "/v1/invoices", listing("invoice", "/v1/invoices", _keep), list_params(filters)),
        Endpoint("GET", "/v1/invoices/{id}", retrieve("invoice")),
    ]
