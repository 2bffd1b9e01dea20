"""/v1/charges: retrieve, list (filters `payment_intent`, `customer`). Charges are made by payments, never directly."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stripe_sandbox.api import Endpoint
from stripe_sandbox.params import Text
from stripe_sandbox.routes.common import list_params, listing, matches, retrieve

Obj = dict[str, Any]


def _keep(charge: Obj, p: Mapping[str, Any]) -> bool:
    return matches(p, "payment_intent", charge["payment_intent"]) and matches(p, "customer", charge["customer"])


def endpoints() -> list[Endpoint]:
    return [
        Endpoint(
            "GET",
            "/v1/charges",
            listing("charge", "/v1/charges", _keep),
            list_params({"payment_intent": Text(), "customer": Text()}),
        ),
        Endpoint("GET", "/v1/charges/{id}", retrieve("charge")),
    ]
