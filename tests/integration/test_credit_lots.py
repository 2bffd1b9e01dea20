"""Lots, holds and expiry on PostgreSQL: over real sockets, under concurrency, and with the expiry job raced.

The first tests go through a real Credits server. The expiry tests drive the
service and the job directly on a PostgreSQL database with a clock they control,
so that credits can expire without waiting for real time to pass.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Engine, func, select

from billing.common.v1.money_pb2 import Money
from billing.credits.v1 import credits_pb2 as pb
from credits_svc import domain, lots
from credits_svc.expiry import ExpiryRun, run_expiry
from credits_svc.hold_service import HoldResult, HoldService
from credits_svc.lot_store import LotRepository
from credits_svc.models import credit_lots, idempotency_records, transfers
from credits_svc.service import CreditsService, new_transfer_id
from credits_svc.wallet import DRAW_BATCH
from svckit.actors import Actor, ActorKind
from svckit.db import run_transaction
from svckit.idempotency import IdempotencyStore, IdempotentCall
from tests.support.grpc_calls import credits_stub, details, metadata, new_key
from tests.support.ledger import check_ledger, migrated_engine
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.postgres

ADMIN = Actor(ActorKind.ADMIN, "lots-test")


def user() -> str:
    return f"u-{uuid.uuid4().hex[:12]}"


def in_future(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime.now(UTC) + timedelta(seconds=seconds))
    return stamp


async def grant(stub: Any, user_id: str, amount: int, **lot: Any) -> pb.GrantResponse:
    response: pb.GrantResponse = await stub.Grant(
        pb.GrantRequest(user_id=user_id, amount=amount, reference=new_key(), **lot),
        metadata=metadata(key=new_key()),
    )
    return response


# --- over the wire ------------------------------------------------------------------------


def test_a_spend_draws_by_priority_then_soonest_expiry_then_oldest(credits_server_pg: ServiceProcess) -> None:
    async def scenario() -> tuple[list[str], pb.SpendResponse, pb.GetTransferResponse, pb.ListLotsResponse]:
        async with grpc.aio.insecure_channel(credits_server_pg.target) as channel:
            stub = credits_stub(channel)
            wallet = user()
            paid = await grant(
                stub, wallet, 10, source=pb.GRANT_SOURCE_PURCHASE, value=Money(currency="usd", amount_minor=1000)
            )
            late = await grant(stub, wallet, 10, source=pb.GRANT_SOURCE_SUBSCRIPTION, expire_time=in_future(7200))
            soon = await grant(stub, wallet, 10, source=pb.GRANT_SOURCE_SUBSCRIPTION, expire_time=in_future(3600))
            promo = await grant(stub, wallet, 10, source=pb.GRANT_SOURCE_PROMOTION)
            first = await grant(stub, wallet, 10, source=pb.GRANT_SOURCE_PURCHASE, priority=0)
            order = [first, promo, soon, late, paid]
            spent = await stub.Spend(
                pb.SpendRequest(user_id=wallet, amount=45, reference=new_key()), metadata=metadata(key=new_key())
            )
            read = await stub.GetTransfer(pb.GetTransferRequest(transfer_id=spent.transfer.id), metadata=metadata())
            listed = await stub.ListLots(pb.ListLotsRequest(user_id=wallet), metadata=metadata())
            return [g.transfer.id for g in order], spent, read, listed

    order, spent, read, listed = asyncio.run(scenario())
    assert [(d.lot_id, d.amount) for d in spent.transfer.draws] == [
        (order[0], 10),
        (order[1], 10),
        (order[2], 10),
        (order[3], 10),
        (order[4], 5),
    ]
    assert list(read.transfer.draws) == list(spent.transfer.draws)
    assert [(lot.id, lot.remaining, lot.category) for lot in listed.lots] == [(order[4], 5, pb.LOT_CATEGORY_PAID)]
    assert listed.lots[0].value == Money(currency="usd", amount_minor=1000)


def test_concurrent_spends_holds_and_captures_never_spend_a_credit_twice(credits_server_pg: ServiceProcess) -> None:
    """40 spends, 40 holds and their captures race over 3 lots holding 300 credits."""

    async def scenario() -> tuple[list[Any], pb.GetBalanceResponse, pb.ListLotsResponse, pb.CheckLedgerResponse]:
        async with grpc.aio.insecure_channel(credits_server_pg.target) as channel:
            stub = credits_stub(channel)
            wallet = user()
            for source in (pb.GRANT_SOURCE_PURCHASE, pb.GRANT_SOURCE_PROMOTION, pb.GRANT_SOURCE_SUBSCRIPTION):
                await grant(stub, wallet, 100, source=source)

            async def spend(i: int) -> tuple[str, int]:
                response = await stub.Spend(
                    pb.SpendRequest(user_id=wallet, amount=5, reference=f"job:{wallet}:s{i}"),
                    metadata=metadata(key=new_key()),
                )
                assert sum(d.amount for d in response.transfer.draws) == 5
                return "spent", 5

            async def hold_and_capture(i: int) -> tuple[str, int]:
                held = await stub.Hold(
                    pb.HoldRequest(user_id=wallet, amount=6, reference=f"job:{wallet}:h{i}", timeout_seconds=600),
                    metadata=metadata(key=new_key()),
                )
                assert sum(d.amount for d in held.hold.draws) == 6
                if i % 3 == 0:
                    await stub.ReleaseHold(
                        pb.ReleaseHoldRequest(hold_id=held.hold.id), metadata=metadata(key=new_key())
                    )
                    return "released", 0
                amount = 6 if i % 3 == 1 else 2
                captured = await stub.CaptureHold(
                    pb.CaptureHoldRequest(hold_id=held.hold.id, amount=amount), metadata=metadata(key=new_key())
                )
                assert captured.hold.status == pb.HOLD_STATUS_CAPTURED
                # Capturing again is refused: the hold is settled.
                with pytest.raises(grpc.aio.AioRpcError) as again:
                    await stub.CaptureHold(
                        pb.CaptureHoldRequest(hold_id=held.hold.id), metadata=metadata(key=new_key())
                    )
                assert details(again.value).reason == "HOLD_SETTLED"
                return "captured", amount

            calls = [spend(i) for i in range(40)] + [hold_and_capture(i) for i in range(40)]
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
            balance = await stub.GetBalance(pb.GetBalanceRequest(user_id=wallet), metadata=metadata())
            listed = await stub.ListLots(pb.ListLotsRequest(user_id=wallet), metadata=metadata())
            report = await stub.CheckLedger(pb.CheckLedgerRequest(), metadata=metadata())
            return outcomes, balance, listed, report

    outcomes, balance, listed, report = asyncio.run(scenario())
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert {details(e).reason for e in refused} <= {"INSUFFICIENT_CREDITS"}
    unexpected = [o for o in outcomes if not isinstance(o, tuple | grpc.aio.AioRpcError)]
    assert not unexpected, unexpected
    used = sum(outcome[1] for outcome in outcomes if isinstance(outcome, tuple))
    assert used > 0
    assert balance.held == 0
    assert balance.balance == 300 - used
    assert sum(lot.remaining for lot in listed.lots) == balance.balance
    assert report.balanced, report


def test_held_credits_cannot_be_spent_and_release_gives_them_back(credits_server_pg: ServiceProcess) -> None:
    async def scenario() -> tuple[grpc.aio.AioRpcError, pb.GetBalanceResponse, pb.GetBalanceResponse, Any]:
        async with grpc.aio.insecure_channel(credits_server_pg.target) as channel:
            stub = credits_stub(channel)
            wallet = user()
            await grant(stub, wallet, 50, source=pb.GRANT_SOURCE_PURCHASE)
            held = await stub.Hold(
                pb.HoldRequest(user_id=wallet, amount=40, reference=new_key()), metadata=metadata(key=new_key())
            )
            during = await stub.GetBalance(pb.GetBalanceRequest(user_id=wallet), metadata=metadata())
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Spend(
                    pb.SpendRequest(user_id=wallet, amount=20, reference=new_key()), metadata=metadata(key=new_key())
                )
            release_key = new_key()
            released = await stub.ReleaseHold(
                pb.ReleaseHoldRequest(hold_id=held.hold.id), metadata=metadata(key=release_key)
            )
            replayed = await stub.ReleaseHold(
                pb.ReleaseHoldRequest(hold_id=held.hold.id), metadata=metadata(key=release_key)
            )
            after = await stub.GetBalance(pb.GetBalanceRequest(user_id=wallet), metadata=metadata())
            return refused.value, during, after, (released, replayed)

    refused, during, after, (released, replayed) = asyncio.run(scenario())
    assert details(refused).reason == "INSUFFICIENT_CREDITS"
    assert (during.balance, during.held) == (10, 40)
    assert (after.balance, after.held) == (50, 0)
    assert released.hold.status == pb.HOLD_STATUS_RELEASED
    assert replayed == released


def test_a_refund_takes_back_only_from_the_lot_its_payment_created(credits_server_pg: ServiceProcess) -> None:
    async def scenario() -> tuple[pb.ReverseResponse, pb.ListLotsResponse, pb.GetBalanceResponse]:
        async with grpc.aio.insecure_channel(credits_server_pg.target) as channel:
            stub = credits_stub(channel)
            wallet = user()
            # Paid credits are spent after promotional ones; the spend takes 30 promo + 10 paid.
            bought = await grant(stub, wallet, 50, source=pb.GRANT_SOURCE_PURCHASE)
            await grant(stub, wallet, 30, source=pb.GRANT_SOURCE_PROMOTION)
            await stub.Spend(
                pb.SpendRequest(user_id=wallet, amount=40, reference=new_key()), metadata=metadata(key=new_key())
            )
            refund = await stub.Reverse(
                pb.ReverseRequest(
                    transfer_id=bought.transfer.id,
                    reference=new_key(),
                    shortfall_policy=pb.SHORTFALL_POLICY_REVERSE_AVAILABLE,
                ),
                metadata=metadata(key=new_key()),
            )
            listed = await stub.ListLots(pb.ListLotsRequest(user_id=wallet), metadata=metadata())
            balance = await stub.GetBalance(pb.GetBalanceRequest(user_id=wallet), metadata=metadata())
            return refund, listed, balance

    refund, listed, balance = asyncio.run(scenario())
    # 10 of the 50 were spent: 40 come back out of the purchase's lot, 10 are the shortfall.
    assert (refund.transfer.amount, refund.shortfall, refund.remaining) == (40, 10, 10)
    assert list(listed.lots) == []
    assert balance.balance == 0


# --- expiry, with a clock the test controls -------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def ledger(pg_database: str) -> Iterator[tuple[Engine, CreditsService, HoldService, Clock]]:
    engine = migrated_engine(pg_database, pool_size=12)
    clock = Clock()
    store = IdempotencyStore(idempotency_records)
    try:
        yield (
            engine,
            CreditsService(engine, store, clock=clock),
            HoldService(engine, store, new_transfer_id, clock=clock),
            clock,
        )
    finally:
        engine.dispose()


def call(method: str) -> IdempotentCall:
    return IdempotentCall.for_request("lots-test", uuid.uuid4().hex, method, uuid.uuid4().bytes)


def encode(result: object) -> bytes:
    return b"-"


def test_the_expiry_job_run_twice_at_once_moves_each_remainder_once(
    ledger: tuple[Engine, CreditsService, HoldService, Clock],
) -> None:
    engine, service, holds, clock = ledger
    users = [user() for _ in range(60)]
    expected: dict[str, int] = {}
    for n, wallet in enumerate(users):
        for k in range(3):
            terms = domain.LotTerms(expires_at=clock.now + timedelta(minutes=10 + k))
            cmd = domain.GrantCredits(wallet, 10 + k, domain.GrantSource.SUBSCRIPTION, new_key(), terms=terms)
            service.grant(ADMIN, cmd, call("grant"), encode)
        # A few credits of the soonest lot are spent; a promotion granted afterwards never expires.
        service.spend(ADMIN, domain.SpendCredits(wallet, 1 + n % 5, new_key()), call("spend"), encode)
        service.grant(ADMIN, domain.GrantCredits(wallet, 7, domain.GrantSource.PROMOTION, new_key()), call("g"), encode)
        expected[wallet] = 10 + 11 + 12 - (1 + n % 5)
    clock.now += timedelta(minutes=30)

    runs: list[ExpiryRun] = []
    barrier = threading.Barrier(2)

    def job() -> None:
        barrier.wait()
        runs.append(run_expiry(engine, holds, new_transfer_id, clock=clock))

    threads = [threading.Thread(target=job) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    third = run_expiry(engine, holds, new_transfer_id, clock=clock)

    assert sum(run.lots_expired for run in runs) == 3 * len(users)
    assert sum(run.credits_expired for run in runs) == sum(expected.values())
    assert (third.lots_expired, third.credits_expired) == (0, 0)

    def read(conn: Any) -> tuple[Counter[str], dict[str, int]]:
        per_lot = Counter(
            row.reference.split(":")[1]
            for row in conn.execute(select(transfers.c.reference).where(transfers.c.kind == "expiry"))
        )
        expired = dict(
            conn.execute(
                select(credit_lots.c.user_id, func.sum(credit_lots.c.expired_amount)).group_by(credit_lots.c.user_id)
            ).all()
        )
        return per_lot, {k: int(v) for k, v in expired.items()}

    per_lot, expired = run_transaction(engine, read, read_only=True)
    assert set(per_lot.values()) == {1}
    assert len(per_lot) == 3 * len(users)
    assert {u: expired[u] for u in users} == expected
    assert {service.get_balance(ADMIN, wallet).balance for wallet in users} == {7}
    report = check_ledger(engine)
    assert report.balanced, report


def test_an_expired_lot_is_never_spent_even_before_the_job_runs(
    ledger: tuple[Engine, CreditsService, HoldService, Clock],
) -> None:
    engine, service, _, clock = ledger
    wallet = user()
    terms = domain.LotTerms(expires_at=clock.now + timedelta(minutes=1))
    service.grant(
        ADMIN, domain.GrantCredits(wallet, 30, domain.GrantSource.PROMOTION, new_key(), terms=terms), call("g"), encode
    )
    service.grant(ADMIN, domain.GrantCredits(wallet, 5, domain.GrantSource.PURCHASE, new_key()), call("g"), encode)
    clock.now += timedelta(minutes=2)
    assert service.get_balance(ADMIN, wallet).balance == 5
    with pytest.raises(domain.InsufficientCredits):
        service.spend(ADMIN, domain.SpendCredits(wallet, 6, new_key()), call("spend"), encode)
    service.spend(ADMIN, domain.SpendCredits(wallet, 5, new_key()), call("spend"), encode)
    lots_now = run_transaction(engine, lambda conn: LotRepository(conn).list_lots(wallet, with_empty=True))
    assert sorted((lot.remaining, lot.expired_amount) for lot in lots_now) == [(0, 0), (0, 30)]
    assert check_ledger(engine).balanced


def test_a_hold_past_its_timeout_is_released_by_the_job_and_cannot_be_captured(
    ledger: tuple[Engine, CreditsService, HoldService, Clock],
) -> None:
    engine, service, holds, clock = ledger
    wallet = user()
    service.grant(ADMIN, domain.GrantCredits(wallet, 20, domain.GrantSource.PURCHASE, new_key()), call("g"), encode)
    results: list[HoldResult] = []

    def keep(result: HoldResult) -> bytes:
        results.append(result)
        return b"-"

    holds.place(ADMIN, lots.PlaceHold(wallet, 15, new_key(), timedelta(minutes=5)), call("hold"), keep)
    hold_id = results[0].hold.id
    clock.now += timedelta(minutes=6)
    with pytest.raises(lots.HoldSettled, match="expired"):
        holds.capture(ADMIN, lots.CaptureHold(hold_id, None), call("capture"), encode)
    runs = [run_expiry(engine, holds, new_transfer_id, clock=clock) for _ in range(2)]
    assert [run.holds_released for run in runs] == [1, 0]
    hold, _ = holds.get(ADMIN, hold_id)
    assert hold.status is lots.HoldStatus.EXPIRED
    balance = service.get_balance(ADMIN, wallet)
    assert (balance.balance, balance.held) == (20, 0)
    assert check_ledger(engine).balanced


def test_liability_counts_outstanding_value_breakage_and_deferred_revenue(
    ledger: tuple[Engine, CreditsService, HoldService, Clock],
) -> None:
    engine, service, holds, clock = ledger
    wallet = user()
    usd = domain.LotTerms(value_minor=1000, currency="usd")
    service.grant(
        ADMIN, domain.GrantCredits(wallet, 100, domain.GrantSource.PURCHASE, new_key(), terms=usd), call("g"), encode
    )
    expiring = domain.LotTerms(expires_at=clock.now + timedelta(minutes=1), value_minor=500, currency="usd")
    service.grant(
        ADMIN,
        domain.GrantCredits(wallet, 50, domain.GrantSource.SUBSCRIPTION, new_key(), terms=expiring),
        call("g"),
        encode,
    )
    service.grant(ADMIN, domain.GrantCredits(wallet, 20, domain.GrantSource.PROMOTION, new_key()), call("g"), encode)
    # 20 promo + 10 of the subscription's go first; then 25 paid are held.
    service.spend(ADMIN, domain.SpendCredits(wallet, 30, new_key()), call("spend"), encode)
    before = service.liability(ADMIN, 0)
    by = {c.category: c for c in before.by_category}
    assert (by[lots.LotCategory.PROMOTIONAL].credits, by[lots.LotCategory.SUBSCRIPTION].credits) == (0, 40)
    assert by[lots.LotCategory.SUBSCRIPTION].value_minor == {"usd": 400}
    clock.now += timedelta(minutes=2)
    run_expiry(engine, holds, new_transfer_id, clock=clock)
    holds.place(ADMIN, lots.PlaceHold(wallet, 25, new_key(), timedelta(minutes=5)), call("hold"), encode)
    after = service.liability(ADMIN, 0)
    by = {c.category: c for c in after.by_category}
    assert (by[lots.LotCategory.PAID].credits, by[lots.LotCategory.PAID].held) == (75, 25)
    assert by[lots.LotCategory.PAID].value_minor == {"usd": 1000}
    assert after.deferred_revenue_minor == {"usd": 1000}
    assert [(b.category, b.credits, b.value_minor) for b in after.breakage] == [
        (lots.LotCategory.SUBSCRIPTION, 40, {"usd": 400})
    ]
    assert after.breakage[0].month == clock.now.strftime("%Y-%m")


def test_a_spend_and_a_sweep_reach_past_the_first_batch_of_lots(
    ledger: tuple[Engine, CreditsService, HoldService, Clock],
) -> None:
    """More lots than a spend reads at first (DRAW_BATCH): 40 expiring lots, then 40 that do not expire."""
    engine, service, _, clock = ledger
    wallet = user()
    assert DRAW_BATCH < 40
    soon = domain.LotTerms(expires_at=clock.now + timedelta(minutes=1))
    for _ in range(40):
        cmd = domain.GrantCredits(wallet, 2, domain.GrantSource.PROMOTION, new_key(), terms=soon)
        service.grant(ADMIN, cmd, call("g"), encode)
    kept = []
    for n in range(40):
        clock.now += timedelta(milliseconds=1)
        kept.append(keep_id(service, domain.GrantCredits(wallet, 1 + n % 3, domain.GrantSource.PURCHASE, new_key())))
    clock.now += timedelta(minutes=2)
    results: list[domain.TransferResult] = []

    def spent(result: domain.TransferResult) -> bytes:
        results.append(result)
        return b"-"

    total = sum(1 + n % 3 for n in range(40))
    service.spend(ADMIN, domain.SpendCredits(wallet, total, new_key()), call("spend"), spent)
    assert [d.lot_id for d in results[0].transfer.draws] == kept
    assert results[0].balance == 0
    expired = run_transaction(engine, lambda conn: LotRepository(conn).list_lots(wallet, with_empty=True))
    assert sum(lot.expired_amount for lot in expired) == 80
    assert check_ledger(engine).balanced


def keep_id(service: CreditsService, cmd: domain.GrantCredits) -> str:
    found: list[str] = []

    def keep(result: domain.TransferResult) -> bytes:
        found.append(result.transfer.id)
        return b"-"

    service.grant(ADMIN, cmd, call("g"), keep)
    return found[0]
