"""Random batches of concurrent spends, holds, captures and releases on PostgreSQL keep every invariant.

Hypothesis draws a sequence of batches; each batch runs at once, one thread per
operation, each in its own PostgreSQL transaction, against two wallets with lots
of different priorities and expiries. Which operations win a race is not
predictable; what must hold after every batch is:

- the ledger check passes (each wallet equals the sum of its lots, each lot its
  amount plus its movements, the held account the open holds, transfers balance);
- credits are conserved: granted = spendable + held + spent (captures included);
- every successful spend or hold drew exactly its amount, from lots in
  consumption order with no lot drawn past what it held;
- a hold is settled at most once: of two concurrent settles, one wins.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from credits_svc import domain, lots
from credits_svc.hold_service import HoldResult, HoldService
from credits_svc.models import idempotency_records
from credits_svc.service import CreditsService, new_transfer_id
from svckit.actors import Actor, ActorKind
from svckit.errors import BillingError
from svckit.idempotency import IdempotencyStore, IdempotentCall
from tests.support.databases import postgres_database, postgres_problem
from tests.support.ledger import check_ledger, migrated_engine

pytestmark = pytest.mark.postgres

ADMIN = Actor(ActorKind.ADMIN, "concurrency-property")
R = TypeVar("R")


@dataclass
class Wallet:
    user: str
    granted: int = 0
    spent: int = 0
    open_holds: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Op:
    kind: str  # spend, hold, capture, release
    who: int
    amount: int


OPS = st.builds(
    Op,
    kind=st.sampled_from(["spend", "hold", "capture", "release", "capture", "spend"]),
    who=st.integers(0, 1),
    amount=st.integers(1, 40),
)
BATCHES = st.lists(st.lists(OPS, min_size=2, max_size=8), min_size=1, max_size=6)


def call(method: str) -> IdempotentCall:
    return IdempotentCall.for_request("concurrency-property", uuid.uuid4().hex, method, uuid.uuid4().bytes)


def keep(into: list[R]) -> Callable[[R], bytes]:
    """An encoder that keeps the use case's result (the response bytes do not matter here)."""

    def encode(result: R) -> bytes:
        into.append(result)
        return b"-"

    return encode


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    if postgres_problem() is not None:
        pytest.skip("PostgreSQL not reachable")
    with postgres_database() as url:
        engine = migrated_engine(url, pool_size=16)
        try:
            yield engine
        finally:
            engine.dispose()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=BATCHES)
def test_concurrent_batches_keep_every_invariant(engine: Engine, batches: list[list[Op]]) -> None:
    store = IdempotencyStore(idempotency_records)
    service = CreditsService(engine, store)
    holds = HoldService(engine, store, new_transfer_id)
    wallets = [Wallet(f"cp-{uuid.uuid4().hex[:10]}") for _ in range(2)]
    now = datetime.now(UTC)
    for n, wallet in enumerate(wallets):
        for source, amount, expires in (
            (domain.GrantSource.PURCHASE, 60, None),
            (domain.GrantSource.PROMOTION, 30, now + timedelta(hours=1)),
            (domain.GrantSource.SUBSCRIPTION, 45 + n, now + timedelta(hours=2)),
        ):
            terms = domain.LotTerms(expires_at=expires)
            cmd = domain.GrantCredits(wallet.user, amount, source, uuid.uuid4().hex, terms=terms)
            service.grant(ADMIN, cmd, call("grant"), lambda result: b"-")
            wallet.granted += amount

    def run(op: Op) -> Callable[[], tuple[Op, object]]:
        wallet = wallets[op.who]

        def spend() -> tuple[Op, object]:
            got: list[domain.TransferResult] = []
            cmd = domain.SpendCredits(wallet.user, op.amount, uuid.uuid4().hex)
            service.spend(ADMIN, cmd, call("spend"), keep(got))
            return op, got[0]

        def hold() -> tuple[Op, object]:
            got: list[HoldResult] = []
            cmd = lots.PlaceHold(wallet.user, op.amount, uuid.uuid4().hex, timedelta(minutes=10))
            holds.place(ADMIN, cmd, call("hold"), keep(got))
            return op, got[0]

        def settle(capture: bool) -> Callable[[], tuple[Op, object]]:
            def go() -> tuple[Op, object]:
                if not wallet.open_holds:
                    return op, None
                hold_id = sorted(wallet.open_holds)[op.amount % len(wallet.open_holds)]
                got: list[HoldResult] = []
                if capture:
                    amount = min(op.amount, wallet.open_holds[hold_id])
                    cmd = lots.CaptureHold(hold_id, amount)
                    holds.capture(ADMIN, cmd, call("capture"), keep(got))
                else:
                    holds.release(ADMIN, hold_id, call("release"), keep(got))
                return op, got[0]

            return go

        return {"spend": spend, "hold": hold, "capture": settle(True), "release": settle(False)}[op.kind]

    for batch in batches:
        with ThreadPoolExecutor(max_workers=len(batch)) as pool:
            futures = [pool.submit(run(op)) for op in batch]
            outcomes = []
            for future in futures:
                try:
                    outcomes.append(future.result())
                except (domain.InsufficientCredits, lots.HoldSettled):
                    continue  # lost a race or the wallet ran dry: refused, nothing written
                except BillingError as error:
                    pytest.fail(f"unexpected refusal: {error!r}")
        settled: set[str] = set()
        for op, result in outcomes:
            wallet = wallets[op.who]
            if isinstance(result, domain.TransferResult):
                assert sum(d.amount for d in result.transfer.draws) == op.amount
                wallet.spent += op.amount
            elif isinstance(result, HoldResult) and result.hold.status is lots.HoldStatus.OPEN:
                assert sum(d.amount for d in result.draws) == op.amount
                wallet.open_holds[result.hold.id] = op.amount
            elif isinstance(result, HoldResult):
                assert result.hold.id not in settled, "a hold was settled twice"
                settled.add(result.hold.id)
                wallet.spent += result.hold.captured
                wallet.open_holds.pop(result.hold.id)
        report = check_ledger(engine)
        assert report.balanced, report
        for wallet in wallets:
            balance = service.get_balance(ADMIN, wallet.user)
            assert balance.held == sum(wallet.open_holds.values())
            assert wallet.granted == balance.balance + balance.held + wallet.spent
