"""Reconciliation on the real stack: the sandbox, Credits and Payments on PostgreSQL, the gateway.

Real purchases and refunds first (a clean run finds nothing); then one
difference of each kind is planted, by writing to a database, calling Credits
directly or acting at the sandbox behind Payments' back; the Reconcile RPC, the
command and the admin endpoint must each find exactly those, with their ids.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import insert, text

from billing.credits.v1 import credits_pb2, credits_pb2_grpc
from billing.payments.v1 import payments_pb2 as pb
from billing.payments.v1 import payments_pb2_grpc
from payments_svc.models import payments, refunds, stripe_events
from svckit.db import make_engine, run_transaction
from tests.support.grpc_calls import metadata, new_key
from tests.support.processes import run_module
from tests.support.purchase_stack import PurchaseStack, pay_on_hosted_page, purchase_stack, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ADMIN = "admin:ops-recon"
CARD = "4242 4242 4242 4242"


@dataclass
class Planted:
    since: datetime
    # (kind, the id that names the difference) for every planted difference.
    expected: set[tuple[str, str]]
    # Stripe ids the report must carry, by the payment id of their difference.
    intents: dict[str, str]


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def key_of(d: dict[str, Any]) -> tuple[str, str]:
    ids = d["ids"]
    name = ids.get("stripe_refund_id") if "refund_missing" in d["kind"] else None
    return d["kind"], name or ids.get("payment_id") or ids.get("event_id") or ids["reference"]


def as_dicts(response: pb.ReconcileResponse) -> list[dict[str, Any]]:
    return [
        {"kind": d.kind, "ids": dict(d.ids), "expected": d.expected, "actual": d.actual, "fix": d.fix}
        for d in response.discrepancies
    ]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PurchaseStack]:
    with purchase_stack(tmp_path_factory.mktemp("reconciliation")) as running:
        yield running


@pytest.fixture(scope="module")
def payments_grpc(stack: PurchaseStack) -> Iterator[payments_pb2_grpc.PaymentsServiceStub]:
    with grpc.insecure_channel(stack.payments.target) as channel:
        yield payments_pb2_grpc.PaymentsServiceStub(channel)


@pytest.fixture(scope="module")
def credits_grpc(stack: PurchaseStack) -> Iterator[credits_pb2_grpc.CreditsServiceStub]:
    with grpc.insecure_channel(stack.credits.target) as channel:
        yield credits_pb2_grpc.CreditsServiceStub(channel)


def reconcile(
    stub: payments_pb2_grpc.PaymentsServiceStub, since: datetime, *, skip_stripe: bool = False
) -> pb.ReconcileResponse:
    until = datetime.now(UTC) + timedelta(minutes=1)
    request = pb.ReconcileRequest(since=stamp(since), until=stamp(until), skip_stripe=skip_stripe)
    response: pb.ReconcileResponse = stub.Reconcile(request, metadata=metadata(actor=ADMIN))
    return response


def settled(stub: payments_pb2_grpc.PaymentsServiceStub, since: datetime) -> pb.ReconcileResponse:
    """A report once no grant or reversal is still on its way to Credits."""

    def quiet() -> pb.ReconcileResponse | None:
        response = reconcile(stub, since)
        return None if response.in_flight_payment_ids else response

    return wait_for(quiet, "the outbox to be sent")


def buy_and_pay(stack: PurchaseStack, user: str) -> str:
    session = stack.buy(user)
    assert pay_on_hosted_page(stack, session["url"], CARD).paid
    payment_id = str(session["payment_id"])
    wait_for(lambda: stack.polled_payment(user, payment_id).get("credits_granted"), "the payment's credits")
    return payment_id


def refund(stub: payments_pb2_grpc.PaymentsServiceStub, payment_id: str, amount: int | None = None) -> str:
    request = pb.RefundRequest(payment_id=payment_id, amount_minor=amount)
    response: pb.RefundResponse = stub.Refund(request, metadata=metadata(key=new_key(), actor=ADMIN))
    return response.stripe_refund_id


def grant_id(credits: credits_pb2_grpc.CreditsServiceStub, payment_id: str) -> str:
    found = credits.GetTransfer(credits_pb2.GetTransferRequest(reference=f"payment:{payment_id}"), metadata=metadata())
    return str(found.transfer.id)


def rewrite_ledger(stack: PurchaseStack, statement: str, **params: str) -> None:
    """Change the immutable ledger behind Credits' back (its triggers off for this transaction only)."""
    engine = make_engine(stack.credits_db, pool_size=1)
    try:
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            assert conn.execute(text(statement), params).rowcount == 1
    finally:
        engine.dispose()


