"""Stripe delivers at least once and in no fixed order: 200 permutations (with duplicates) of one subscription's
whole event stream, each applied from a fresh start, always end in Stripe's final state.

The stream is real: a subscription bought through Checkout in the sandbox, then
renewed, changed, paused, resumed, renewed again and canceled at period end, on
a test clock. The Subscriptions event handler runs in this process on
PostgreSQL against the sandbox process; before each permutation its record of
the subscription is put back as it was before any event, and its inbox,
idempotency records, outbox and grants are emptied.
"""

from __future__ import annotations

import dataclasses
import json
import random
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import stripe
from sqlalchemy import Engine, delete, text

from subscriptions_svc import domain
from subscriptions_svc.bootstrap import MIGRATIONS
from subscriptions_svc.event_handler import GRANT, NOTIFY, StripeEventHandler
from subscriptions_svc.models import idempotency_records, outbox_messages, period_grants, stripe_events
from subscriptions_svc.plan_sync import sync_plans
from subscriptions_svc.plans import DEFAULT_PLANS, load_plans
from subscriptions_svc.repository import SubscriptionsRepository
from subscriptions_svc.service import SubscriptionsService
from subscriptions_svc.stripe_events import facts_from_event
from subscriptions_svc.stripe_provider import StripeSubscriptionProvider
from svckit.actors import Actor, ActorKind
from svckit.clock import utc_now
from svckit.db import make_engine, run_transaction
from svckit.errors import Aborted
from svckit.idempotency import IdempotencyStore, IdempotentCall
from svckit.inbox import Inbox
from svckit.migrations import upgrade
from svckit.outbox import Outbox
from svckit.stripe_client import StripeSettings
from tests.support.databases import postgres_database
from tests.support.purchase_stack import SANDBOX_KEY
from tests.support.stripe_sandbox import SandboxProcess

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(900)]
PERMUTATIONS = 200
DAY = 24 * 60 * 60
USER = "order-user"
WEBHOOK = Actor(ActorKind.SERVICE, "stripe-webhook")


class NoPayments:
    def ensure(self, user_id: str) -> str:
        raise AssertionError("the customer is recorded up front")


@dataclasses.dataclass
class Story:
    engine: Engine
    handler: StripeEventHandler
    client: stripe.StripeClient
    subscription_id: str
    stripe_subscription_id: str
    before_events: dict[str, Any]
    events: list[dict[str, Any]]


def advance(client: stripe.StripeClient, clock: str, to: int) -> None:
    client.v1.test_helpers.test_clocks.advance(clock, params={"frozen_time": to})
    for _ in range(200):
        if client.v1.test_helpers.test_clocks.retrieve(clock).status == "ready":
            return
    raise AssertionError("the test clock did not finish advancing")


def period_end(client: stripe.StripeClient, stripe_id: str) -> int:
    return int(client.v1.subscriptions.retrieve(stripe_id)["items"]["data"][0]["current_period_end"])


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    workdir: Path = tmp_path_factory.mktemp("order")
    with postgres_database("billing_order") as database_url:
        sandbox = SandboxProcess(workdir).start()
        try:
            lived = _live_a_subscription(sandbox, database_url)
            yield lived
            lived.engine.dispose()
        finally:
            sandbox.terminate()


def _live_a_subscription(sandbox: SandboxProcess, database_url: str) -> Story:
    upgrade(database_url, MIGRATIONS)
    engine = make_engine(database_url, pool_size=8)
    catalog = load_plans(DEFAULT_PLANS)
    provider = StripeSubscriptionProvider(StripeSettings(SANDBOX_KEY, sandbox.url, stripe.api_version, 0, 30))
    sync_plans(catalog, provider, engine, utc_now)
    client = sandbox.client()
    start = int(datetime.now(UTC).timestamp())
    clock = str(client.v1.test_helpers.test_clocks.create(params={"frozen_time": start}).id)
    customer = str(client.v1.customers.create(params={"email": "order@example.com", "test_clock": clock}).id)
    run_transaction(engine, lambda conn: SubscriptionsRepository(conn).add_customer(USER, customer, utc_now()))
    idempotency = IdempotencyStore(idempotency_records)
    service = SubscriptionsService(
        engine, idempotency=idempotency, provider=provider, catalog=catalog, customers=NoPayments()
    )
    checkout = service.create_checkout_session(
        Actor(ActorKind.USER, USER),
        domain.Subscribe(USER, "starter", "", "", 1, "http://127.0.0.1/ok", "http://127.0.0.1/no"),
        IdempotentCall.for_request("gateway", uuid.uuid4().hex, "CreateCheckoutSession", b"x"),
        lambda started: json.dumps({"id": started.subscription.id, "session": started.checkout_session_id}).encode(),
    )
    created = json.loads(checkout.response)
    with engine.connect() as conn:
        before = dict(
            conn.execute(text("SELECT * FROM subscriptions WHERE id = :i"), {"i": created["id"]}).one()._mapping
        )

    # The story, at Stripe: pay, renew, upgrade, pause (void) over a renewal, resume, renew, cancel at the end.
    assert (
        sandbox.control("post", f"/checkout/sessions/{created['session']}/pay", card="4242424242424242")["result"]
        == "succeeded"
    )
    stripe_id = str(client.v1.checkout.sessions.retrieve(created["session"]).subscription)
    advance(client, clock, period_end(client, stripe_id) + 3600)
    item = client.v1.subscriptions.retrieve(stripe_id)["items"]["data"][0]["id"]
    pro = active_price_id(engine, "pro")
    client.v1.subscriptions.update(
        stripe_id, params={"items": [{"id": item, "price": pro}], "proration_behavior": "always_invoice"}
    )
    client.v1.subscriptions.update(stripe_id, params={"pause_collection": {"behavior": "void"}})
    advance(client, clock, period_end(client, stripe_id) + 3600)
    client.v1.subscriptions.update(stripe_id, params={"pause_collection": ""})
    advance(client, clock, period_end(client, stripe_id) + 3600)
    client.v1.subscriptions.update(stripe_id, params={"cancel_at_period_end": True})
    advance(client, clock, period_end(client, stripe_id) + 3600)
    assert client.v1.subscriptions.retrieve(stripe_id).status == "canceled"

    events = []
    for event in client.v1.events.list(params={"limit": 100}).auto_paging_iter():
        raw = event.to_dict()
        if facts_from_event(raw["type"], raw) is not None:
            events.append(raw)
    handler = StripeEventHandler(
        engine,
        idempotency=idempotency,
        inbox=Inbox(stripe_events),
        outbox=Outbox(outbox_messages),
        provider=provider,
        catalog=catalog,
    )
    return Story(engine, handler, client, created["id"], stripe_id, before, events)


