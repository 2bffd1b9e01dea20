"""The plan sync against the local sandbox, and against real Stripe test mode when a key is given.

Set STRIPE_TEST_SECRET_KEY=sk_test_... to run it against api.stripe.com as well
(each run uses plan ids of its own); without it that run is SKIPPED and the end
of the test run says so.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import stripe

from subscriptions_svc.models import metadata
from subscriptions_svc.plan_sync import sync_plans
from subscriptions_svc.plans import load_plans
from subscriptions_svc.repository import SubscriptionsRepository
from subscriptions_svc.stripe_provider import StripeSubscriptionProvider
from svckit.db import make_engine, run_transaction
from svckit.stripe_client import StripeSettings

pytestmark = pytest.mark.postgres


def catalog_file(path: Path, plan: str, *, monthly: int, name: str = "Basic", with_eur: bool = True) -> Path:
    eur = ', { currency = "eur", interval = "month", amount = 800 }' if with_eur else ""
    path.write_text(
        'default_currency = "usd"\n[[plans]]\n'
        f'id = "{plan}"\nfamily = "{plan}"\nname = "{name}"\ncredits_per_period = 100\n'
        f'prices = [{{ currency = "usd", interval = "month", amount = {monthly} }}{eur}]\n'
    )
    return path


def now() -> datetime:
    return datetime.now(UTC)


def test_sync_creates_once_replaces_changed_prices_and_retires_removed_ones(
    stripe_settings: StripeSettings, pg_database: str, tmp_path: Path
) -> None:
    engine = make_engine(pg_database, pool_size=2)
    metadata.create_all(engine)
    provider = StripeSubscriptionProvider(stripe_settings)
    client = stripe.StripeClient(stripe_settings.secret_key, base_addresses={"api": stripe_settings.api_base})
    plan = f"t{uuid.uuid4().hex[:10]}"
    path = tmp_path / "plans.toml"
    key = f"billing_plan_{plan}_usd_month"

    first = sync_plans(load_plans(catalog_file(path, plan, monthly=900)), provider, engine, now)
    assert len(first.created) == 3  # the product and two prices
    again = sync_plans(load_plans(path), provider, engine, now)
    assert not again.changed, again.lines()
    assert len(again.unchanged) == 2

    original = client.v1.prices.list(params={"lookup_keys": [key]}).data
    assert [p.unit_amount for p in original] == [900]

    # A changed amount: a new price takes the lookup key over; the old one is retired, and still known.
    changed = sync_plans(load_plans(catalog_file(path, plan, monthly=1000, name="Basic+")), provider, engine, now)
    assert len(changed.created) == 1
    assert len(changed.retired) == 1
    assert len(changed.renamed) == 1
    current = client.v1.prices.list(params={"lookup_keys": [key]}).data
    assert [p.unit_amount for p in current] == [1000]
    assert client.v1.prices.retrieve(original[0].id).active is False
    assert client.v1.products.retrieve(f"billing_plan_{plan}").name == "Basic+"

    # A price slot gone from the catalog is retired.
    removed = sync_plans(
        load_plans(catalog_file(path, plan, monthly=1000, name="Basic+", with_eur=False)), provider, engine, now
    )
    assert len(removed.retired) == 1
    eur = client.v1.prices.list(params={"lookup_keys": [f"billing_plan_{plan}_eur_month"]}).data
    assert [p.active for p in eur] == [False]

    stored = run_transaction(engine, lambda conn: SubscriptionsRepository(conn).all_prices())
    known = {info.stripe_price_id: info.active for info, _ in stored}
    assert known[original[0].id] is False  # retired, still mapped to its plan
    assert known[current[0].id] is True
    assert sum(known.values()) == 1
    assert not sync_plans(load_plans(path), provider, engine, now).changed
    engine.dispose()