def new_payment_id() -> str:
    return f"pay_{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def planted(
    stack: PurchaseStack,
    payments_grpc: payments_pb2_grpc.PaymentsServiceStub,
    credits_grpc: credits_pb2_grpc.CreditsServiceStub,
) -> Planted:
    since = datetime.now(UTC) - timedelta(minutes=1)
    user = f"recon-{uuid.uuid4().hex[:8]}"
    bought = {name: buy_and_pay(stack, user) for name in "ACDEFIKL"}
    stack.buy(user)  # a checkout never paid: nothing to reconcile
    refund(payments_grpc, bought["D"])
    refund(payments_grpc, bought["F"], 200)  # 40 of 100 credits back
    refund_k = refund(payments_grpc, bought["K"], 100)

    clean = settled(payments_grpc, since)
    assert as_dicts(clean) == []
    assert clean.stripe_checked
    assert clean.checked["payments"] == 9
    assert clean.checked["grants"] == 8
    assert clean.checked["reversals"] == 3
    assert clean.checked["stripe_refunds"] == 3

    expected: set[tuple[str, str]] = set()
    intents: dict[str, str] = {}
    engine = stack.payments_engine()

    def payments_sql(statement: Any) -> None:
        run_transaction(engine, lambda conn: conn.execute(statement))

    # The ledger against Payments.
    rewrite_ledger(
        stack, "UPDATE transfers SET reference = 'moved:' || reference WHERE reference = :r", r=f"payment:{bought['A']}"
    )
    expected.add(("paid_payment_without_grant", bought["A"]))

    orphan = f"payment:{new_payment_id()}"
    credits_grpc.Grant(
        credits_pb2.GrantRequest(
            user_id=user, amount=50, source=credits_pb2.GRANT_SOURCE_PURCHASE, reference=orphan, description="orphan"
        ),
        metadata=metadata(key=new_key()),
    )
    expected.add(("grant_without_paid_payment", orphan))

    payments_sql(payments.update().where(payments.c.id == bought["C"]).values(credits=payments.c.credits + 5))
    expected.add(("grant_amount_mismatch", bought["C"]))

    rewrite_ledger(
        stack,
        "UPDATE transfers SET reference = 'moved:' || reference WHERE reference LIKE :r",
        r=f"refund:{bought['D']}:%",
    )
    expected.add(("refund_without_reversal", bought["D"]))

    for name, amount, reference in (("E", 10, f"refund:{bought['E']}:10"), ("F", 7, f"refund:{bought['F']}:extra")):
        credits_grpc.Reverse(
            credits_pb2.ReverseRequest(
                transfer_id=grant_id(credits_grpc, bought[name]), amount=amount, reference=reference, reason="planted"
            ),
            metadata=metadata(key=new_key()),
        )
    expected.add(("reversal_without_refund", bought["E"]))
    expected.add(("reversal_amount_mismatch", bought["F"]))

    # Payments against Stripe.
    payments_sql(payments.update().where(payments.c.id == bought["I"]).values(amount_minor=payments.c.amount_minor + 1))
    expected.add(("amount_mismatch", bought["I"]))

    payments_sql(refunds.delete().where(refunds.c.stripe_refund_id == refund_k))
    expected.add(("stripe_refund_missing_in_payments", refund_k))

    unknown_refund = f"re_{uuid.uuid4().hex[:24]}"
    now = datetime.now(UTC)
    payments_sql(
        insert(refunds).values(
            stripe_refund_id=unknown_refund,
            payment_id=bought["L"],
            amount_minor=100,
            currency="usd",
            status="succeeded",
            reason="",
            actor=ADMIN,
            created_at=now,
        )
    )
    expected.add(("refund_missing_at_stripe", unknown_refund))

    # A paid payment Stripe never heard of (its credits granted, so that only Stripe differs).
    never_charged = new_payment_id()
    payments_sql(
        insert(payments).values(
            id=never_charged,
            user_id=user,
            package_id="credits-100",
            credits=100,
            amount_minor=500,
            currency="usd",
            flow="payment_intent",
            status="succeeded",
            stripe_payment_intent_id=f"pi_{uuid.uuid4().hex[:24]}",
            amount_refunded_minor=0,
            credits_granted=True,
            credits_reversed=0,
            credit_shortfall=0,
            created_at=now,
            updated_at=now,
        )
    )
    credits_grpc.Grant(
        credits_pb2.GrantRequest(
            user_id=user, amount=100, source=credits_pb2.GRANT_SOURCE_PURCHASE, reference=f"payment:{never_charged}"
        ),
        metadata=metadata(key=new_key()),
    )
    expected.add(("payment_missing_at_stripe", never_charged))

    # Paid in Payments, still waiting for a card at Stripe (its grant made by hand).
    unpaid_intent = payments_grpc.CreatePaymentIntent(
        pb.CreatePaymentIntentRequest(user_id=user, package_id="credits-100"), metadata=metadata(key=new_key())
    )
    payments_sql(payments.update().where(payments.c.id == unpaid_intent.payment_id).values(status="succeeded"))
    credits_grpc.Grant(
        credits_pb2.GrantRequest(
            user_id=user,
            amount=100,
            source=credits_pb2.GRANT_SOURCE_PURCHASE,
            reference=f"payment:{unpaid_intent.payment_id}",
        ),
        metadata=metadata(key=new_key()),
    )
    expected.add(("payment_not_succeeded_at_stripe", unpaid_intent.payment_id))
    intents[unpaid_intent.payment_id] = unpaid_intent.payment_intent_id

    rejected = f"evt_{uuid.uuid4().hex[:24]}"
    payments_sql(
        insert(stripe_events).values(
            event_id=rejected,
            type="payment_intent.succeeded",
            payload="{not json",
            status="rejected",
            detail="the event is not valid JSON",
            received_at=now,
            redrives=0,
        )
    )
    expected.add(("event_rejected", rejected))

    # Paid at Stripe while Payments hears nothing: webhooks held from here to the end.
    stack.control("webhooks/pause")
    behind = payments_grpc.CreatePaymentIntent(
        pb.CreatePaymentIntentRequest(user_id=user, package_id="credits-100"), metadata=metadata(key=new_key())
    )
    stack.stripe.v1.payment_intents.confirm(behind.payment_intent_id, params={"payment_method": "pm_card_visa"})
    expected.add(("stripe_payment_not_paid_in_payments", behind.payment_id))
    intents[behind.payment_id] = behind.payment_intent_id

    ghost = new_payment_id()
    outside = stack.stripe.v1.payment_intents.create(
        params={
            "amount": 500,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "metadata": {"payment_id": ghost, "user_id": user, "package_id": "credits-100", "credits": "100"},
        }
    )
    assert outside.status == "succeeded"
    expected.add(("stripe_payment_missing_in_payments", ghost))
    intents[ghost] = str(outside.id)
    engine.dispose()
    return Planted(since, expected, intents)


