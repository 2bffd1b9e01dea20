"""Settings, from STRIPE_SANDBOX_* environment variables, validated at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from svckit import devdefaults

ENV_PREFIX = "STRIPE_SANDBOX_"


class SandboxSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=devdefaults.STRIPE_SANDBOX_PORT, ge=0, le=65535)
    # Where browsers reach the sandbox: the base of hosted checkout and portal URLs. Default http://HOST:PORT
    # (with port 0, the port actually bound).
    public_url: str | None = None
    # Written with {"port": N} once listening; lets tests and scripts start it on port 0.
    ready_file: Path | None = None
    # The one API key accepted (Authorization: Bearer <key>).
    secret_key: SecretStr = SecretStr(devdefaults.STRIPE_SANDBOX_KEY)
    # An endpoint registered at start-up for every event (besides those created through the API).
    webhook_url: str | None = None
    # Its signing secret; defaults to the development one the gateway expects when a URL is set.
    webhook_secret: SecretStr | None = None
    # How long a delayed test card's payment stays processing before it settles.
    async_delay_seconds: float = Field(default=5.0, ge=0, le=3600)
    # Webhook delivery: attempts per event and endpoint, exponential backoff between them.
    webhook_max_attempts: int = Field(default=8, ge=1, le=100)
    webhook_retry_base_seconds: float = Field(default=0.5, gt=0, le=3600)
    webhook_retry_factor: float = Field(default=2.0, ge=1, le=10)
    webhook_retry_max_seconds: float = Field(default=60.0, gt=0, le=86400)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"

    @field_validator("secret_key")
    @classmethod
    def _test_key(cls, key: SecretStr) -> SecretStr:
        if not key.get_secret_value().startswith("sk_test_"):
            raise ValueError("must be a test-mode secret key (sk_test_...): the sandbox never takes a live key")
        return key

    @field_validator("public_url", "webhook_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is None or url == "":
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL")
        return url.rstrip("/")

    @field_validator("webhook_secret")
    @classmethod
    def _signing_secret(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and not secret.get_secret_value().startswith("whsec_"):
            raise ValueError("must be a webhook signing secret (whsec_...)")
        return secret

    @model_validator(mode="after")
    def _secret_with_url(self) -> Self:
        if self.webhook_secret is not None and self.webhook_url is None:
            raise ValueError("STRIPE_SANDBOX_WEBHOOK_SECRET is set but STRIPE_SANDBOX_WEBHOOK_URL is not")
        return self

    def signing_secret(self) -> str | None:
        if self.webhook_url is None:
            return None
        if self.webhook_secret is None:
            return devdefaults.STRIPE_WEBHOOK_SECRET
        return self.webhook_secret.get_secret_value()

    def public_base(self, bound_port: int) -> str:
        if self.public_url is not None:
            return self.public_url
        host = f"[{self.host}]" if ":" in self.host else self.host
        if host in ("0.0.0.0", "[::]"):  # noqa: S104 - a browser cannot go to the wildcard address
            host = "127.0.0.1"
        return f"http://{host}:{bound_port}"
