"""Embedded defaults for running the whole stack on one machine.

They make `make run` work with no configuration at all. Every one of them is
public, so production settings refuse them (see `svckit.settings`).
"""

from __future__ import annotations

# Service credentials: the token each caller presents to the services.
GATEWAY_TOKEN = "dev-only-gateway-token"
PAYMENTS_TOKEN = "dev-only-payments-token"
SUBSCRIPTIONS_TOKEN = "dev-only-subscriptions-token"
OPS_TOKEN = "dev-only-ops-token"

SERVICE_TOKENS = {
    "gateway": GATEWAY_TOKEN,
    "payments": PAYMENTS_TOKEN,
    "subscriptions": SUBSCRIPTIONS_TOKEN,
    "ops": OPS_TOKEN,
}

# The gateway's HS256 secret for end-user JWTs.
JWT_SECRET = "dev-only-jwt-secret-change-me-in-production"
JWT_ISSUER = "billing-dev"
JWT_AUDIENCE = "billing-api"


CREDITS_PORT = 50051
PAYMENTS_PORT = 50052
SUBSCRIPTIONS_PORT = 50053
GATEWAY_PORT = 8080

# The local Stripe sandbox (stripe_sandbox): its API key, port and webhook signing secret.
STRIPE_SANDBOX_KEY = "sk_test_sandbox"
STRIPE_SANDBOX_PORT = 12111
STRIPE_WEBHOOK_SECRET = "whsec_dev_only_local_sandbox_signing_secret"

PUBLIC_VALUES = frozenset({*SERVICE_TOKENS.values(), JWT_SECRET, STRIPE_SANDBOX_KEY, STRIPE_WEBHOOK_SECRET})
