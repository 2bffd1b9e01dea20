"""The Subscriptions admin RPCs on PostgreSQL: metrics, everyone's subscriptions, Stripe event re-drives, audit.

Metrics run against a Subscriptions server of their own whose database the
test fills (exact figures, then 100,000 rows for speed); the rest through the
whole stack (gateway, sandbox with test clocks, Credits, Payments), calling the
Subscriptions service's gRPC directly as an operator does: `x-actor: admin:<id>`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from billing.subscriptions.v1 import subscriptions_pb2 as pb
from billing.subscriptions.v1 import subscriptions_pb2_grpc
from svckit.db import make_engine
from tests.support.databases import postgres_database
from tests.support.grpc_calls import metadata, new_key
from tests.support.processes import ServiceProcess
from tests.support.purchase_stack import (
    PurchaseStack,
    pay_on_hosted_page,
    purchase_stack,
    subscriptions_process,
    wait_for,
)
from tests.support.subscriptions import GOOD_CARD, SubscriptionDriver

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(600)]
ADMIN = "admin:ops-alice"
STARTER_CREDITS = 1000


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


class Admin:
    """The Subscriptions gRPC service as an operator's tool calls it."""

    def __init__(self, target: str) -> None:
        self.channel = grpc.insecure_channel(target)
        self.stub = subscriptions_pb2_grpc.SubscriptionsServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def call(self, method: str, request: Any, *, actor: str = ADMIN, key: str | None = None) -> Any:
        return getattr(self.stub, method)(request, metadata=metadata(actor=actor, key=key), timeout=30)

    def call_with_trailers(
        self, method: str, request: Any, *, actor: str = ADMIN, key: str
    ) -> tuple[Any, dict[str, str]]:
        response, call = getattr(self.stub, method).with_call(
            request, metadata=metadata(actor=actor, key=key), timeout=30
        )
        return response, dict(call.trailing_metadata() or ())

    def error(self, method: str, request: Any, *, actor: str = ADMIN, key: str | None = None) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as raised:
            self.call(method, request, actor=actor, key=key)
        return raised.value


# --- metrics, on a database of their own --------------------------------------------------

T0 = datetime(2027, 1, 1, tzinfo=UTC)
T1 = datetime(2027, 2, 1, tzinfo=UTC)
PRICES = [
    # stripe_price_id, plan, currency, interval, amount
    ("price_s_usd_m", "starter", "usd", "month", 900),
    ("price_s_usd_y", "starter", "usd", "year", 9000),
    ("price_s_eur_m", "starter", "eur", "month", 850),
    ("price_p_usd_y", "pro", "usd", "year", 29000),
]
# id, status, price, quantity, paused, started_at, ended_at
SUBSCRIPTIONS: list[tuple[str, str, str, int, bool, datetime | None, datetime | None]] = [
    ("a", "active", "price_s_usd_m", 1, False, T0 + timedelta(days=4), None),  # new
    ("b", "active", "price_s_usd_y", 1, False, T0 - timedelta(seconds=1), None),  # just before
    ("c", "active", "price_s_usd_m", 3, False, T1, None),  # at `until`: not in range
    ("d", "active", "price_s_usd_m", 1, True, T0 - timedelta(days=60), None),  # collection paused
    ("e", "past_due", "price_s_usd_m", 1, False, T0 - timedelta(days=60), None),
    ("f", "active", "price_s_eur_m", 2, False, T1 - timedelta(seconds=1), None),  # new
    ("g", "trialing", "price_s_usd_m", 1, False, T0 + timedelta(days=9), None),  # new; trials bill nothing
    ("h", "canceled", "price_s_usd_m", 1, False, T0 + timedelta(days=1), T0 + timedelta(days=19)),  # new, churned
    ("i", "unpaid", "price_s_usd_m", 1, False, T0 - timedelta(days=90), None),
    ("j", "active", "price_p_usd_y", 1, False, T0 - timedelta(days=200), None),
    ("k", "canceled", "price_s_usd_m", 1, False, T0 - timedelta(days=90), T1),  # ended at `until`: not in range
    ("l", "incomplete_expired", "price_s_usd_m", 1, False, None, T0 + timedelta(days=14)),  # never started
    ("m", "canceled", "price_s_eur_m", 1, False, T0 - timedelta(days=200), T0),  # ended at `since`: churned
    ("n", "active", "price_unknown", 5, False, T0 - timedelta(days=200), None),  # price the sync does not know
]