def test_every_planted_difference_is_found_with_its_ids(
    planted: Planted, payments_grpc: payments_pb2_grpc.PaymentsServiceStub
) -> None:
    report = as_dicts(reconcile(payments_grpc, planted.since))

    assert sorted(key_of(d) for d in report) == sorted(planted.expected)
    kinds = {d["kind"] for d in report}
    assert len(kinds) == 14, kinds
    for d in report:
        assert all(d[part] for part in ("expected", "actual", "fix")), d
        payment_id = d["ids"].get("payment_id", "")
        if payment_id in planted.intents:
            assert d["ids"]["stripe_payment_intent_id"] == planted.intents[payment_id], d
    without_grant = next(d for d in report if d["kind"] == "paid_payment_without_grant")
    assert without_grant["ids"]["reference"] == f"payment:{without_grant['ids']['payment_id']}"
    assert without_grant["ids"]["stripe_payment_intent_id"].startswith("pi_")
    mismatch = next(d for d in report if d["kind"] == "reversal_amount_mismatch")
    assert (mismatch["expected"].split()[0], mismatch["actual"].split()[0]) == ("40", "47")


def test_without_stripe_only_the_ledger_and_inbox_differences_are_found(
    planted: Planted, payments_grpc: payments_pb2_grpc.PaymentsServiceStub
) -> None:
    response = reconcile(payments_grpc, planted.since, skip_stripe=True)
    ledger_kinds = {
        "paid_payment_without_grant",
        "grant_without_paid_payment",
        "grant_amount_mismatch",
        "refund_without_reversal",
        "reversal_without_refund",
        "reversal_amount_mismatch",
        "event_rejected",
    }
    assert not response.stripe_checked
    assert sorted(key_of(d) for d in as_dicts(response)) == sorted(k for k in planted.expected if k[0] in ledger_kinds)


