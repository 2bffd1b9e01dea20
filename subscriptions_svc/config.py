"""Subscriptions settings: SUBSCRIPTIONS_* environment variables (see svckit.settings for the shared ones)."""

from __future__ import annotations

from pathlib import Path
from typing import Self

import stripe
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from subscriptions_svc.plans import DEFAULT_PLANS
from svckit import devdefaults
from svckit.mail import check_endpoint
from svckit.settings import ServiceSettings
from svckit.stripe_client import StripeSettings

STRIPE_API_BASE = "https://api.stripe.com"


class SubscriptionsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SUBSCRIPTIONS_", extra="ignore", frozen=True)

    database_url: str = "sqlite:///var/subscriptions.db"
    grpc_port: int = Field(default=devdefaults.SUBSCRIPTIONS_PORT, ge=0, le=65535)

    # Stripe: the local sandbox by default; a real test key and https://api.stripe.com otherwise.
    stripe_secret_key: SecretStr = SecretStr(devdefaults.STRIPE_SANDBOX_KEY)
    stripe_api_base: str = f"http://127.0.0.1:{devdefaults.STRIPE_SANDBOX_PORT}"
    stripe_api_version: str = stripe.api_version
    stripe_max_network_retries: int = Field(default=2, ge=0, le=10)
    stripe_timeout_seconds: float = Field(default=20.0, gt=0, le=120)

    plans_file: Path = DEFAULT_PLANS

    # The Credits service (period grants) and the Payments service (each user's Stripe customer),
    # and this service's credential at each.
    credits_target: str = f"127.0.0.1:{devdefaults.CREDITS_PORT}"
    credits_token: SecretStr = SecretStr(devdefaults.SUBSCRIPTIONS_TOKEN)
    payments_target: str = f"127.0.0.1:{devdefaults.PAYMENTS_PORT}"
    payments_token: SecretStr = SecretStr(devdefaults.SUBSCRIPTIONS_TOKEN)
    call_deadline_seconds: float = Field(default=5.0, gt=0, le=60)

    # Notices (payment failed, trial ending, upcoming renewal): an HTTPS email API in
    # production; locally a development mailbox, one JSON file per message.
    mail_endpoint: str = "file:var/mailbox"
    mail_token: SecretStr = SecretStr("")
    mail_from: str = "billing@localhost"

    outbox_relay: bool = True
    outbox_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    outbox_lease_seconds: float = Field(default=30.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _safe(self) -> Self:
        key = self.stripe_secret_key.get_secret_value()
        if not key.startswith(("sk_", "rk_")):
            raise ValueError(
                "SUBSCRIPTIONS_STRIPE_SECRET_KEY must be a Stripe secret (sk_...) or restricted (rk_...) key"
            )
        live = key.startswith(("sk_live_", "rk_live_"))
        if live and self.stripe_api_base.rstrip("/") != STRIPE_API_BASE:
            raise ValueError(
                f"SUBSCRIPTIONS_STRIPE_SECRET_KEY is a live key: SUBSCRIPTIONS_STRIPE_API_BASE must be "
                f"{STRIPE_API_BASE}"
            )
        production = self.environment == "production"
        if production and key == devdefaults.STRIPE_SANDBOX_KEY:
            raise ValueError("SUBSCRIPTIONS_STRIPE_SECRET_KEY: production needs a real Stripe key, not the sandbox's")
        for name, token in (("CREDITS_TOKEN", self.credits_token), ("PAYMENTS_TOKEN", self.payments_token)):
            if production and token.get_secret_value() in devdefaults.PUBLIC_VALUES:
                raise ValueError(f"SUBSCRIPTIONS_{name} is a public development default")
        problem = check_endpoint(self.mail_endpoint, production=production)
        if problem:
            raise ValueError(f"SUBSCRIPTIONS_MAIL_ENDPOINT {problem}")
        if production and not self.mail_token.get_secret_value():
            raise ValueError("SUBSCRIPTIONS_MAIL_TOKEN is required in production")
        if self.outbox_lease_seconds <= 2 * self.call_deadline_seconds:
            raise ValueError("SUBSCRIPTIONS_OUTBOX_LEASE_SECONDS must exceed twice SUBSCRIPTIONS_CALL_DEADLINE_SECONDS")
        return self

    def stripe(self) -> StripeSettings:
        return StripeSettings(
            secret_key=self.stripe_secret_key.get_secret_value(),
            api_base=self.stripe_api_base,
            api_version=self.stripe_api_version,
            max_network_retries=self.stripe_max_network_retries,
            timeout_seconds=self.stripe_timeout_seconds,
            key_setting="SUBSCRIPTIONS_STRIPE_SECRET_KEY",
        )