@pytest.fixture(scope="module")
def metrics_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, str]]:
    workdir: Path = tmp_path_factory.mktemp("subscriptions-metrics")
    with postgres_database("billing_subscriptions_metrics") as url:
        server = subscriptions_process(url, workdir, OUTBOX_RELAY="false")
        server.migrate()
        _fill(url)
        server.start()
        try:
            yield server, url
        finally:
            server.terminate()


def _fill(url: str) -> None:
    engine = make_engine(url, pool_size=1)
    created = T0 - timedelta(days=365)
    with engine.begin() as conn:
        for price_id, plan, currency, interval, amount in PRICES:
            conn.execute(
                text(
                    "INSERT INTO plan_prices VALUES (:id, :plan, 'standard', :key, :currency, :interval, :amount, "
                    "1000, 0, true, :now)"
                ),
                {
                    "id": price_id,
                    "plan": plan,
                    "key": f"billing_plan_{plan}_{currency}_{interval}",
                    "currency": currency,
                    "interval": interval,
                    "amount": amount,
                    "now": created,
                },
            )
        for ident, status, price_id, quantity, paused, started, ended in SUBSCRIPTIONS:
            _insert_subscription(
                conn, f"sub_{ident}", status, price_id, quantity, paused=paused, started=started, ended=ended
            )
    engine.dispose()


def _insert_subscription(
    conn: Any,
    ident: str,
    status: str,
    price_id: str,
    quantity: int,
    *,
    paused: bool,
    started: datetime | None,
    ended: datetime | None,
) -> None:
    live = status not in ("canceled", "incomplete_expired")
    created = T0 - timedelta(days=365)
    conn.execute(
        text(
            "INSERT INTO subscriptions (id, user_id, plan_id, family, family_slot, quantity, status, currency, "
            "interval, stripe_price_id, stripe_customer_id, cancel_at_period_end, pause_behavior, periods_granted, "
            "started_at, ended_at, created_at, updated_at) VALUES (:id, :user, 'starter', 'standard', :slot, :q, "
            ":status, 'usd', 'month', :price, :customer, false, :pause, 0, :started, :ended, :created, :created)"
        ),
        {
            "id": ident,
            "user": f"user-{ident}",
            "slot": "standard" if live else None,
            "q": quantity,
            "status": status,
            "price": price_id,
            "customer": f"cus_{ident}",
            "pause": "void" if paused else None,
            "started": started,
            "ended": ended,
            "created": created,
        },
    )


def metrics_request(since: datetime = T0, until: datetime = T1) -> pb.GetSubscriptionMetricsRequest:
    return pb.GetSubscriptionMetricsRequest(since=stamp(since), until=stamp(until))


def test_metrics_count_revenue_statuses_and_new_and_churned_subscriptions(
    metrics_server: tuple[ServiceProcess, str],
) -> None:
    server, _ = metrics_server
    admin = Admin(server.target)
    try:
        metrics = admin.call("GetSubscriptionMetrics", metrics_request())
    finally:
        admin.close()
    # usd: a 900 + b 9000/12 = 750 + c 3 x 900 + e (past due) 900 + j 29000/12 = 2416 (rounded down);
    # not d (collection paused), g (trialing), i (unpaid), n (a price the sync does not know).
    usd = 900 + 750 + 3 * 900 + 900 + 2416
    eur = 2 * 850  # f
    assert [(r.currency, r.mrr_minor, r.arr_minor) for r in metrics.recurring] == [
        ("eur", eur, 12 * eur),
        ("usd", usd, 12 * usd),
    ]
    counts = {pb.SubscriptionStatus.Name(c.status): c.count for c in metrics.by_status}
    assert counts == {
        "SUBSCRIPTION_STATUS_ACTIVE": 7,
        "SUBSCRIPTION_STATUS_PAST_DUE": 1,
        "SUBSCRIPTION_STATUS_TRIALING": 1,
        "SUBSCRIPTION_STATUS_CANCELED": 3,
        "SUBSCRIPTION_STATUS_UNPAID": 1,
        "SUBSCRIPTION_STATUS_INCOMPLETE_EXPIRED": 1,
    }
    assert metrics.new_subscriptions == 4  # a, f, g, h
    assert metrics.churned_subscriptions == 2  # h, m (not k: at `until`; not l: it never started)


