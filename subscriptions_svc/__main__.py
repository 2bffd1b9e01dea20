"""python -m subscriptions_svc [serve | migrate | sync-plans | seal | check-audit-chain]"""

from __future__ import annotations

import sys

from subscriptions_svc.bootstrap import MIGRATIONS, build
from subscriptions_svc.config import SubscriptionsSettings
from subscriptions_svc.models import AUDIT_CHAIN
from subscriptions_svc.plan_sync import sync_plans
from subscriptions_svc.plans import InvalidPlans, load_plans
from subscriptions_svc.stripe_provider import StripeSubscriptionProvider
from svckit import cli
from svckit.audit_chain import audit_chain_commands
from svckit.bootstrap import open_database
from svckit.clock import utc_now
from svckit.errors import BillingError


def sync(settings: SubscriptionsSettings) -> int:
    """Make Stripe's products and prices match the plan catalog; print what changed."""
    try:
        catalog = load_plans(settings.plans_file)
    except InvalidPlans as error:
        print(f"cannot sync: {error}", file=sys.stderr)
        return 2
    engine = open_database(settings, MIGRATIONS, "subscriptions")
    try:
        report = sync_plans(catalog, StripeSubscriptionProvider(settings.stripe()), engine, utc_now)
    except BillingError as error:
        print(f"plan sync failed: {error}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    for line in report.lines():
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(
        cli.main(
            name="subscriptions",
            settings_type=SubscriptionsSettings,
            build=build,
            migrations=MIGRATIONS,
            extra={
                "sync-plans": ("make Stripe's products and prices match the plan catalog", sync),
                **audit_chain_commands("subscriptions", MIGRATIONS, AUDIT_CHAIN),
            },
        )
    )
