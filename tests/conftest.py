"""Test-wide set-up: find PostgreSQL (loudly), and give tests real databases and real servers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import stripe

from svckit import devdefaults
from svckit.stripe_client import StripeSettings
from tests.support.databases import (
    ADMIN_URL,
    REQUIRE_POSTGRES,
    postgres_database,
    postgres_problem,
    sqlite_database,
)
from tests.support.processes import ServiceProcess, credits_process
from tests.support.stripe_sandbox import SandboxProcess

BANNER = "!" * 100


def pytest_sessionstart(session: pytest.Session) -> None:
    problem = postgres_problem()
    if problem and REQUIRE_POSTGRES:
        pytest.exit(
            f"BILLING_REQUIRE_POSTGRES=1 but PostgreSQL cannot be reached at {ADMIN_URL}: {problem}", returncode=3
        )


def pytest_report_header(config: pytest.Config) -> str:
    problem = postgres_problem()
    if problem is None:
        return f"PostgreSQL: reachable at {ADMIN_URL}"
    return (
        f"{BANNER}\nPostgreSQL: NOT REACHABLE at {ADMIN_URL} ({problem}); tests marked postgres are SKIPPED\n{BANNER}"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problem = postgres_problem()
    if problem is None:
        return
    skip = pytest.mark.skip(reason=f"PostgreSQL not reachable at {ADMIN_URL}: {problem}")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not os.environ.get("STRIPE_TEST_SECRET_KEY"):
        terminalreporter.write_line(
            "Stripe test mode: SKIPPED (set STRIPE_TEST_SECRET_KEY=sk_test_... to run the Stripe adapter tests "
            "against api.stripe.com too); the local Stripe sandbox stood in.",
            yellow=True,
            bold=True,
        )
    problem = postgres_problem()
    if problem is not None:
        terminalreporter.write_line(BANNER, red=True, bold=True)
        terminalreporter.write_line(
            f"PostgreSQL was NOT reachable at {ADMIN_URL}: every test marked postgres was SKIPPED. "
            "Start PostgreSQL or set BILLING_TEST_POSTGRES_URL; CI sets BILLING_REQUIRE_POSTGRES=1.",
            red=True,
            bold=True,
        )
        terminalreporter.write_line(BANNER, red=True, bold=True)


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (SQLAlchemy URL)."""
    with postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test using it runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield sqlite_database(tmp_path)
    else:
        with postgres_database() as url:
            yield url


@pytest.fixture(scope="session")
def credits_server_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One Credits server on its own PostgreSQL database for the session; tests use fresh user ids."""
    if postgres_problem() is not None:
        pytest.skip(f"PostgreSQL not reachable at {ADMIN_URL}")
    with postgres_database("billing_credits") as url:
        server = credits_process(url, tmp_path_factory.mktemp("credits"))
        server.migrate()
        server.start()
        try:
            yield server
        finally:
            status = server.terminate()
            assert status == 0, f"credits server exited with {status}:\n{server.logs()}"


STRIPE_TEST_KEY = os.environ.get("STRIPE_TEST_SECRET_KEY", "")
NO_STRIPE_KEY = "STRIPE_TEST_SECRET_KEY is not set: the run against real Stripe test mode is SKIPPED"


@pytest.fixture(
    params=[
        "sandbox",
        pytest.param("stripe-test-mode", marks=pytest.mark.skipif(not STRIPE_TEST_KEY, reason=NO_STRIPE_KEY)),
    ]
)
def stripe_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StripeSettings]:
    """Each test using it runs against a sandbox process, and against Stripe's test mode when a key is given."""
    if request.param == "sandbox":
        sandbox: SandboxProcess | None = SandboxProcess(tmp_path).start()
        key, base = devdefaults.STRIPE_SANDBOX_KEY, sandbox.url  # type: ignore[union-attr]
    else:
        assert STRIPE_TEST_KEY.startswith("sk_test_"), "only a test-mode key may be used here"
        sandbox, key, base = None, STRIPE_TEST_KEY, "https://api.stripe.com"
    try:
        yield StripeSettings(key, base, stripe.api_version, max_network_retries=1, timeout_seconds=30)
    finally:
        if sandbox is not None:
            assert sandbox.terminate() == 0
