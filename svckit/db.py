"""Database engines and transactions for SQLite (local default) and PostgreSQL (psycopg 3).

Every write transaction runs through `run_transaction`, which retries the
transient failures a database reports under contention (deadlock, serialization
failure, a busy SQLite file) and turns the rest into the errors callers see:
a database that cannot be reached is UNAVAILABLE, a lock wait that times out is
ABORTED.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, DateTime, Dialect, Engine, Table, TypeDecorator, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from svckit.errors import Aborted, Reason, Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

# Constraint names that migrations can rely on, the same on both databases.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# PostgreSQL SQLSTATEs worth retrying: serialization_failure, deadlock_detected.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
LOCK_NOT_AVAILABLE = "55P03"
QUERY_CANCELED = "57014"


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on both databases (SQLite keeps no zone; this restores it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store timezone-aware UTC times only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(
    url: str,
    *,
    pool_size: int = 5,
    pool_timeout: float = 5.0,
    lock_timeout_ms: int = 5000,
    statement_timeout_ms: int = 15000,
    application_name: str = "billing",
) -> Engine:
    if is_sqlite(url):
        return _sqlite_engine(url, pool_size=pool_size, busy_timeout_ms=max(lock_timeout_ms, 1000))
    options = f"-c lock_timeout={lock_timeout_ms} -c statement_timeout={statement_timeout_ms}"
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=pool_timeout,
        pool_recycle=1800,
        connect_args={"options": options, "connect_timeout": 5, "application_name": application_name},
    )


def _sqlite_engine(url: str, *, pool_size: int, busy_timeout_ms: int) -> Engine:
    path = url.removeprefix("sqlite:///")
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event below issue BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front, so two transactions never both read
        # and then fail to upgrade; readers keep the snapshot a deferred BEGIN gives.
        mode = "DEFERRED" if conn.get_execution_options().get("read_only") else "IMMEDIATE"
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def dialect_insert_for(dialect: str, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that supports ON CONFLICT on both databases."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _sqlstate(error: DBAPIError) -> str | None:
    return getattr(error.orig, "sqlstate", None)


def _is_retryable(error: DBAPIError) -> bool:
    if _sqlstate(error) in RETRYABLE_SQLSTATES:
        return True
    return isinstance(error, OperationalError) and "database is locked" in str(error.orig)


def translate(error: Exception) -> Exception:
    """The error a caller should see for a database failure."""
    if isinstance(error, PoolTimeout):
        return Unavailable("no database connection free in time; retry")
    if isinstance(error, DBAPIError):
        state = _sqlstate(error)
        if state == LOCK_NOT_AVAILABLE or state in RETRYABLE_SQLSTATES or _is_retryable(error):
            return Aborted("the resource was busy with a concurrent change; retry", reason=Reason.CONCURRENT_UPDATE)
        if state == QUERY_CANCELED:
            return Unavailable("the database took too long to answer; retry")
        if isinstance(error, OperationalError) or error.connection_invalidated:
            return Unavailable("the database is unavailable; retry")
    return error


def run_transaction(
    engine: Engine,
    work: Callable[[Connection], T],
    *,
    read_only: bool = False,
    snapshot: bool = False,
    attempts: int = 4,
) -> T:
    """Run `work` in one transaction: committed if it returns, rolled back if it raises.

    `snapshot` gives every statement of `work` the same view of the database
    (REPEATABLE READ on PostgreSQL; any SQLite transaction already is one).
    """
    for attempt in range(1, attempts + 1):
        try:
            with engine.connect() as conn:
                if read_only:
                    conn = conn.execution_options(read_only=True)
                if snapshot and conn.dialect.name == "postgresql":
                    conn = conn.execution_options(isolation_level="REPEATABLE READ")
                with conn.begin():
                    return work(conn)
        except DBAPIError as error:
            if attempt < attempts and _is_retryable(error):
                log.info("retrying transaction after transient failure", extra={"attempt": attempt})
                time.sleep(random.uniform(0, 0.005 * 2**attempt))
                continue
            translated = translate(error)
            if translated is error:
                raise
            raise translated from error
        except PoolTimeout as error:
            raise translate(error) from error
    raise AssertionError("unreachable")