def test_metrics_of_a_range_without_changes_count_none(metrics_server: tuple[ServiceProcess, str]) -> None:
    server, _ = metrics_server
    admin = Admin(server.target)
    try:
        later = admin.call("GetSubscriptionMetrics", metrics_request(T1 + timedelta(days=1), T1 + timedelta(days=30)))
        earlier = admin.call("GetSubscriptionMetrics", metrics_request(T0 - timedelta(days=30), T0 - timedelta(days=1)))
    finally:
        admin.close()
    assert (later.new_subscriptions, later.churned_subscriptions) == (0, 0)
    assert (earlier.new_subscriptions, earlier.churned_subscriptions) == (0, 0)
    assert later.recurring == earlier.recurring  # revenue is now, whatever the range


def test_metrics_need_a_range_and_an_admin(metrics_server: tuple[ServiceProcess, str]) -> None:
    server, _ = metrics_server
    admin = Admin(server.target)
    try:
        missing = admin.error("GetSubscriptionMetrics", pb.GetSubscriptionMetricsRequest(since=stamp(T0)))
        backwards = admin.error("GetSubscriptionMetrics", metrics_request(T1, T0))
        empty = admin.error("GetSubscriptionMetrics", metrics_request(T0, T0))
        user = admin.error("GetSubscriptionMetrics", metrics_request(), actor="user:user-a")
        service = admin.call("GetSubscriptionMetrics", metrics_request(), actor="service:reports")
    finally:
        admin.close()
    assert missing.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert backwards.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert empty.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert user.code() == grpc.StatusCode.PERMISSION_DENIED
    assert service.new_subscriptions == 4


def test_metrics_over_100000_subscriptions_stay_fast(metrics_server: tuple[ServiceProcess, str]) -> None:
    server, url = metrics_server
    engine = make_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO subscriptions (id, user_id, plan_id, family, family_slot, quantity, status, "
                    "currency, interval, stripe_price_id, stripe_customer_id, cancel_at_period_end, "
                    "pause_behavior, periods_granted, started_at, ended_at, created_at, updated_at) "
                    "SELECT 'bulk_' || n, 'bulk-user-' || n, 'starter', 'standard', "
                    "CASE WHEN n % 5 = 0 THEN NULL ELSE 'standard' END, 1 + n % 3, "
                    "(ARRAY['active', 'active', 'past_due', 'trialing', 'canceled'])[1 + n % 5], 'usd', 'month', "
                    "(ARRAY['price_s_usd_m', 'price_s_usd_y', 'price_s_eur_m'])[1 + n % 3], 'cus_bulk_' || n, "
                    "false, NULL, 0, :t0 - n * interval '1 minute', "
                    "CASE WHEN n % 5 = 0 THEN :t0 + (n % 1000) * interval '1 minute' END, "
                    ":t0 - n * interval '1 minute', :t0 FROM generate_series(1, 100000) AS n"
                ),
                {"t0": T0},
            )
            conn.execute(text("ANALYZE subscriptions"))
    finally:
        engine.dispose()
    admin = Admin(server.target)
    try:
        admin.call("GetSubscriptionMetrics", metrics_request())  # warm
        started = time.perf_counter()
        metrics = admin.call("GetSubscriptionMetrics", metrics_request())
        elapsed = time.perf_counter() - started
    finally:
        admin.close()
    assert sum(c.count for c in metrics.by_status) == 100_000 + len(SUBSCRIPTIONS)
    assert metrics.churned_subscriptions == 2 + 20_000
    assert elapsed < 1.0, f"metrics took {elapsed:.3f}s over 100,000 subscriptions"


# --- the whole stack ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PurchaseStack]:
    with purchase_stack(tmp_path_factory.mktemp("subscriptions-admin"), subscriptions=True) as running:
        yield running


