"""Services refuse to start on a configuration they cannot serve, and say why."""

from __future__ import annotations

from pathlib import Path

from tests.support.databases import sqlite_database
from tests.support.processes import run_module


def test_payments_refuses_an_invalid_catalog(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text('default_currency = "usd"\n[[packages]]\nid = "Bad Id"\nname = ""\ncredits = 0\nprices = {}\n')
    env = {"PAYMENTS_DATABASE_URL": sqlite_database(tmp_path), "PAYMENTS_CATALOG_FILE": str(catalog)}
    assert run_module("payments_svc", "migrate", env=env).returncode == 0
    done = run_module("payments_svc", "serve", env=env)
    assert done.returncode == 2
    for problem in ("lower-case letters", "name is empty", "credits must be", "no prices"):
        assert problem in done.stderr


def test_a_service_refuses_a_database_it_has_not_migrated(tmp_path: Path) -> None:
    done = run_module("credits_svc", "serve", env={"CREDITS_DATABASE_URL": sqlite_database(tmp_path)})
    assert done.returncode == 2
    assert "run `python -m credits_svc migrate` first" in done.stderr


def test_a_live_stripe_key_goes_nowhere_but_stripe(tmp_path: Path) -> None:
    env = {
        "PAYMENTS_DATABASE_URL": sqlite_database(tmp_path),
        "PAYMENTS_STRIPE_SECRET_KEY": "sk_live_" + "x" * 24,
        "PAYMENTS_STRIPE_API_BASE": "http://127.0.0.1:12111",
    }
    done = run_module("payments_svc", "serve", env=env)
    assert done.returncode == 2
    assert "PAYMENTS_" in done.stderr
    assert "live Stripe key" in done.stderr
    assert "PAYMENTS_STRIPE_API_BASE" in done.stderr
    assert "sk_live_" not in done.stderr
