"""Gateway settings: GATEWAY_* environment variables, validated at start-up.

The defaults run the whole stack on one machine. With GATEWAY_ENVIRONMENT=production
the gateway refuses to start with a public development default (svckit.devdefaults)
or a secret shorter than 32 characters, for the service token and, with HS256, the
JWT secret; RS256 needs GATEWAY_JWT_PUBLIC_KEY, an RSA public key in PEM.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from svckit import devdefaults

MIN_PRODUCTION_SECRET_LENGTH = 32


def _target(port: int) -> str:
    return f"127.0.0.1:{port}"


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", frozen=True)

    environment: Literal["development", "test", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=devdefaults.GATEWAY_PORT, ge=0, le=65535)
    # Written with {"port": N, "metrics_port": M} once the gateway is listening; lets tests bind to port 0.
    ready_file: Path | None = None
    # Prometheus `GET /metrics` on a port of its own (on `host`), never through the edge; 0 picks a
    # free port, logged and written to the ready file: deployments set a fixed one (deploy/k8s: 9090).
    metrics_enabled: bool = True
    metrics_port: int = Field(default=0, ge=0, le=65535)

    # The gRPC services, as host:port.
    credits_target: str = _target(devdefaults.CREDITS_PORT)
    payments_target: str = _target(devdefaults.PAYMENTS_PORT)
    subscriptions_target: str = _target(devdefaults.SUBSCRIPTIONS_PORT)
    # The gateway's own credential, presented to every service.
    service_token: SecretStr = SecretStr(devdefaults.GATEWAY_TOKEN)

    # End-user JWTs: HS256 with a shared secret, or RS256 with the issuer's public key.
    jwt_algorithm: Literal["HS256", "RS256"] = "HS256"
    jwt_secret: SecretStr | None = SecretStr(devdefaults.JWT_SECRET)
    jwt_public_key: str | None = None
    jwt_issuer: str = Field(default=devdefaults.JWT_ISSUER, min_length=1)
    jwt_audience: str = Field(default=devdefaults.JWT_AUDIENCE, min_length=1)
    # Clock skew tolerated on exp, nbf and iat.
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)
    # The claim holding the caller's roles: a list containing "user" and/or "admin".
    roles_claim: str = Field(default="roles", min_length=1)

    # Every gRPC call's deadline.
    grpc_deadline_seconds: float = Field(default=5.0, gt=0, le=60)
    # Largest request body accepted; larger ones answer 413.
    max_body_bytes: int = Field(default=65536, ge=1, le=16 * 1024 * 1024)

    # Where checkout may send the customer back to: success and cancel URLs must start with one of these.
    allowed_redirect_origins: list[str] = Field(
        default_factory=lambda: [
            f"http://127.0.0.1:{devdefaults.GATEWAY_PORT}",
            f"http://localhost:{devdefaults.GATEWAY_PORT}",
        ]
    )
    # Stripe webhook signing secrets (whsec_...): several during a rotation, as a JSON list.
    stripe_webhook_secrets: list[SecretStr] = Field(
        default_factory=lambda: [SecretStr(devdefaults.STRIPE_WEBHOOK_SECRET)], min_length=1
    )
    # How old a signed webhook may be, in seconds (Stripe's default is 300).
    stripe_webhook_tolerance_seconds: int = Field(default=300, ge=1, le=3600)
    # Largest webhook body accepted; Stripe's events are far smaller.
    max_webhook_bytes: int = Field(default=512 * 1024, ge=1024, le=16 * 1024 * 1024)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"

    @field_validator("credits_target", "payments_target", "subscriptions_target")
    @classmethod
    def _host_and_port(cls, target: str) -> str:
        host, sep, port = target.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
            raise ValueError("must be host:port, e.g. 127.0.0.1:50051")
        return target

    @field_validator("allowed_redirect_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
                raise ValueError(f"{origin!r} is not an origin such as https://app.example.com")
        return [origin.rstrip("/") for origin in origins]

    @field_validator("stripe_webhook_secrets")
    @classmethod
    def _webhook_secrets(cls, secrets: list[SecretStr]) -> list[SecretStr]:
        for secret in secrets:
            if not secret.get_secret_value().startswith("whsec_"):
                raise ValueError("each Stripe webhook secret starts with whsec_")
        return secrets

    @field_validator("service_token")
    @classmethod
    def _token_present(cls, token: SecretStr) -> SecretStr:
        if not token.get_secret_value().strip():
            raise ValueError("must not be empty")
        return token

    @model_validator(mode="after")
    def _keys_fit_algorithm(self) -> Self:
        if self.jwt_algorithm == "HS256":
            if self.jwt_secret is None or not self.jwt_secret.get_secret_value():
                raise ValueError("GATEWAY_JWT_SECRET is required with HS256")
        else:
            if not self.jwt_public_key:
                raise ValueError("GATEWAY_JWT_PUBLIC_KEY (PEM) is required with RS256")
            try:
                key = load_pem_public_key(self.jwt_public_key.encode())
            except ValueError as error:
                raise ValueError("GATEWAY_JWT_PUBLIC_KEY is not a PEM public key") from error
            if not isinstance(key, RSAPublicKey):
                raise ValueError("GATEWAY_JWT_PUBLIC_KEY must be an RSA public key for RS256")
        return self

    @model_validator(mode="after")
    def _production_is_safe(self) -> Self:
        if self.environment != "production":
            return self
        secrets = {"GATEWAY_SERVICE_TOKEN": self.service_token.get_secret_value()}
        if self.jwt_algorithm == "HS256" and self.jwt_secret is not None:
            secrets["GATEWAY_JWT_SECRET"] = self.jwt_secret.get_secret_value()
        for n, webhook_secret in enumerate(self.stripe_webhook_secrets):
            secrets[f"GATEWAY_STRIPE_WEBHOOK_SECRETS[{n}]"] = webhook_secret.get_secret_value()
        for name, value in secrets.items():
            if value in devdefaults.PUBLIC_VALUES:
                raise ValueError(f"{name} is a public development default; production needs its own")
            if len(value) < MIN_PRODUCTION_SECRET_LENGTH:
                raise ValueError(f"{name} is shorter than {MIN_PRODUCTION_SECRET_LENGTH} characters")
        return self

    def jwt_key(self) -> str:
        """The key tokens are verified with: the HS256 secret or the RS256 public key (PEM)."""
        if self.jwt_algorithm == "HS256":
            assert self.jwt_secret is not None  # validated
            return self.jwt_secret.get_secret_value()
        assert self.jwt_public_key is not None  # validated
        return self.jwt_public_key