@pytest.fixture
def driver(stack: PurchaseStack) -> Iterator[SubscriptionDriver]:
    running = SubscriptionDriver(stack)
    yield running
    running.close()


@pytest.fixture
def admin(stack: PurchaseStack) -> Iterator[Admin]:
    assert stack.subscriptions is not None
    client = Admin(stack.subscriptions.target)
    yield client
    client.close()


def new_user() -> str:
    return f"admin-user-{uuid.uuid4().hex[:10]}"


def all_pages(admin: Admin, request: pb.ListSubscriptionsRequest) -> list[pb.Subscription]:
    found: list[pb.Subscription] = []
    while True:
        page = admin.call("ListSubscriptions", request)
        found.extend(page.subscriptions)
        if not page.next_page_token:
            return found
        request.page_token = page.next_page_token


def audit_of(admin: Admin, target: str, action: str = "") -> list[Any]:
    records = admin.call("ListAuditRecords", pb.ListAuditRecordsRequest(action=action, page_size=200)).records
    return [r for r in records if r.target == target]


def test_an_admin_lists_everyones_subscriptions_by_status_page_by_page(
    driver: SubscriptionDriver, admin: Admin
) -> None:
    first, second = new_user(), new_user()
    one = driver.subscribe(first)
    two = driver.subscribe(second)
    canceled = admin.call(
        "CancelSubscription", pb.CancelSubscriptionRequest(subscription_id=one["id"]), key=new_key()
    ).subscription
    assert canceled.status == pb.SUBSCRIPTION_STATUS_CANCELED

    everyone = all_pages(admin, pb.ListSubscriptionsRequest(page_size=1))
    ids = [s.id for s in everyone]
    assert len(ids) == len(set(ids))
    assert {one["id"], two["id"]} <= set(ids)
    order = [(s.create_time.ToDatetime(), s.id) for s in everyone]
    assert order == sorted(order, reverse=True)
    assert [
        s.id for s in admin.call("ListSubscriptions", pb.ListSubscriptionsRequest(page_size=200)).subscriptions
    ] == ids

    active = all_pages(admin, pb.ListSubscriptionsRequest(page_size=1, status=pb.SUBSCRIPTION_STATUS_ACTIVE))
    assert all(s.status == pb.SUBSCRIPTION_STATUS_ACTIVE for s in active)
    assert two["id"] in {s.id for s in active}
    assert one["id"] not in {s.id for s in active}
    ended = all_pages(admin, pb.ListSubscriptionsRequest(page_size=2, status=pb.SUBSCRIPTION_STATUS_CANCELED))
    assert one["id"] in {s.id for s in ended}
    assert {s.status for s in ended} == {pb.SUBSCRIPTION_STATUS_CANCELED}

    # A user still names themselves; the status filter applies to their own list too.
    own = admin.call(
        "ListSubscriptions",
        pb.ListSubscriptionsRequest(user_id=second, status=pb.SUBSCRIPTION_STATUS_ACTIVE),
        actor=f"user:{second}",
    )
    assert [s.id for s in own.subscriptions] == [two["id"]]
    for request in (pb.ListSubscriptionsRequest(), pb.ListSubscriptionsRequest(user_id=first)):
        refused = admin.error("ListSubscriptions", request, actor=f"user:{second}")
        assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    bad = admin.error("ListSubscriptions", pb.ListSubscriptionsRequest(status=99))  # type: ignore[arg-type]
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT

    # The live subscription started, and counts as new now.
    now = datetime.now(UTC)
    metrics = admin.call("GetSubscriptionMetrics", metrics_request(now - timedelta(hours=1), now + timedelta(hours=1)))
    assert metrics.new_subscriptions >= 2
    assert metrics.churned_subscriptions >= 1


def test_users_are_refused_the_admin_calls(admin: Admin) -> None:
    user = f"user:{new_user()}"
    now = datetime.now(UTC)
    calls: list[tuple[str, Any, str | None]] = [
        ("GetSubscriptionMetrics", metrics_request(now - timedelta(days=1), now), None),
        ("ListStripeEvents", pb.ListStripeEventsRequest(), None),
        ("RedriveStripeEvent", pb.RedriveStripeEventRequest(event_id="evt_x"), new_key()),
        ("ListAuditRecords", pb.ListAuditRecordsRequest(), None),
    ]
    for method, request, key in calls:
        assert admin.error(method, request, actor=user, key=key).code() == grpc.StatusCode.PERMISSION_DENIED, method


