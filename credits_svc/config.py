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
