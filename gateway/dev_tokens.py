"""Tokens for local runs and tests, signed like the identity provider's would be.

`mint_token` makes a JWT with the claims the gateway checks. `python -m gateway
dev-tokens` prints a token for a demo user and one for a demo admin, signed
with the configured development secret; it refuses to run in production.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

import jwt

from gateway.config import GatewaySettings

DEMO_USER = "demo-user"
DEMO_ADMIN = "demo-admin"
DEMO_TTL_SECONDS = 12 * 3600


def mint_token(
    secret: str,
    issuer: str,
    audience: str,
    user_id: str,
    roles: Iterable[str],
    ttl_seconds: int,
    *,
    algorithm: str = "HS256",
    roles_claim: str = "roles",
    now: float | None = None,
) -> str:
    """A signed JWT for `user_id`; a negative `ttl_seconds` gives one that has already expired.

    `secret` is the HS256 secret, or the private key (PEM) for RS256.
    """
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": user_id,
        "iat": issued,
        "exp": issued + ttl_seconds,
        "jti": uuid.uuid4().hex,
        roles_claim: list(roles),
    }
    return jwt.encode(claims, secret, algorithm=algorithm)


def demo_tokens(settings: GatewaySettings, ttl_seconds: int = DEMO_TTL_SECONDS) -> dict[str, dict[str, str]]:
    if settings.environment == "production":
        raise ValueError("development tokens are not minted in production")
    if settings.jwt_algorithm != "HS256":
        raise ValueError("development tokens need GATEWAY_JWT_ALGORITHM=HS256 (the gateway holds no private key)")
    secret = settings.jwt_key()
    people = {"user": (DEMO_USER, ["user"]), "admin": (DEMO_ADMIN, ["user", "admin"])}
    return {
        name: {
            "user_id": user_id,
            "token": mint_token(
                secret,
                settings.jwt_issuer,
                settings.jwt_audience,
                user_id,
                roles,
                ttl_seconds,
                roles_claim=settings.roles_claim,
            ),
        }
        for name, (user_id, roles) in people.items()
    }
