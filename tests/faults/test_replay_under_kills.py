"""Thousands of real Stripe webhooks, duplicated and reordered, while every process is killed in turn.

The sandbox makes the events the way Stripe would: purchases through Checkout and
the hosted page, refunds through Stripe's API, subscriptions bought through
Checkout, renewed by advancing their test clocks, changed (upgraded, canceled at
period end) through Stripe's API. Deliveries are held while the story is lived,
then sent shuffled (seeded), and every event once more in reverse order from
several threads, while a killer thread SIGKILLs Credits, Payments, Subscriptions
and the gateway in turn (seeded) and starts them again. Whatever the sandbox gave
up on is redelivered, as Stripe retries for days. Then:

- every credit owed (a purchase's package, a paid period's plan credits, a refund's
  reversal) is in the ledger exactly once, and nothing else is;
- every event the gateway answered 2xx for is in its owner's inbox;
- the ledger balances (the Credits check, directly and through the admin endpoint).
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from payments_svc.catalog import DEFAULT_CATALOG, load_catalog
from subscriptions_svc.domain import PERIOD_REASONS
from subscriptions_svc.plans import DEFAULT_PLANS, load_plans
from svckit.db import make_engine
from tests.support.event_replay import (
    Killer,
    acknowledged,
    attempts,
    event_owners,
    ledger_entries,
    outbox_pending,
    stored_event_ids,
    wait_idle,
)
from tests.support.ledger import check_ledger
from tests.support.purchase_stack import PurchaseStack, pay_on_hosted_page, purchase_stack, wait_for
from tests.support.subscriptions import SubscriptionDriver

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(900)]

# Deliveries in the full run (every distinct event is delivered twice, plus the redeliveries of what was given up).
TARGET_DELIVERIES = int(os.environ.get("BILLING_FAULTS_DELIVERIES", "2000"))
SEED = int(os.environ.get("BILLING_FAULTS_SEED", str(random.SystemRandom().randrange(1 << 30))))
GOOD_CARD = "4242 4242 4242 4242"
PACKAGES = {package.package_id: package.credits for package in load_catalog(DEFAULT_CATALOG).packages}
PLANS = load_plans(DEFAULT_PLANS)
Entry = tuple[str, str, int]  # (kind, reference, amount) of a ledger transfer


@dataclass
class Story:
    users: list[str] = field(default_factory=list)
    expected: dict[str, Counter[Entry]] = field(default_factory=dict)
    purchases: int = 0
    refunds: int = 0
    subscriptions: int = 0
    renewals: int = 0
    changes: int = 0


def _held(stack: PurchaseStack) -> int:
    return int(stack.sandbox.control("get", "/webhooks")["held"])


def _advance_past_period(stack: PurchaseStack, clock: str, subscription_id: str) -> None:
    sub = stack.stripe.v1.subscriptions.retrieve(subscription_id)
    period_end = int(sub["items"]["data"][0]["current_period_end"])
    clocks = stack.stripe.v1.test_helpers.test_clocks
    clocks.advance(clock, params={"frozen_time": period_end + 3600})
    wait_for(lambda: clocks.retrieve(clock).status == "ready", f"test clock {clock} ready")


def live_one_customer(stack: PurchaseStack, driver: SubscriptionDriver, rng: random.Random, story: Story) -> None:
    """One user: one or two purchases (the first one refunded every third user), then a starter subscription
    renewed, changed (upgraded to pro, canceled at period end, or left) and renewed again."""
    user = f"replay-{uuid.uuid4().hex[:10]}"
    index = len(story.users)
    story.users.append(user)
    expected: Counter[Entry] = Counter()
    for purchase in range(rng.choice((1, 2))):
        package = rng.choice(sorted(PACKAGES))
        bought = stack.buy(user, package)
        assert pay_on_hosted_page(stack, bought["url"], GOOD_CARD).paid
        story.purchases += 1
        credits = PACKAGES[package]
        expected[("grant", f"payment:{bought['payment_id']}", credits)] += 1
        if purchase == 0 and index % 3 == 0:
            session = stack.stripe.v1.checkout.sessions.retrieve(bought["checkout_session_id"])
            stack.stripe.v1.refunds.create(params={"payment_intent": str(session.payment_intent)})
            story.refunds += 1
            expected[("reversal", f"refund:{bought['payment_id']}:{credits}", credits)] += 1

    started = driver.start_checkout(user, "starter")
    assert pay_on_hosted_page(stack, started["url"], GOOD_CARD).paid
    story.subscriptions += 1
    session = stack.stripe.v1.checkout.sessions.retrieve(started["checkout_session_id"])
    stripe_sub = stack.stripe.v1.subscriptions.retrieve(str(session.subscription))
    clock = str(stack.stripe.v1.customers.retrieve(str(stripe_sub.customer)).test_clock)
    _advance_past_period(stack, clock, stripe_sub.id)
    story.renewals += 1
    change = index % 3
    if change == 0:
        pro = stack.stripe.v1.prices.list(params={"lookup_keys": ["billing_plan_pro_usd_month"]}).data[0]
        item = stripe_sub["items"]["data"][0]["id"]
        stack.stripe.v1.subscriptions.update(
            stripe_sub.id, params={"items": [{"id": item, "price": pro.id}], "proration_behavior": "none"}
        )
        story.changes += 1
    elif change == 1:
        stack.stripe.v1.subscriptions.update(stripe_sub.id, params={"cancel_at_period_end": True})
        story.changes += 1
    _advance_past_period(stack, clock, stripe_sub.id)
    story.renewals += 1

    # What Stripe billed: each paid invoice that opens a period grants its plan's credits per unit.
    invoices = stack.stripe.v1.invoices.list(params={"subscription": stripe_sub.id, "limit": 100})
    for invoice in invoices.data:
        raw = invoice.to_dict()
        if raw["status"] != "paid" or raw["billing_reason"] not in PERIOD_REASONS:
            continue
        line = raw["lines"]["data"][0]
        product = str(line["pricing"]["price_details"]["product"])
        plan = PLANS.plan(product.removeprefix("billing_plan_"))
        assert plan is not None, product
        expected[("grant", f"invoice:{raw['id']}", plan.credits_per_period * int(line["quantity"] or 1))] += 1
    story.expected[user] = expected


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[PurchaseStack]:
    with purchase_stack(tmp_path, subscriptions=True) as running:
        yield running


def test_replayed_events_under_sigkill_grant_exactly_once(
    stack: PurchaseStack, capsys: pytest.CaptureFixture[str]
) -> None:
    print(f"seed={SEED} (BILLING_FAULTS_SEED={SEED} replays it)")
    rng = random.Random(SEED)
    began = time.monotonic()
    driver = SubscriptionDriver(stack)
    story = Story()

    # 1. Live the story with every delivery held, until it has made enough events.
    stack.control("webhooks/pause")
    while _held(stack) * 2 < TARGET_DELIVERIES:
        live_one_customer(stack, driver, rng, story)
    distinct = _held(stack)
    lived = time.monotonic()

    # 2. Deliver: shuffled, then every event again in reverse order from 4 threads, under SIGKILLs.
    assert stack.subscriptions is not None
    killer = Killer(
        [
            ("credits", stack.credits),
            ("payments", stack.payments),
            ("subscriptions", stack.subscriptions),
            ("gateway", stack.gateway),
        ],
        random.Random(rng.random()),
    ).start()
    try:
        flushed = stack.control("webhooks/flush", order="shuffle", seed=str(rng.randrange(1 << 30)), wait="false")
        event_ids = [delivery["event"] for delivery in flushed["deliveries"]]
        assert len(event_ids) == distinct == len(set(event_ids))
        wait_idle(stack, 300)

        def redeliver(event_id: str) -> None:
            stack.sandbox.control("post", f"/events/{event_id}/redeliver", wait="true")

        newest_first = list(event_owners(stack, event_ids))  # Stripe lists events newest first
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(redeliver, newest_first))
    finally:
        killer.stop()
    assert not killer.errors, killer.errors
    stack.control("webhooks/resume")
    deliveries = 2 * distinct

    # 3. As Stripe retries for days: redeliver whatever was given up until each event is acknowledged.
    redelivered = 0
    for _ in range(5):
        given_up = set(event_ids) - acknowledged(attempts(stack))
        if not given_up:
            break
        for event_id in sorted(given_up):
            stack.sandbox.control("post", f"/events/{event_id}/redeliver", wait="true")
            redelivered += 1
    rows = attempts(stack)
    assert len(rows) < 10_000, "the sandbox forgot attempts: the check below would be incomplete"
    acked = acknowledged(rows) & set(event_ids)  # (the catalog's events were delivered before the story)
    assert acked == set(event_ids), f"never acknowledged: {sorted(set(event_ids) - acked)[:10]}"
    deliveries += redelivered
    delivered = time.monotonic()

    # 4. Nothing acknowledged is lost: each owned event is in its owner's inbox.
    owners = event_owners(stack, event_ids)
    assert stack.subscriptions_db is not None
    stored = {
        "payments": stored_event_ids(stack.payments_db),
        "subscriptions": stored_event_ids(stack.subscriptions_db),
    }
    lost = [event_id for event_id in acked if (o := owners[event_id]) is not None and event_id not in stored[o]]
    assert not lost, f"acknowledged but not recorded: {lost[:10]}"
    owned = Counter(o for o in owners.values())

    # 5. Every credit owed exactly once, nothing more.
    wait_for(lambda: outbox_pending(stack.payments_db) == 0, "the Payments outbox to be sent", seconds=120)
    wait_for(lambda: outbox_pending(stack.subscriptions_db or "") == 0, "the Subscriptions outbox", seconds=120)
    found = ledger_entries(stack.credits_db, story.users)
    # Refunds reverse what is left of a grant; the refund's reversal is sent after the grant lands (polled).
    wait_for(lambda: ledger_entries(stack.credits_db, story.users) == story.expected, "the ledger", seconds=60)
    found = ledger_entries(stack.credits_db, story.users)
    wrong = {user: (found[user], story.expected[user]) for user in story.users if found[user] != story.expected[user]}
    assert not wrong, wrong
    engine = make_engine(stack.credits_db, pool_size=1)
    try:
        report = check_ledger(engine)
    finally:
        engine.dispose()
    assert report.balanced, report
    with httpx.Client(base_url=stack.gateway.url, timeout=30) as http:
        check = http.get("/api/admin/credits/ledger-check", headers=stack.as_user("auditor", ("user", "admin")))
    assert check.status_code == 200, check.text
    assert check.json()["balanced"], check.text
    driver.close()

    with capsys.disabled():
        print(
            f"\n[replay] seed={SEED}: {len(story.users)} users, {story.purchases} purchases, {story.refunds} refunds, "
            f"{story.subscriptions} subscriptions, {story.renewals} renewals, {story.changes} changes; "
            f"{distinct} distinct events ({owned['payments']} to Payments, {owned['subscriptions']} to Subscriptions, "
            f"{owned[None]} to no one), {deliveries} deliveries ({redelivered} redeliveries of given-up events), "
            f"{len(rows)} attempts ({sum(not r['succeeded'] for r in rows)} failed); kills {dict(killer.kills)} "
            f"({killer.total} kills and restarts); lived {lived - began:.1f}s, delivered {delivered - lived:.1f}s, "
            f"total {time.monotonic() - began:.1f}s"
        )