def active_price_id(engine: Engine, plan_id: str) -> str:
    price = run_transaction(engine, lambda conn: SubscriptionsRepository(conn).active_price(plan_id, "usd", "month"))
    assert price is not None
    return price.stripe_price_id


def reset(story: Story) -> None:
    """Our side as it was before the first event: the new record, nothing received, nothing owed."""

    def work(conn: Any) -> None:
        for table in (period_grants, outbox_messages, stripe_events, idempotency_records):
            conn.execute(delete(table))
        columns = ", ".join(f"{name} = :{name}" for name in story.before_events if name != "id")
        conn.execute(text(f"UPDATE subscriptions SET {columns} WHERE id = :id"), story.before_events)

    run_transaction(story.engine, work)


def deliver(story: Story, event: dict[str, Any]) -> None:
    """One delivery, retried while a concurrent delivery of the same event holds its key (Stripe retries too)."""
    payload = json.dumps(event, default=str).encode()  # Decimal fields: strings on the wire, as Stripe sends them
    for _ in range(100):
        try:
            story.handler.handle(
                WEBHOOK,
                event_id=event["id"],
                event_type=event["type"],
                payload=payload,
                call=IdempotentCall.for_request(
                    "gateway", event["id"], "HandleStripeEvent", f"{event['id']}\0{event['type']}".encode()
                ),
                encode=lambda handled: b"1" if handled else b"0",
            )
            return
        except Aborted:
            continue
    raise AssertionError(f"event {event['id']} stayed in flight")


def test_every_permutation_with_duplicates_ends_in_stripes_final_state(story: Story) -> None:
    assert len(story.events) >= 15, [e["type"] for e in story.events]
    final = story.client.v1.subscriptions.retrieve(story.stripe_subscription_id)
    paid_periods = [
        i
        for i in story.client.v1.invoices.list(
            params={"subscription": story.stripe_subscription_id, "status": "paid", "limit": 100}
        ).data
        if i.billing_reason in ("subscription_create", "subscription_cycle")
    ]
    assert len(paid_periods) == 3  # the first period and two renewals: the paused one was voided
    notices = {
        facts.notice.key
        for e in story.events
        if (facts := facts_from_event(e["type"], e)) is not None and facts.notice is not None
    }
    rng = random.Random(20261129)
    for round_ in range(PERMUTATIONS):
        reset(story)
        stream = list(story.events)
        stream += rng.sample(stream, k=len(stream) // 3)  # duplicates
        rng.shuffle(stream)
        if round_ % 10 == 0:
            with ThreadPoolExecutor(max_workers=4) as pool:
                list(pool.map(lambda e: deliver(story, e), stream))
        else:
            for event in stream:
                deliver(story, event)
        ours = run_transaction(story.engine, lambda conn: SubscriptionsRepository(conn).get(story.subscription_id))
        assert ours is not None
        item = final["items"]["data"][0]
        assert ours.status.value == final.status, round_
        assert ours.stripe_subscription_id == final.id
        assert ours.stripe_price_id == item["price"]["id"]
        assert ours.plan_id == "pro"
        assert ours.quantity == item["quantity"]
        assert int(ours.current_period_end.timestamp()) == item["current_period_end"]  # type: ignore[union-attr]
        assert ours.cancel_at_period_end == final.cancel_at_period_end
        assert ours.pause_behavior is None
        assert ours.ended_at is not None
        assert int(ours.ended_at.timestamp()) == final.ended_at
        with story.engine.connect() as conn:
            granted = conn.execute(text("SELECT stripe_invoice_id FROM period_grants")).scalars().all()
            rows = conn.execute(text("SELECT kind, count(*) FROM outbox_messages GROUP BY kind")).all()
            kinds = {kind: count for kind, count in rows}
        assert sorted(granted) == sorted(i.id for i in paid_periods), round_
        assert ours.periods_granted == len(paid_periods)
        assert kinds.get(GRANT, 0) == len(paid_periods)
        assert kinds.get(NOTIFY, 0) == len(notices)
