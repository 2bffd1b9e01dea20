"""Subscriptions settings: SUBSCRIPTIONS_* environment variables (see svckit.settings for the shared ones)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from svckit import devdefaults
from svckit.settings import ServiceSettings


class SubscriptionsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SUBSCRIPTIONS_", extra="ignore", frozen=True)

    database_url: str = "sqlite:///var/subscriptions.db"
    grpc_port: int = Field(default=devdefaults.SUBSCRIPTIONS_PORT, ge=0, le=65535)