def test_an_admin_cancel_is_audited_once_and_a_users_own_cancel_not_at_all(
    driver: SubscriptionDriver, admin: Admin
) -> None:
    theirs, mine = new_user(), new_user()
    sub = driver.subscribe(theirs)
    key = new_key()
    request = pb.CancelSubscriptionRequest(subscription_id=sub["id"], at_period_end=True, reason="fraud review")
    admin.call("CancelSubscription", request, key=key)
    _, trailers = admin.call_with_trailers("CancelSubscription", request, key=key)
    assert trailers.get("idempotent-replayed") == "true"
    records = audit_of(admin, f"subscription:{sub['id']}")
    assert len(records) == 1
    record = records[0]
    assert (record.actor, record.action, record.service) == (ADMIN, "subscriptions.cancel", "subscriptions")
    assert "at period end" in record.detail
    assert "fraud review" in record.detail
    assert record.request_id
    # Filtered by actor and action, and by time.
    by_actor = admin.call("ListAuditRecords", pb.ListAuditRecordsRequest(actor=ADMIN, action="subscriptions.cancel"))
    assert record.id in {r.id for r in by_actor.records}
    after = admin.call(
        "ListAuditRecords",
        pb.ListAuditRecordsRequest(since=stamp(record.time.ToDatetime(tzinfo=UTC) + timedelta(seconds=1))),
    )
    assert record.id not in {r.id for r in after.records}
    reactivated = admin.call(
        "ReactivateSubscription", pb.ReactivateSubscriptionRequest(subscription_id=sub["id"]), key=new_key()
    )
    assert not reactivated.subscription.cancel_at_period_end
    assert [r.action for r in audit_of(admin, f"subscription:{sub['id']}")] == [
        "subscriptions.reactivate",
        "subscriptions.cancel",
    ]

    own = driver.subscribe(mine)
    admin.call(
        "CancelSubscription",
        pb.CancelSubscriptionRequest(subscription_id=own["id"]),
        actor=f"user:{mine}",
        key=new_key(),
    )
    assert audit_of(admin, f"subscription:{own['id']}") == []

    # The log is immutable, even to direct SQL.
    with driver.subscriptions_engine.connect() as conn:
        for statement in (
            "UPDATE audit_records SET detail = 'nothing happened' WHERE id = :id",
            "DELETE FROM audit_records WHERE id = :id",
        ):
            with pytest.raises(DBAPIError, match="immutable"):
                conn.execute(text(statement), {"id": record.id})
            conn.rollback()
    assert len(audit_of(admin, f"subscription:{sub['id']}")) == 2


