"""/v1/payment_methods/{id}: the card payment methods the sandbox made (brand and last4 only)."""

from __future__ import annotations

from stripe_sandbox.api import Endpoint
from stripe_sandbox.routes.common import retrieve


def endpoints() -> list[Endpoint]:
    return [Endpoint("GET", "/v1/payment_methods/{id}", retrieve("payment_method"))]
