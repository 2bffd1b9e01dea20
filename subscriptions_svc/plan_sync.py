"""Making Stripe's products and prices match the plan catalog, idempotently, by lookup key.

- one product per plan (id `billing_plan_<plan>`), created once, renamed when the name changes;
- one active price per plan, currency and interval, found by its lookup key
  (`billing_plan_<plan>_<currency>_<interval>`): unchanged when amount and
  interval match; otherwise a new price takes the lookup key over
  (`transfer_lookup_key`) and the old one is retired (Stripe prices are
  immutable), while subscriptions on it keep billing until they change plan;
- a price slot gone from the catalog is retired.

What Stripe holds is written to `plan_prices`, retired prices included, so the
service knows the plan of every price a subscription may still be on. Running
it again changes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import Connection, Engine

from subscriptions_svc.domain import PriceInfo
from subscriptions_svc.plans import Plan, PlanCatalog, PlanPrice
from subscriptions_svc.repository import SubscriptionsRepository
from subscriptions_svc.stripe_provider import StripePrice, SubscriptionProvider
from svckit.db import run_transaction


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.retired or self.renamed)

    def summary(self) -> str:
        return (
            f"{len(self.created)} created, {len(self.retired)} retired, {len(self.renamed)} renamed, "
            f"{len(self.unchanged)} prices unchanged"
        )

    def lines(self) -> list[str]:
        return [
            *(f"created  {item}" for item in self.created),
            *(f"retired  {item}" for item in self.retired),
            *(f"renamed  {item}" for item in self.renamed),
            self.summary(),
        ]


def _matches(found: StripePrice, plan: Plan, price: PlanPrice) -> bool:
    return (
        found.active
        and found.product == plan.stripe_product_id
        and found.currency == price.currency
        and found.interval == price.interval
        and found.unit_amount == price.amount_minor
    )


def _info(stripe_price_id: str, plan: Plan, price: PlanPrice, *, active: bool) -> PriceInfo:
    return PriceInfo(
        stripe_price_id=stripe_price_id,
        plan_id=plan.plan_id,
        family=plan.family,
        currency=price.currency,
        interval=price.interval,
        amount_minor=price.amount_minor,
        credits_per_period=plan.credits_per_period,
        trial_credits=plan.trial_credits,
        active=active,
    )


def sync_plans(
    catalog: PlanCatalog, provider: SubscriptionProvider, engine: Engine, clock: Callable[[], datetime]
) -> SyncReport:
    report = SyncReport()
    for plan in catalog.plans:
        product = provider.product(plan.stripe_product_id)
        if product is None:
            provider.create_product(plan.stripe_product_id, plan.name, idempotency_key=f"plan-{plan.plan_id}-product")
            report.created.append(f"product {plan.stripe_product_id} ({plan.name})")
        elif product.get("name") != plan.name:
            provider.rename_product(plan.stripe_product_id, plan.name)
            report.renamed.append(f"product {plan.stripe_product_id} to {plan.name!r}")

    known = run_transaction(engine, lambda conn: SubscriptionsRepository(conn).all_prices(), read_only=True)
    wanted = {plan.lookup_key(price): (plan, price) for plan in catalog.plans for price in plan.prices}
    keys = sorted(set(wanted) | {key for info, key in known if info.active})
    at_stripe = provider.prices_by_lookup_key(keys)
    keep: dict[str, PriceInfo] = {}
    for key, (plan, price) in sorted(wanted.items()):
        found = at_stripe.get(key)
        if found is not None and _matches(found, plan, price):
            keep[key] = _info(found.id, plan, price, active=True)
            report.unchanged.append(key)
            continue
        replaced = found.id if found is not None else "none"
        digest = hashlib.sha256(f"{key}\0{price.amount_minor}\0{replaced}".encode()).hexdigest()[:32]
        created = provider.create_price(
            product_id=plan.stripe_product_id,
            lookup_key=key,
            currency=price.currency,
            interval=price.interval,
            amount_minor=price.amount_minor,
            metadata={"plan_id": plan.plan_id},
            idempotency_key=f"plan-price-{digest}",
        )
        keep[key] = _info(created.id, plan, price, active=True)
        report.created.append(f"price {created.id} {key} {price.amount_minor} {price.currency}/{price.interval}")
        if found is not None and found.active:
            provider.retire_price(found.id)
            report.retired.append(f"price {found.id} (replaced by {created.id})")
    for key in sorted(set(keys) - set(wanted)):
        gone = at_stripe.get(key)
        if gone is not None and gone.active:
            provider.retire_price(gone.id)
            report.retired.append(f"price {gone.id} ({key} is no longer in the catalog)")

    def record(conn: Connection) -> None:
        repo, now = SubscriptionsRepository(conn), clock()
        current = {info.stripe_price_id for info in keep.values()}
        for info, key in known:
            if info.active and info.stripe_price_id not in current:
                repo.save_price(replace(info, active=False), key, now)
        for key, info in keep.items():
            repo.save_price(info, key, now)

    run_transaction(engine, record)
    return report
