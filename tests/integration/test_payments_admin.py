"""Payments' admin features: revenue, transactions, the Stripe event inbox and its re-drives, the audit log.

The rules run on both databases through the use cases (rows written directly
where a range of dates is needed); the whole path runs as real processes on
PostgreSQL: the sandbox's hosted page and signed webhooks, the gateway,
Payments and Credits, with the admin RPCs called over gRPC.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Engine, insert, select, text
from sqlalchemy.exc import DBAPIError

from billing.payments.v1 import payments_pb2 as pb
from billing.payments.v1 import payments_pb2_grpc
from payments_svc import domain
from payments_svc.bootstrap import MIGRATIONS
from payments_svc.catalog import DEFAULT_CATALOG, load_catalog
from payments_svc.models import (
    audit_records,
    idempotency_records,
    outbox_messages,
    payments,
    refunds,
    stripe_events,
)
from payments_svc.service import PaymentsService
from svckit.actors import Actor, ActorKind
from svckit.audit import AuditFilter
from svckit.db import make_engine, run_transaction
from svckit.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from svckit.idempotency import IdempotencyStore, IdempotentCall
from svckit.inbox import Inbox, StoredEvent
from svckit.migrations import upgrade
from svckit.outbox import Outbox
from tests.integration.test_payments_events import FakeProvider, Harness
from tests.support.grpc_calls import details, metadata, new_key
from tests.support.purchase_stack import PurchaseStack, pay_on_hosted_page, purchase_stack, wait_for

ADMIN = Actor(ActorKind.ADMIN, "ops-alice")
OPS = Actor(ActorKind.SERVICE, "ops")
USER = Actor(ActorKind.USER, "alice")
DAY = timedelta(days=1)


# --- the rules, on SQLite and PostgreSQL ---------------------------------------------------


@pytest.fixture
def harness(any_database: str) -> Iterator[Harness]:
    upgrade(any_database, MIGRATIONS)
    engine = make_engine(any_database, pool_size=4)
    provider = FakeProvider()
    service = PaymentsService(
        engine,
        idempotency=IdempotencyStore(idempotency_records),
        inbox=Inbox(stripe_events),
        outbox=Outbox(outbox_messages),
        provider=provider,
        catalog=load_catalog(DEFAULT_CATALOG),
    )
    yield Harness(engine, service, provider)
    engine.dispose()


def add_payment(
    engine: Engine, at: datetime, amount: int, currency: str = "usd", status: str = "succeeded", user: str = "u1"
) -> str:
    payment_id = f"pay_{uuid.uuid4().hex}"
    row = {
        "id": payment_id,
        "user_id": user,
        "package_id": "credits-100",
        "credits": 100,
        "amount_minor": amount,
        "currency": currency,
        "flow": "checkout",
        "status": status,
        "amount_refunded_minor": 0,
        "credits_granted": False,
        "credits_reversed": 0,
        "credit_shortfall": 0,
        "created_at": at,
        "updated_at": at,
    }
    run_transaction(engine, lambda conn: conn.execute(insert(payments).values(**row)))
    return payment_id


def add_refund(engine: Engine, payment_id: str, at: datetime, amount: int, status: str = "succeeded") -> str:
    refund_id = f"re_{uuid.uuid4().hex[:24]}"
    currency = run_transaction(
        engine, lambda conn: conn.execute(select(payments.c.currency).where(payments.c.id == payment_id)).scalar_one()
    )
    row = {
        "stripe_refund_id": refund_id,
        "payment_id": payment_id,
        "amount_minor": amount,
        "currency": currency,
        "status": status,
        "reason": "",
        "actor": "admin:ops-alice",
        "created_at": at,
    }
    run_transaction(engine, lambda conn: conn.execute(insert(refunds).values(**row)))
    return refund_id


def figures(summary: domain.RevenueSummary) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    totals = [
        (t.currency, t.gross_minor, t.refunds_minor, t.net_minor, t.payments, t.refund_count) for t in summary.totals
    ]
    daily = [(d.day, d.currency, d.gross_minor, d.refunds_minor) for d in summary.daily]
    return totals, daily


def test_revenue_per_currency_and_utc_day(harness: Harness) -> None:
    engine, service = harness.engine, harness.service
    midnight = datetime(2026, 3, 10, tzinfo=UTC)
    just_before = midnight - timedelta(microseconds=1)
    paid = add_payment(engine, just_before, 1000)  # 2026-03-09, the range's first instant
    add_payment(engine, midnight, 500)  # 2026-03-10
    add_payment(engine, midnight + timedelta(hours=23, minutes=59), 300, status="partially_refunded")
    add_payment(engine, midnight + timedelta(hours=1), 450, currency="eur", status="refunded")
    add_payment(engine, midnight + timedelta(hours=2), 9999, status="pending")  # not paid: not counted
    add_payment(engine, midnight + timedelta(hours=3), 9999, status="failed")
    add_refund(engine, paid, midnight + DAY + timedelta(hours=5), 400)  # 2026-03-11, a payment of the 9th
    add_refund(engine, paid, midnight + DAY + timedelta(hours=6), 99, status="failed")  # never paid out
    add_payment(engine, midnight + 2 * DAY, 700)  # the range's end: excluded
    add_payment(engine, just_before - timedelta(microseconds=1), 800)  # before the range

    summary = service.revenue_summary(ADMIN, just_before, midnight + 2 * DAY)
    totals, daily = figures(summary)
    assert totals == [("eur", 450, 0, 450, 1, 0), ("usd", 1800, 400, 1400, 3, 1)]
    assert daily == [
        ("2026-03-09", "usd", 1000, 0),
        ("2026-03-10", "eur", 450, 0),
        ("2026-03-10", "usd", 800, 0),
        ("2026-03-11", "usd", 0, 400),
    ]
    # The end is exclusive, the start inclusive.
    assert figures(service.revenue_summary(OPS, midnight + 2 * DAY, midnight + 3 * DAY))[0] == [
        ("usd", 700, 0, 700, 1, 0)
    ]
    assert figures(service.revenue_summary(OPS, midnight + 3 * DAY, midnight + 4 * DAY)) == ([], [])


def test_revenue_needs_an_ordered_range_and_a_privileged_caller(harness: Harness) -> None:
    now = datetime.now(UTC)
    for since, until, field in ((None, now, "since"), (now, None, "until"), (now, now, "until")):
        with pytest.raises(InvalidArgument) as refused:
            harness.service.revenue_summary(ADMIN, since, until)
        assert [v.field for v in refused.value.violations] == [field]
    with pytest.raises(PermissionDenied):
        harness.service.revenue_summary(USER, now - DAY, now)


def all_transactions(service: PaymentsService, page_size: int, **filters: Any) -> list[list[str]]:
    pages, after = [], None
    while True:
        page = service.list_transactions(
            ADMIN,
            user_id=filters.get("user_id", ""),
            kind=filters.get("kind"),
            since=filters.get("since"),
            until=filters.get("until"),
            page_size=page_size,
            after=after,
        )
        pages.append([t.id for t in page.transactions])
        if page.next_after is None:
            return pages
        after = page.next_after


def test_transactions_merge_payments_and_refunds_across_pages(harness: Harness) -> None:
    engine, service = harness.engine, harness.service
    t0 = datetime(2026, 5, 1, 12, tzinfo=UTC)
    expected: list[tuple[datetime, int, str]] = []
    for i in range(7):
        # Several payments and refunds share an instant, so pages end inside ties.
        at = t0 + timedelta(seconds=i // 2)
        payment = add_payment(engine, at, 500 + i, user="u1" if i % 3 else "u2")
        expected.append((at, 0, payment))
        if i % 2 == 0:
            refund = add_refund(engine, payment, at, 100)
            expected.append((at, 1, refund))
    [listed] = all_transactions(service, 200)
    # Newest first; at one instant refunds before payments, then ids in descending order.
    assert listed == [ident for _, _, ident in sorted(expected, reverse=True)]
    for size in (1, 2, 3, 4, 5):
        pages = all_transactions(service, size)
        assert [ident for page in pages for ident in page] == listed, size
        assert all(0 < len(page) <= size for page in pages)
    refunds_only = all_transactions(service, 2, kind=domain.TransactionKind.REFUND)
    assert [i for p in refunds_only for i in p] == [i for i in listed if i.startswith("re_")]
    u2 = [i for p in all_transactions(service, 2, user_id="u2") for i in p]
    assert len(u2) == 5  # payments 0, 3, 6 and the refunds of 0 and 6
    since, until = t0 + timedelta(seconds=1), t0 + timedelta(seconds=3)
    window = [i for p in all_transactions(service, 2, since=since, until=until) for i in p]
    assert window == [ident for at, _, ident in sorted(expected, reverse=True) if since <= at < until]
    with pytest.raises(InvalidArgument):
        all_transactions(service, 2, since=until, until=since)
    with pytest.raises(PermissionDenied):
        service.list_transactions(USER, user_id="", kind=None, since=None, until=None, page_size=0, after=None)


def redrive(harness: Harness, event_id: str, key: str | None = None, actor: Actor = ADMIN) -> StoredEvent:
    call = IdempotentCall.for_request("ops", key or new_key(), "/RedriveStripeEvent", event_id.encode())
    outcome = harness.service.redrive_event(
        actor, event_id, call, lambda e: json.dumps(e.__dict__, default=str).encode()
    )
    data = json.loads(outcome.response)
    return StoredEvent(**{**data, "received_at": datetime.fromisoformat(data["received_at"])})


def grants(harness: Harness) -> list[str]:
    return [key for key, _ in harness.outbox() if key.startswith("grant:")]


def audit(harness: Harness, action: str = "") -> list[tuple[str, str, str]]:
    page = harness.service.list_audit_records(OPS, AuditFilter(action=action), page_size=200, before=None)
    return [(r.actor, r.action, r.target) for r in page.records]


def test_an_event_ignored_for_an_unknown_payment_is_applied_once_when_re_driven(harness: Harness) -> None:
    key = uuid.uuid4().hex
    payment_id = domain.payment_id_for("gateway", key)
    # Stripe's events arrive before the payment is recorded (and carry too little to recover it).
    early = {
        "id": "pi_early",
        "object": "payment_intent",
        "status": "succeeded",
        "metadata": {"payment_id": payment_id},
        "amount": 500,
    }
    assert not harness.event("payment_intent.succeeded", early, "evt_early_1")
    assert not harness.event("payment_intent.succeeded", early, "evt_early_2")
    assert harness.inbox() == {"evt_early_1": "ignored", "evt_early_2": "ignored"}

    cmd = domain.BuyPackage("alice", "credits-100", "")
    call = IdempotentCall.for_request("gateway", key, "/CreatePaymentIntent", b"x")
    harness.service.create_payment_intent(USER, cmd, call, lambda created: b"")
    assert grants(harness) == []

    admin_key = new_key()
    first = redrive(harness, "evt_early_1", admin_key)
    assert (first.status, first.detail, first.redrives) == ("processed", f"payment {payment_id}", 1)
    assert grants(harness) == [f"grant:{payment_id}"]
    assert harness.service.get_payment(USER, payment_id).status is domain.PaymentStatus.SUCCEEDED
    # The retry of that re-drive replays its answer; a new re-drive of a processed event is refused.
    assert redrive(harness, "evt_early_1", admin_key) == first
    with pytest.raises(FailedPrecondition, match="processed"):
        redrive(harness, "evt_early_1")
    # Another event about the same payment, re-driven: processed, and still one grant.
    assert redrive(harness, "evt_early_2").status == "processed"
    assert grants(harness) == [f"grant:{payment_id}"]
    assert audit(harness) == [
        ("admin:ops-alice", "webhooks.redrive", "event:evt_early_2"),
        ("admin:ops-alice", "webhooks.redrive", "event:evt_early_1"),
    ]


def test_a_rejected_event_stays_rejected_when_re_driven(harness: Harness) -> None:
    assert not harness.event("charge.refunded", {"object": "charge"}, "evt_bad")
    again = redrive(harness, "evt_bad")
    assert (again.status, again.redrives) == ("rejected", 1)
    assert "data.object.id" in again.detail
    assert redrive(harness, "evt_bad").redrives == 2
    with pytest.raises(NotFound):
        redrive(harness, "evt_never_received")
    with pytest.raises(PermissionDenied):
        redrive(harness, "evt_bad", actor=USER)
    events = harness.service.list_stripe_events(OPS, status="rejected", type_="", page_size=0, before=None)
    assert [(e.event_id, e.redrives) for e in events.events] == [("evt_bad", 2)]
    with pytest.raises(InvalidArgument):
        harness.service.list_stripe_events(OPS, status="lost", type_="", page_size=0, before=None)


def test_stripe_events_list_newest_first_in_pages(harness: Harness) -> None:
    for i in range(5):
        harness.event("customer.created", {"id": f"cus_{i}", "object": "customer"}, f"evt_{i}")
    harness.event("charge.refunded", {"object": "charge"}, "evt_rejected")
    seen, before = [], None
    while True:
        page = harness.service.list_stripe_events(OPS, status="", type_="customer.created", page_size=2, before=before)
        seen += [e.event_id for e in page.events]
        if page.next_before is None:
            break
        before = page.next_before
    assert sorted(seen) == [f"evt_{i}" for i in range(5)]
    assert len(seen) == 5


def test_the_audit_log_refuses_changes(harness: Harness) -> None:
    with harness.engine.begin() as conn:
        harness.service.audit.record(conn, actor=ADMIN, action="payments.refund", target="payment:x", detail="d")
    for statement in ("UPDATE audit_records SET detail = 'changed'", "DELETE FROM audit_records"):
        with pytest.raises(DBAPIError, match="immutable"), harness.engine.begin() as conn:
            conn.execute(text(statement))
    with harness.engine.connect() as conn:
        assert conn.execute(select(audit_records.c.detail)).scalars().all() == ["d"]


# --- the whole path, as real processes on PostgreSQL --------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PurchaseStack]:
    with purchase_stack(tmp_path_factory.mktemp("payments-admin")) as running:
        yield running


@pytest.fixture(scope="module")
def payments_grpc(stack: PurchaseStack) -> Iterator[payments_pb2_grpc.PaymentsServiceStub]:
    with grpc.insecure_channel(stack.payments.target) as channel:
        yield payments_pb2_grpc.PaymentsServiceStub(channel)


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def buyer() -> str:
    return f"buyer-{uuid.uuid4().hex[:10]}"


def buy_and_pay(stack: PurchaseStack, user: str, package: str, currency: str) -> str:
    response = stack.http.post(
        "/api/stripe/create-checkout-session",
        headers={**stack.as_user(user), "Idempotency-Key": new_key()},
        json={
            "package_id": package,
            "currency": currency,
            "success_url": "http://127.0.0.1/ok",
            "cancel_url": "http://127.0.0.1/no",
        },
    )
    assert response.status_code == 201, response.text
    session = response.json()
    assert pay_on_hosted_page(stack, session["url"], "4242 4242 4242 4242").paid
    wait_for(lambda: stack.polled_payment(user, session["payment_id"]).get("status") == "succeeded", "the payment")
    return str(session["payment_id"])


def totals_of(response: pb.GetRevenueSummaryResponse) -> dict[str, tuple[int, int, int, int, int]]:
    return {
        t.currency: (t.gross_minor, t.refunds_minor, t.net_minor, t.payments, t.refund_count) for t in response.totals
    }


@pytest.mark.postgres
@pytest.mark.slow
def test_revenue_and_transactions_follow_what_was_paid_and_refunded(
    stack: PurchaseStack, payments_grpc: payments_pb2_grpc.PaymentsServiceStub
) -> None:
    user = buyer()
    t0 = datetime.now(UTC)
    usd_small = buy_and_pay(stack, user, "credits-100", "usd")  # 500
    eur = buy_and_pay(stack, user, "credits-100", "eur")  # 450
    usd_large = buy_and_pay(stack, user, "credits-500", "usd")  # 2000
    unpaid = stack.buy(user)["payment_id"]  # pending: no revenue

    admin_refund = pb.RefundRequest(payment_id=usd_small, amount_minor=200, reason="requested_by_customer")
    admin_key = new_key()
    payments_grpc.Refund(admin_refund, metadata=metadata(key=admin_key, actor="admin:ops-alice"))
    replayed = payments_grpc.Refund.with_call(admin_refund, metadata=metadata(key=admin_key, actor="admin:ops-alice"))
    assert ("idempotent-replayed", "true") in replayed[1].trailing_metadata()
    payments_grpc.Refund(pb.RefundRequest(payment_id=eur), metadata=metadata(key=new_key()))  # a service: not audited
    t1 = datetime.now(UTC) + timedelta(seconds=1)

    summary = payments_grpc.GetRevenueSummary(
        pb.GetRevenueSummaryRequest(since=stamp(t0), until=stamp(t1)), metadata=metadata(actor="admin:ops-alice")
    )
    assert totals_of(summary) == {"eur": (450, 450, 0, 1, 1), "usd": (2500, 200, 2300, 2, 1)}

    listed = payments_grpc.ListTransactions(
        pb.ListTransactionsRequest(user_id=user, page_size=200), metadata=metadata()
    ).transactions
    assert [(t.kind, t.payment_id) for t in listed][2:] == [
        (pb.TRANSACTION_KIND_PAYMENT, p) for p in (unpaid, usd_large, eur, usd_small)
    ]
    refunds_listed = {t.payment_id: t for t in listed[:2]}
    assert refunds_listed[usd_small].kind == pb.TRANSACTION_KIND_REFUND
    assert (refunds_listed[usd_small].actor, refunds_listed[usd_small].user_id) == ("admin:ops-alice", user)
    assert (refunds_listed[usd_small].amount.amount_minor, refunds_listed[usd_small].amount.currency) == (200, "usd")
    assert (refunds_listed[eur].actor, refunds_listed[eur].amount.amount_minor) == ("service:ops", 450)

    expected_daily: dict[tuple[str, str], list[int]] = {}
    for t in listed:
        day = t.create_time.ToDatetime(tzinfo=UTC).date().isoformat()
        if t.kind == pb.TRANSACTION_KIND_PAYMENT and t.status in ("succeeded", "partially_refunded", "refunded"):
            expected_daily.setdefault((day, t.amount.currency), [0, 0])[0] += t.amount.amount_minor
        elif t.kind == pb.TRANSACTION_KIND_REFUND:
            expected_daily.setdefault((day, t.amount.currency), [0, 0])[1] += t.amount.amount_minor
    assert [(d.date, d.currency, d.gross_minor, d.refunds_minor) for d in summary.daily] == [
        (day, currency, *amounts) for (day, currency), amounts in sorted(expected_daily.items())
    ]
    assert {d.date for d in summary.daily} <= {t0.date().isoformat(), t1.date().isoformat()}

    # The end of the range is exclusive: split at the largest payment's creation.
    split = next(t.create_time for t in listed if t.id == usd_large)
    before = payments_grpc.GetRevenueSummary(
        pb.GetRevenueSummaryRequest(since=stamp(t0), until=split), metadata=metadata()
    )
    after = payments_grpc.GetRevenueSummary(
        pb.GetRevenueSummaryRequest(since=split, until=stamp(t1)), metadata=metadata()
    )
    assert totals_of(before) == {"eur": (450, 0, 450, 1, 0), "usd": (500, 0, 500, 1, 0)}
    assert totals_of(after) == {"eur": (0, 450, -450, 0, 1), "usd": (2000, 200, 1800, 1, 1)}

    # Paging the merged list loses and repeats nothing.
    ids, token = [], ""
    while True:
        page = payments_grpc.ListTransactions(
            pb.ListTransactionsRequest(user_id=user, page_size=2, page_token=token), metadata=metadata()
        )
        ids += [t.id for t in page.transactions]
        token = page.next_page_token
        if not token:
            break
    assert ids == [t.id for t in listed]

    # One audit record for the admin's refund (not for its replay, nor for the service's refund).
    records = payments_grpc.ListAuditRecords(
        pb.ListAuditRecordsRequest(action="payments.refund", since=stamp(t0)), metadata=metadata()
    ).records
    assert [(r.actor, r.target, r.service) for r in records] == [
        ("admin:ops-alice", f"payment:{usd_small}", "payments")
    ]
    assert "200 usd" in records[0].detail
    assert "requested_by_customer" in records[0].detail
    assert records[0].request_id


@pytest.mark.postgres
@pytest.mark.slow
def test_a_user_is_refused_every_admin_call(payments_grpc: payments_pb2_grpc.PaymentsServiceStub) -> None:
    now = datetime.now(UTC)
    user = metadata(actor="user:mallory", key=new_key())
    calls: list[tuple[Any, Any]] = [
        (payments_grpc.GetRevenueSummary, pb.GetRevenueSummaryRequest(since=stamp(now - DAY), until=stamp(now))),
        (payments_grpc.ListTransactions, pb.ListTransactionsRequest(user_id="mallory")),
        (payments_grpc.ListStripeEvents, pb.ListStripeEventsRequest()),
        (payments_grpc.RedriveStripeEvent, pb.RedriveStripeEventRequest(event_id="evt_x")),
        (payments_grpc.ListAuditRecords, pb.ListAuditRecordsRequest()),
    ]
    for method, request in calls:
        with pytest.raises(grpc.RpcError) as refused:
            method(request, metadata=user)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, request


@pytest.mark.postgres
@pytest.mark.slow
def test_revenue_names_the_missing_or_misordered_field(payments_grpc: payments_pb2_grpc.PaymentsServiceStub) -> None:
    now = datetime.now(UTC)
    for request, field in (
        (pb.GetRevenueSummaryRequest(until=stamp(now)), "since"),
        (pb.GetRevenueSummaryRequest(since=stamp(now), until=stamp(now - DAY)), "until"),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            payments_grpc.GetRevenueSummary(request, metadata=metadata())
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in details(refused.value).violations] == [field]


def signed_post(stack: PurchaseStack, event: dict[str, Any]) -> dict[str, Any]:
    payload = json.dumps(event).encode()
    timestamp = int(time.time())
    digest = hmac.new(stack.webhook_secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    response = stack.http.post(
        "/api/stripe/webhook",
        content=payload,
        headers={"Stripe-Signature": f"t={timestamp},v1={digest}", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.postgres
@pytest.mark.slow
def test_a_malformed_signed_event_stays_rejected_when_re_driven(
    stack: PurchaseStack, payments_grpc: payments_pb2_grpc.PaymentsServiceStub
) -> None:
    event_id = f"evt_{uuid.uuid4().hex}"
    malformed = {"id": event_id, "object": "event", "type": "charge.refunded", "data": {"object": {"object": "charge"}}}
    assert signed_post(stack, malformed) == {"received": True, "handled": False}
    rejected = payments_grpc.ListStripeEvents(pb.ListStripeEventsRequest(status="rejected"), metadata=metadata())
    assert event_id in [e.event_id for e in rejected.events]

    key = new_key()
    admin = metadata(key=key, actor="admin:ops-alice")
    again = payments_grpc.RedriveStripeEvent(pb.RedriveStripeEventRequest(event_id=event_id), metadata=admin)
    assert (again.event.status, again.event.redrives, again.event.type) == ("rejected", 1, "charge.refunded")
    records = payments_grpc.ListAuditRecords(
        pb.ListAuditRecordsRequest(action="webhooks.redrive", actor="admin:ops-alice"), metadata=metadata()
    ).records
    assert f"event:{event_id}" in [r.target for r in records]

    with pytest.raises(grpc.RpcError) as missing:
        payments_grpc.RedriveStripeEvent(pb.RedriveStripeEventRequest(event_id=event_id), metadata=metadata())
    assert missing.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # no idempotency-key
    with pytest.raises(grpc.RpcError) as unknown:
        payments_grpc.RedriveStripeEvent(
            pb.RedriveStripeEventRequest(event_id="evt_never"),
            metadata=metadata(key=new_key(), actor="admin:ops-alice"),
        )
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def sandbox_event(stack: PurchaseStack, event_type: str, object_id: str) -> tuple[str, str]:
    """(id, JSON) of the sandbox's event of that type about that object."""
    listed = json.loads(stack.stripe.raw_request("get", "/v1/events", type=event_type, limit=100).body)
    for event in listed["data"]:
        if event["data"]["object"]["id"] == object_id:
            return str(event["id"]), json.dumps(event)
    raise AssertionError(f"no {event_type} event about {object_id}")