def test_the_command_prints_progress_and_the_report_and_exits_1(stack: PurchaseStack, planted: Planted) -> None:
    until = datetime.now(UTC) + timedelta(minutes=1)
    done = run_module(
        "payments_svc",
        "reconcile",
        "--since",
        planted.since.isoformat(),
        "--until",
        until.isoformat(),
        env=stack.payments.env,
    )
    assert done.returncode == 1, done.stderr
    progress = [line for line in done.stderr.splitlines() if line.startswith("reconcile: ")]
    phases = {line.split(": ")[1] for line in progress}
    assert {"payments", "credits grants", "credits reversals", "stripe payment intents", "stripe refunds"} <= phases
    report = json.loads(done.stdout)
    assert sorted(key_of(d) for d in report["discrepancies"]) == sorted(planted.expected)

    refused = run_module("payments_svc", "reconcile", "--since", "yesterday", env=stack.payments.env)
    assert refused.returncode == 2
    assert "ISO 8601" in refused.stderr


def test_the_admin_endpoint_answers_the_report_to_admins_only(stack: PurchaseStack, planted: Planted) -> None:
    today = datetime.now(UTC).date()
    body = {"since": (today - timedelta(days=1)).isoformat(), "until": (today + timedelta(days=1)).isoformat()}

    keyed = {"Idempotency-Key": new_key()}
    user = {**stack.as_user("not-an-admin"), **keyed}
    refused = stack.http.post("/api/admin/reconciliation", headers=user, json=body)
    assert refused.status_code == 403, refused.text

    admin = {**stack.as_user("ops-recon", ("user", "admin")), **keyed}
    answered = stack.http.post("/api/admin/reconciliation", headers=admin, json=body)
    assert answered.status_code == 200, answered.text
    report = answered.json()
    assert report["stripe"] is True
    assert sorted(key_of(d) for d in report["discrepancies"]) == sorted(planted.expected)

    too_long = {"since": "2024-01-01", "until": "2024-03-01"}
    assert stack.http.post("/api/admin/reconciliation", headers=admin, json=too_long).status_code == 400
