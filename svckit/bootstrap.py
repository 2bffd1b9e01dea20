"""Start-up steps every service shares."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine

from svckit.db import make_engine
from svckit.idempotency import IdempotencyStore
from svckit.migrations import pending
from svckit.server import PeriodicTask
from svckit.settings import ServiceSettings


class SchemaOutOfDate(RuntimeError):
    pass


def open_database(settings: ServiceSettings, migrations: Path, name: str) -> Engine:
    """An engine for the service's database, refusing to start on a schema that is not migrated."""
    engine = make_engine(
        settings.database_url,
        pool_size=settings.worker_threads,
        pool_timeout=settings.db_pool_timeout_seconds,
        lock_timeout_ms=settings.db_lock_timeout_ms,
        statement_timeout_ms=settings.db_statement_timeout_ms,
        application_name=f"billing-{name}",
    )
    current, head = pending(engine, migrations)
    if current != head:
        engine.dispose()
        raise SchemaOutOfDate(
            f"{name} database is at migration {current or 'none'}, code expects {head}: "
            f"run `python -m {name}_svc migrate` first"
        )
    return engine


def idempotency_purge(store: IdempotencyStore, engine: Engine, settings: ServiceSettings) -> PeriodicTask:
    """Hourly removal of idempotency records past the retention period."""
    retention = timedelta(hours=settings.idempotency_retention_hours)
    return PeriodicTask("purge idempotency records", 3600, lambda: store.purge(engine, retention))
