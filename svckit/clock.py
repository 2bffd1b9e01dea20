"""The time every service reads: timezone-aware UTC. Services take a clock so tests can fix it."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)
