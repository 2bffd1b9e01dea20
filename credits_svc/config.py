"""Credits settings: CREDITS_* environment variables (see svckit.settings for the shared ones)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from svckit import devdefaults
from svckit.settings import ServiceSettings


class CreditsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CREDITS_", extra="ignore", frozen=True)

    database_url: str = "sqlite:///var/credits.db"
    grpc_port: int = Field(default=devdefaults.CREDITS_PORT, ge=0, le=65535)
    # How often the hourly credit totals are brought up to date (credits_svc.rollup).
    totals_rollup_seconds: float = Field(default=60.0, gt=0)
