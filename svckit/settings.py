"""Settings every service shares, read from the environment and validated at start-up.

Each service subclasses `ServiceSettings` with its own prefix (CREDITS_, PAYMENTS_,
SUBSCRIPTIONS_), so `CREDITS_DATABASE_URL` configures the Credits service.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from svckit import devdefaults

MIN_PRODUCTION_SECRET_LENGTH = 32


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite:///var/service.db"
    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    # How long in-flight calls may take to finish after SIGTERM.
    grace_period_seconds: float = Field(default=10.0, gt=0, le=300)
    # Threads running database work; the pool gets the same number of connections.
    worker_threads: int = Field(default=16, ge=1, le=256)
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    db_lock_timeout_ms: int = Field(default=5000, ge=0)
    db_statement_timeout_ms: int = Field(default=15000, ge=0)
    # Caller name -> bearer token, as JSON: {"gateway": "...", "payments": "..."}.
    service_tokens: dict[str, SecretStr] = Field(
        default_factory=lambda: {name: SecretStr(token) for name, token in devdefaults.SERVICE_TOKENS.items()}
    )
    idempotency_retention_hours: int = Field(default=48, ge=24)
    # How often each replica seals new rows into the hash chains (svckit.chain); replicas take turns.
    seal_seconds: float = Field(default=60.0, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    # Log one line per call (method, status, duration); off for benchmarks.
    access_log: bool = True
    # Written with {"port": N, "metrics_port": M} once the server is serving; lets tests bind to port 0.
    ready_file: Path | None = None
    # Prometheus `/metrics` over HTTP on a port of its own (on grpc_host); 0 picks a free port, logged
    # and written to the ready file: deployments set a fixed one (deploy/k8s: 9090).
    metrics_enabled: bool = True
    metrics_port: int = Field(default=0, ge=0, le=65535)

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: str) -> str:
        if url.startswith("postgres://"):
            url = "postgresql://" + url.removeprefix("postgres://")
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        if not (url.startswith("sqlite:///") or url.startswith("postgresql+psycopg://")):
            raise ValueError("must be sqlite:///<path> or postgresql://... (psycopg 3)")
        return url

    @field_validator("service_tokens")
    @classmethod
    def _some_callers(cls, tokens: dict[str, SecretStr]) -> dict[str, SecretStr]:
        if not tokens:
            raise ValueError("at least one caller must be allowed")
        for name, token in tokens.items():
            if not token.get_secret_value():
                raise ValueError(f"token for {name!r} is empty")
        return tokens

    @model_validator(mode="after")
    def _production_is_safe(self) -> Self:
        if self.environment != "production":
            return self
        for name, token in self.service_tokens.items():
            value = token.get_secret_value()
            if value in devdefaults.PUBLIC_VALUES or len(value) < MIN_PRODUCTION_SECRET_LENGTH:
                raise ValueError(
                    f"service token for {name!r} is a development default or shorter than "
                    f"{MIN_PRODUCTION_SECRET_LENGTH} characters"
                )
        if self.database_url.startswith("sqlite"):
            raise ValueError("production needs PostgreSQL, not SQLite")
        return self

    def plain_tokens(self) -> dict[str, str]:
        return {name: token.get_secret_value() for name, token in self.service_tokens.items()}


def describe_errors(error: ValidationError, prefix: str) -> str:
    """One line per invalid setting, naming its variable; never the value (it may be a secret)."""
    lines = []
    for problem in error.errors(include_input=False, include_url=False):
        name = "_".join(str(part) for part in problem["loc"]).upper()
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"  {prefix}{name}: {message}" if name else f"  {message}")
    return "\n".join(lines)
