"""Payments settings: PAYMENTS_* environment variables (see svckit.settings for the shared ones)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

import stripe
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from payments_svc.catalog import DEFAULT_CATALOG
from svckit import devdefaults
from svckit.settings import ServiceSettings

STRIPE_API_BASE = "https://api.stripe.com"


class PaymentsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PAYMENTS_", extra="ignore", frozen=True)

    database_url: str = "sqlite:///var/payments.db"
    grpc_port: int = Field(default=devdefaults.PAYMENTS_PORT, ge=0, le=65535)

    # Stripe: the local sandbox by default; a real test key and https://api.stripe.com otherwise.
    stripe_secret_key: SecretStr = SecretStr(devdefaults.STRIPE_SANDBOX_KEY)
    stripe_api_base: str = f"http://127.0.0.1:{devdefaults.STRIPE_SANDBOX_PORT}"
    # Pinned: the shapes this service reads are those of this version.
    stripe_api_version: str = stripe.api_version
    stripe_max_network_retries: int = Field(default=2, ge=0, le=10)
    stripe_timeout_seconds: float = Field(default=20.0, gt=0, le=120)
    # Test mode only: every new Stripe customer gets its own test clock, so that tests
    # can advance time for that customer's subscriptions (renewals, trials, retries).
    stripe_test_clocks: bool = False

    catalog_file: Path = DEFAULT_CATALOG

    # The Credits service, and this service's credential there.
    credits_target: str = f"127.0.0.1:{devdefaults.CREDITS_PORT}"
    credits_token: SecretStr = SecretStr(devdefaults.PAYMENTS_TOKEN)
    credits_deadline_seconds: float = Field(default=5.0, gt=0, le=60)

    # The outbox relay; off only to show in tests what a relay-less crash leaves behind.
    outbox_relay: bool = True
    outbox_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    # How long a relay may hold a message before another relay (or this one, restarted) sends it
    # again: longer than the two Credits calls a message can take.
    outbox_lease_seconds: float = Field(default=30.0, gt=0, le=3600)

    # Test-only fault injection: "crash-after-grant" kills the process (SIGKILL) right after
    # Credits confirmed a grant and before the outbox message is marked sent.
    fault_injection: Literal["", "crash-after-grant"] = ""

    @model_validator(mode="after")
    def _stripe_is_safe(self) -> Self:
        key = self.stripe_secret_key.get_secret_value()
        if not key.startswith(("sk_", "rk_")):
            raise ValueError("PAYMENTS_STRIPE_SECRET_KEY must be a Stripe secret (sk_...) or restricted (rk_...) key")
        live = key.startswith(("sk_live_", "rk_live_"))
        if live and self.stripe_api_base.rstrip("/") != STRIPE_API_BASE:
            raise ValueError(
                f"PAYMENTS_STRIPE_SECRET_KEY is a live Stripe key: PAYMENTS_STRIPE_API_BASE must be {STRIPE_API_BASE}"
            )
        if self.environment == "production" and key == devdefaults.STRIPE_SANDBOX_KEY:
            raise ValueError("PAYMENTS_STRIPE_SECRET_KEY: production needs a real Stripe key, not the sandbox's")
        if self.environment == "production" and self.credits_token.get_secret_value() in devdefaults.PUBLIC_VALUES:
            raise ValueError("PAYMENTS_CREDITS_TOKEN is a public development default")
        if self.outbox_lease_seconds <= 2 * self.credits_deadline_seconds:
            raise ValueError("PAYMENTS_OUTBOX_LEASE_SECONDS must exceed twice PAYMENTS_CREDITS_DEADLINE_SECONDS")
        if self.stripe_test_clocks and (live or self.environment == "production"):
            raise ValueError("PAYMENTS_STRIPE_TEST_CLOCKS is for test mode only (a test key, not production)")
        if self.fault_injection and self.environment != "test":
            raise ValueError("PAYMENTS_FAULT_INJECTION is allowed only with PAYMENTS_ENVIRONMENT=test")
        return self
