"""Stripe's API endpoints, one module per resource, each exposing `endpoints()`."""

from __future__ import annotations

from stripe_sandbox.api import Endpoint
from stripe_sandbox.routes import (
    billing_portal,
    charges,
    checkout_sessions,
    customers,
    events,
    invoiceitems,
    invoices,
    payment_intents,
    payment_methods,
    prices,
    products,
    refunds,
    subscriptions,
    test_clocks,
    webhook_endpoints,
)


def endpoints() -> list[Endpoint]:
    modules = (
        customers,
        products,
        prices,
        checkout_sessions,
        payment_intents,
        payment_methods,
        charges,
        refunds,
        billing_portal,
        subscriptions,
        invoices,
        invoiceitems,
        test_clocks,
        webhook_endpoints,
        events,
    )
    return [endpoint for module in modules for endpoint in module.endpoints()]
