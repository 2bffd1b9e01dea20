"""Throwaway databases for tests: a fresh PostgreSQL database or SQLite file per use.

PostgreSQL is found at BILLING_TEST_POSTGRES_URL (default: the local server,
user postgres, trust auth). Tests that need it are marked `postgres`; when it
cannot be reached they are skipped and the run says so loudly, unless
BILLING_REQUIRE_POSTGRES=1 (CI), which makes the whole run fail instead.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

ADMIN_URL = os.environ.get("BILLING_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_POSTGRES = os.environ.get("BILLING_REQUIRE_POSTGRES", "") == "1"


@functools.cache
def postgres_problem() -> str | None:
    """None when PostgreSQL answers; otherwise why not."""
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        return f"{type(error).__name__}: {error}".strip()
    return None


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


def sqlalchemy_url(libpq_url: str) -> str:
    return "postgresql+psycopg://" + libpq_url.removeprefix("postgresql://")


@contextmanager
def postgres_database(prefix: str = "billing_test") -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards; yields its SQLAlchemy URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield sqlalchemy_url(_with_database(ADMIN_URL, name))
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def sqlite_database(directory: Path, name: str = "test") -> str:
    return f"sqlite:///{directory / f'{name}-{uuid.uuid4().hex[:8]}.db'}"
