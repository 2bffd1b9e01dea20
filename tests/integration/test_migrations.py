"""Each service's migrations build exactly the schema its models describe, and servers refuse a stale schema."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from credits_svc.bootstrap import MIGRATIONS as CREDITS_MIGRATIONS
from credits_svc.config import CreditsSettings
from credits_svc.models import metadata as credits_metadata
from payments_svc.bootstrap import MIGRATIONS as PAYMENTS_MIGRATIONS
from payments_svc.models import metadata as payments_metadata
from subscriptions_svc.bootstrap import MIGRATIONS as SUBSCRIPTIONS_MIGRATIONS
from subscriptions_svc.models import metadata as subscriptions_metadata
from svckit.bootstrap import SchemaOutOfDate, open_database
from svckit.db import make_engine
from svckit.migrations import pending, upgrade

SERVICES = {
    "credits": (CREDITS_MIGRATIONS, credits_metadata),
    "payments": (PAYMENTS_MIGRATIONS, payments_metadata),
    "subscriptions": (SUBSCRIPTIONS_MIGRATIONS, subscriptions_metadata),
}


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_migrations_match_the_models(any_database: str, service: str) -> None:
    migrations, metadata = SERVICES[service]
    upgrade(any_database, migrations)
    upgrade(any_database, migrations)  # a second run changes nothing
    engine = make_engine(any_database, pool_size=1)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = compare_metadata(context, metadata)
        assert pending(engine, migrations)[0] == pending(engine, migrations)[1]
    finally:
        engine.dispose()
    assert differences == []


def test_a_server_refuses_an_unmigrated_database(any_database: str) -> None:
    settings = CreditsSettings(database_url=any_database)
    with pytest.raises(SchemaOutOfDate, match="migrate"):
        open_database(settings, CREDITS_MIGRATIONS, "credits")
