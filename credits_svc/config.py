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
    # How often expired lots move to the expiry account and holds past their timeout are
    # released (credits_svc.expiry; spends sweep their own wallet's expired lots anyway).
    expiry_seconds: float = Field(default=60.0, gt=0)
    # How often each replica proves the whole ledger for the metric billing_ledger_check_balanced
    # (a full read of the ledger, like `python -m credits_svc check-ledger`); 0 turns it off.
    ledger_check_seconds: float = Field(default=3600.0, ge=0)