def test_audit_records_page_newest_first(admin: Admin) -> None:
    seen: list[Any] = []
    token = ""
    while True:
        page = admin.call("ListAuditRecords", pb.ListAuditRecordsRequest(page_size=1, page_token=token))
        seen.extend(page.records)
        token = page.next_page_token
        if not token:
            break
    everything = admin.call("ListAuditRecords", pb.ListAuditRecordsRequest(page_size=200)).records
    assert [r.id for r in seen] == [r.id for r in everything]
    bad = admin.error("ListAuditRecords", pb.ListAuditRecordsRequest(page_token="nonsense!"))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_an_invoice_ignored_for_an_unknown_price_grants_once_when_re_driven(
    stack: PurchaseStack, driver: SubscriptionDriver, admin: Admin
) -> None:
    user = new_user()
    with driver.subscriptions_engine.begin() as conn:
        price = conn.execute(
            text(
                "SELECT * FROM plan_prices WHERE plan_id = 'starter' AND currency = 'eur' AND interval = 'month' "
                "AND active"
            )
        ).one()
    started = driver.start_checkout(user, "starter", currency="eur")
    with stack.deliveries_held():
        paid = pay_on_hosted_page(stack, started["url"], GOOD_CARD)
        assert paid.paid, paid.page
        # The plan sync has not learnt the price yet when Stripe's events arrive.
        with driver.subscriptions_engine.begin() as conn:
            conn.execute(text("DELETE FROM plan_prices WHERE stripe_price_id = :id"), {"id": price.stripe_price_id})
        stack.flush_deliveries()
    driver.settle()
    sub = driver.wait_subscription(user, started["subscription_id"], lambda s: s["status"] == "active")

    def ignored_invoice() -> Any:
        events = admin.call(
            "ListStripeEvents", pb.ListStripeEventsRequest(status="ignored", type="invoice.paid", page_size=200)
        ).events
        return next((e for e in events if sub["id"] in e.detail), None)

    event = wait_for(ignored_invoice, "the invoice.paid event to be recorded as ignored")
    assert "price unknown" in event.detail
    assert event.redrives == 0
    assert driver.period_grants(user) == []

    # Re-driven before the price is known: ignored again, and still re-drivable.
    again = admin.call("RedriveStripeEvent", pb.RedriveStripeEventRequest(event_id=event.event_id), key=new_key())
    assert (again.event.status, again.event.redrives) == ("ignored", 1)

    with driver.subscriptions_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO plan_prices VALUES (:stripe_price_id, :plan_id, :family, :lookup_key, :currency, "
                ":interval, :amount_minor, :credits_per_period, :trial_credits, :active, :synced_at)"
            ),
            dict(price._mapping),
        )
    key = new_key()
    applied = admin.call("RedriveStripeEvent", pb.RedriveStripeEventRequest(event_id=event.event_id), key=key)
    assert (applied.event.status, applied.event.redrives) == ("processed", 2)
    assert f"{STARTER_CREDITS} credits (period)" in applied.event.detail
    replayed, trailers = admin.call_with_trailers(
        "RedriveStripeEvent", pb.RedriveStripeEventRequest(event_id=event.event_id), key=key
    )
    assert trailers.get("idempotent-replayed") == "true"
    assert replayed == applied
    refused = admin.error("RedriveStripeEvent", pb.RedriveStripeEventRequest(event_id=event.event_id), key=new_key())
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "processed" in (refused.details() or "")

    driver.settle()
    grants = driver.period_grants(user)
    assert [(g.amount, g.source) for g in grants] == [(STARTER_CREDITS, "subscription")]
    assert stack.balance(user) == STARTER_CREDITS
    assert driver.subscription(user, sub["id"])["periods_granted"] == 1

    redrives = audit_of(admin, f"event:{event.event_id}", "webhooks.redrive")
    assert len(redrives) == 2
    assert all(r.actor == ADMIN for r in redrives)
    assert "ignored -> processed" in redrives[0].detail


def test_re_drives_need_a_known_event_and_a_key(admin: Admin) -> None:
    unknown = admin.error("RedriveStripeEvent", pb.RedriveStripeEventRequest(event_id="evt_never"), key=new_key())
    assert unknown.code() == grpc.StatusCode.NOT_FOUND
    no_key = admin.error("RedriveStripeEvent", pb.RedriveStripeEventRequest(event_id="evt_never"))
    assert no_key.code() == grpc.StatusCode.INVALID_ARGUMENT
    processed = admin.call("ListStripeEvents", pb.ListStripeEventsRequest(status="processed", page_size=1)).events
    if processed:
        refused = admin.error(
            "RedriveStripeEvent", pb.RedriveStripeEventRequest(event_id=processed[0].event_id), key=new_key()
        )
        assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    bad = admin.error("ListStripeEvents", pb.ListStripeEventsRequest(status="lost"))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_stripe_events_page_newest_first(admin: Admin) -> None:
    seen: list[Any] = []
    token = ""
    while True:
        page = admin.call("ListStripeEvents", pb.ListStripeEventsRequest(page_size=7, page_token=token))
        seen.extend(page.events)
        token = page.next_page_token
        if not token:
            break
    keys = [(e.receive_time.ToDatetime(), e.event_id) for e in seen]
    assert keys == sorted(keys, reverse=True)
    assert len({e.event_id for e in seen}) == len(seen)