@pytest.mark.postgres
@pytest.mark.slow
def test_an_event_ignored_before_its_payment_was_known_grants_once_when_re_driven(
    stack: PurchaseStack, payments_grpc: payments_pb2_grpc.PaymentsServiceStub
) -> None:
    user = buyer()
    with stack.deliveries_held():
        session = stack.buy(user)
        assert pay_on_hosted_page(stack, session["url"], "4242 4242 4242 4242").paid
        checkout_event = sandbox_event(stack, "checkout.session.completed", session["checkout_session_id"])
        intent_id = stack.stripe.v1.checkout.sessions.retrieve(session["checkout_session_id"]).payment_intent
        assert isinstance(intent_id, str)
        intent_event = sandbox_event(stack, "payment_intent.succeeded", intent_id)
        # As recorded by an earlier delivery that came before the payment did.
        engine = stack.payments_engine()
        try:
            with engine.begin() as conn:
                for event_id, payload in (checkout_event, intent_event):
                    conn.execute(
                        insert(stripe_events).values(
                            event_id=event_id,
                            type=json.loads(payload)["type"],
                            payload=payload,
                            status="ignored",
                            detail="no payment of this service",
                            received_at=datetime.now(UTC),
                        )
                    )
        finally:
            engine.dispose()
        assert stack.payment(user, session["payment_id"])["status"] == "pending"

        key = new_key()
        admin = metadata(key=key, actor="admin:ops-alice")
        first = payments_grpc.RedriveStripeEvent(
            pb.RedriveStripeEventRequest(event_id=checkout_event[0]), metadata=admin
        )
        assert (first.event.status, first.event.redrives) == ("processed", 1)
        assert first.event.detail == f"payment {session['payment_id']}"
        wait_for(lambda: stack.balance(user) == 100, "the credits of the re-driven event")
        assert (
            payments_grpc.RedriveStripeEvent(pb.RedriveStripeEventRequest(event_id=checkout_event[0]), metadata=admin)
            == first
        )
        with pytest.raises(grpc.RpcError) as refused:
            payments_grpc.RedriveStripeEvent(
                pb.RedriveStripeEventRequest(event_id=checkout_event[0]),
                metadata=metadata(key=new_key(), actor="admin:ops-alice"),
            )
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "processed" in (refused.value.details() or "")
        second = payments_grpc.RedriveStripeEvent(
            pb.RedriveStripeEventRequest(event_id=intent_event[0]),
            metadata=metadata(key=new_key(), actor="admin:ops-alice"),
        )
        assert second.event.status == "processed"
        stack.flush_deliveries()
    stack.wait_deliveries_done()
    wait_for(lambda: stack.polled_payment(user, session["payment_id"]).get("credits_granted"), "the grant confirmed")
    assert stack.balance(user) == 100
    ledger = stack.http.get("/api/credits/ledger", headers=stack.as_user(user)).json()
    assert [(e["amount"], e["reference"]) for e in ledger["entries"]] == [(100, f"payment:{session['payment_id']}")]
