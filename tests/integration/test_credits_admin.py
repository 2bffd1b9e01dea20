"""Admin reads of the Credits service over a real server: totals, transfers, the audit log.

Totals are checked against sums computed directly from `transfers` in SQL, for
random ranges, before and after the rollup ran and with transfers the rollup has
not seen yet. History is written through the real service with a clock set in the
past (the only way to have transfers of other days); the server under test reads it.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from billing.credits.v1 import credits_pb2 as pb
from billing.credits.v1 import credits_pb2_grpc
from credits_svc import domain
from credits_svc.rollup import roll_up
from credits_svc.service import CreditsService
from svckit.actors import Actor, ActorKind
from svckit.idempotency import IdempotentCall
from tests.support.databases import postgres_database
from tests.support.grpc_calls import details, metadata, new_key
from tests.support.ledger import check_ledger, credits_service, migrated_engine
from tests.support.processes import ServiceProcess, credits_process

ADMIN = Actor(ActorKind.ADMIN, "seeder")
SOURCES = list(domain.GrantSource)
SOURCE_PB = {
    domain.GrantSource.PURCHASE: pb.GRANT_SOURCE_PURCHASE,
    domain.GrantSource.SUBSCRIPTION: pb.GRANT_SOURCE_SUBSCRIPTION,
    domain.GrantSource.PROMOTION: pb.GRANT_SOURCE_PROMOTION,
    domain.GrantSource.ADJUSTMENT: pb.GRANT_SOURCE_ADJUSTMENT,
}


# --- helpers ------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def stamp(moment: datetime) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(moment)
    return result


def call(name: str = "op") -> IdempotentCall:
    return IdempotentCall.for_request("test", uuid.uuid4().hex, name, b"")


def seed(
    service: CreditsService, clock: Clock, rng: random.Random, count: int, *, start: datetime, span: timedelta
) -> None:
    """`count` grants, spends and reversals at random times in [start, start + span), through the service."""
    users = [f"u{rng.randrange(10**9)}" for _ in range(8)]
    grants: list[str] = []
    spends: list[str] = []
    for _ in range(count):
        clock.now = start + timedelta(seconds=rng.uniform(0, span.total_seconds()))
        user = rng.choice(users)
        roll = rng.random()
        try:
            if roll < 0.5 or not grants:
                cmd = domain.GrantCredits(user, rng.randint(1, 500), rng.choice(SOURCES), reference=new_key())
                outcome = service.grant(ADMIN, cmd, call(), lambda r: r.transfer.id.encode())
                grants.append(outcome.response.decode())
            elif roll < 0.85:
                spend = domain.SpendCredits(user, rng.randint(1, 60), reference=new_key())
                outcome = service.spend(ADMIN, spend, call(), lambda r: r.transfer.id.encode())
                spends.append(outcome.response.decode())
            else:
                original = rng.choice(grants + spends)
                reverse = domain.ReverseTransfer(
                    original, None, reference=new_key(), policy=domain.ShortfallPolicy.REVERSE_AVAILABLE
                )
                service.reverse(ADMIN, reverse, call(), lambda r: b"")
        except (domain.InsufficientCredits, domain.NotReversible):
            continue


def direct_totals(engine: Engine, since: datetime, until: datetime) -> dict[str, Any]:
    """The same figures, summed straight from the transfers table (and the wallets' balances)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT kind, coalesce(source, '') AS source, sum(amount) AS amount FROM transfers "
                "WHERE created_at >= :since AND created_at < :until GROUP BY kind, source"
            ),
            {"since": since, "until": until},
        ).all()
        outstanding = conn.execute(text("SELECT coalesce(sum(balance), 0) FROM accounts WHERE kind = 'wallet'"))
        wallets = int(outstanding.scalar_one())
    by_source = {source.value: 0 for source in SOURCES}
    totals = {"granted": 0, "spent": 0, "reversed": 0}
    for row in rows:
        amount = int(row.amount)
        if row.kind == "grant":
            by_source[row.source] += amount
            totals["granted"] += amount
        elif row.kind == "spend":
            totals["spent"] += amount
        else:
            totals["reversed"] += amount
    return {**totals, "expired": 0, "outstanding": wallets, "by_source": by_source}


def served_totals(stub: Any, since: datetime, until: datetime) -> dict[str, Any]:
    response = stub.GetCreditTotals(
        pb.GetCreditTotalsRequest(since=stamp(since), until=stamp(until)), metadata=metadata(actor="admin:ops")
    )
    source_names = {value: key.value for key, value in SOURCE_PB.items()}
    return {
        "granted": response.granted,
        "spent": response.spent,
        "reversed": response.reversed,
        "expired": response.expired,
        "outstanding": response.outstanding,
        "by_source": {source_names[s.source]: s.granted for s in response.granted_by_source},
    }


def random_ranges(
    rng: random.Random, start: datetime, end: datetime, count: int
) -> Iterator[tuple[datetime, datetime]]:
    span = (end - start).total_seconds()
    yield start - timedelta(days=1), end + timedelta(days=1)  # everything
    yield start.replace(minute=0, second=0, microsecond=0), end.replace(minute=0, second=0, microsecond=0)
    for _ in range(count):
        a = start + timedelta(seconds=rng.uniform(-3600, span + 3600))
        b = a + timedelta(
            seconds=rng.choice([rng.uniform(1, 3600), rng.uniform(3600, span), 0.000001 * rng.randint(1, 9)])
        )
        yield a, b


def assert_exact(stub: Any, engine: Engine, rng: random.Random, start: datetime, end: datetime) -> None:
    for since, until in random_ranges(rng, start, end, 40):
        assert served_totals(stub, since, until) == direct_totals(engine, since, until), (since, until)


def watermark(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT last_entry_id, (SELECT coalesce(max(id), 0) FROM ledger_entries) FROM ledger_rollup_state")
        ).one()
    return int(row[0]), int(row[1])


def assert_rollup_counts_each_transfer_once(engine: Engine) -> None:
    """Hourly rows equal the transfers' own sums and counts per hour; the watermark covers them all."""
    with engine.connect() as conn:
        rolled = conn.execute(
            text("SELECT hour, kind, source, amount, count FROM ledger_hourly_totals ORDER BY 1, 2, 3")
        ).all()
        direct = conn.execute(
            text(
                "SELECT date_trunc('hour', created_at, 'UTC') AS hour, kind, coalesce(source, '') AS source, "
                "sum(amount) AS amount, count(*) AS count FROM transfers GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
            )
        ).all()
    done, last = watermark(engine)
    if [tuple(r) for r in rolled] != [tuple(r) for r in direct]:
        with engine.connect() as conn:
            recent = conn.execute(
                text(
                    "SELECT e.id, e.amount, t.kind, t.amount, t.created_at, t.xmin FROM ledger_entries e"
                    " JOIN transfers t ON t.id = e.transfer_id ORDER BY e.id DESC LIMIT 12"
                )
            ).all()
        raise AssertionError(f"rollup differs: watermark {done}/{last}; {set(rolled) ^ set(direct)}; {recent}")
    assert done == last


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def admin_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    with postgres_database("billing_credits_admin") as url:
        yield url, tmp_path_factory.mktemp("credits_admin")


@pytest.fixture(scope="module")
def server(admin_db: tuple[str, Path]) -> Iterator[ServiceProcess]:
    """A Credits server whose periodic rollup does not run during the tests (the CLI runs it on demand)."""
    url, workdir = admin_db
    process = credits_process(url, workdir, totals_rollup_seconds="86400")
    process.migrate()
    process.start()
    try:
        yield process
    finally:
        assert process.terminate() == 0, process.logs()


@pytest.fixture(scope="module")
def engine(server: ServiceProcess, admin_db: tuple[str, Path]) -> Iterator[Engine]:
    engine = migrated_engine(admin_db[0])
    yield engine
    engine.dispose()


@pytest.fixture
def stub(server: ServiceProcess) -> Iterator[credits_pb2_grpc.CreditsServiceStub]:
    with grpc.insecure_channel(server.target) as channel:
        yield credits_pb2_grpc.CreditsServiceStub(channel)


def refused(call_it: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call_it()
    return raised.value


# --- totals -------------------------------------------------------------------------------


@pytest.mark.postgres
def test_totals_are_exact_before_and_after_the_rollup(server: ServiceProcess, engine: Engine, stub: Any) -> None:
    rng = random.Random(20261208)
    clock = Clock()
    service = CreditsService(engine, credits_service(engine).idempotency, clock=clock)
    now = datetime.now(UTC)
    start = now - timedelta(days=3)
    seed(service, clock, rng, 400, start=start, span=now - start)

    assert_exact(stub, engine, rng, start, now)  # nothing rolled up: all read live

    assert '"skipped": false' in server.command("rollup")
    assert_rollup_counts_each_transfer_once(engine)
    assert_exact(stub, engine, rng, start, now)  # rolled up, no tail

    # Transfers the rollup has not seen: some back-dated into rolled-up hours, some now.
    seed(service, clock, rng, 120, start=start, span=now - start)
    for _ in range(10):
        stub.Grant(
            pb.GrantRequest(user_id="tail-user", amount=7, source=pb.GRANT_SOURCE_PROMOTION, reference=new_key()),
            metadata=metadata(key=new_key()),
        )
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert_exact(stub, engine, rng, start, later)

    server.command("rollup")
    assert_rollup_counts_each_transfer_once(engine)
    assert_exact(stub, engine, rng, start, later)
    assert check_ledger(engine).balanced


@pytest.mark.postgres
def test_concurrent_rollups_count_each_transfer_once(engine: Engine) -> None:
    """Rollups on several threads at once, with tiny steps, while transfers keep arriving."""
    rng = random.Random(7)
    clock = Clock()
    service = CreditsService(engine, credits_service(engine).idempotency, clock=clock)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(seed_value: int) -> None:
        local = random.Random(seed_value)
        writer_service = credits_service(engine)
        try:
            while not stop.is_set():
                user = f"w{local.randrange(50)}"
                cmd = domain.GrantCredits(user, local.randint(1, 50), local.choice(SOURCES), reference=new_key())
                writer_service.grant(ADMIN, cmd, call(), lambda r: b"")
                try:
                    spend = domain.SpendCredits(user, local.randint(1, 30), reference=new_key())
                    writer_service.spend(ADMIN, spend, call(), lambda r: b"")
                except domain.InsufficientCredits:
                    pass
        except BaseException as error:
            errors.append(error)

    def roller() -> None:
        try:
            while not stop.is_set():
                roll_up(engine, step_entry_ids=7)
        except BaseException as error:
            errors.append(error)

    seed(service, clock, rng, 50, start=datetime.now(UTC) - timedelta(hours=5), span=timedelta(hours=5))
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    threads += [threading.Thread(target=roller) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(4)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    roll_up(engine)
    assert_rollup_counts_each_transfer_once(engine)


@pytest.mark.postgres
def test_the_periodic_rollup_runs_on_two_replicas_at_once(
    server: ServiceProcess, engine: Engine, admin_db: tuple[str, Path], stub: Any
) -> None:
    url, workdir = admin_db
    replicas = [credits_process(url, workdir, totals_rollup_seconds="0.05").start() for _ in range(2)]
    try:
        for n in range(60):
            stub.Grant(
                pb.GrantRequest(
                    user_id=f"replica{n % 5}", amount=3, source=pb.GRANT_SOURCE_PURCHASE, reference=new_key()
                ),
                metadata=metadata(key=new_key()),
            )
        deadline = time.monotonic() + 20
        while watermark(engine)[0] != watermark(engine)[1]:
            assert time.monotonic() < deadline, "the periodic rollup did not catch up"
            time.sleep(0.05)
    finally:
        for replica in replicas:
            assert replica.terminate() == 0, replica.logs()
    assert_rollup_counts_each_transfer_once(engine)


@pytest.mark.postgres
def test_totals_need_a_range(stub: Any) -> None:
    now = datetime.now(UTC)
    cases = [
        (pb.GetCreditTotalsRequest(until=stamp(now)), "since"),
        (pb.GetCreditTotalsRequest(since=stamp(now)), "until"),
        (pb.GetCreditTotalsRequest(since=stamp(now), until=stamp(now)), "until"),
        (pb.GetCreditTotalsRequest(since=stamp(now), until=stamp(now - timedelta(hours=1))), "until"),
    ]
    for request, field in cases:
        error = refused(lambda request=request: stub.GetCreditTotals(request, metadata=metadata(actor="admin:ops")))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in details(error).violations] == [field]


@pytest.mark.postgres
def test_users_may_not_use_the_admin_reads(stub: Any) -> None:
    now = datetime.now(UTC)
    user = metadata(actor="user:alice")
    calls = [
        lambda: stub.GetCreditTotals(
            pb.GetCreditTotalsRequest(since=stamp(now - timedelta(days=1)), until=stamp(now)), metadata=user
        ),
        lambda: stub.ListTransfers(pb.ListTransfersRequest(user_id="alice"), metadata=user),
        lambda: stub.ListAuditRecords(pb.ListAuditRecordsRequest(actor="user:alice"), metadata=user),
    ]
    for call_it in calls:
        assert refused(call_it).code() == grpc.StatusCode.PERMISSION_DENIED


# --- ListTransfers --------------------------------------------------------------------------


@pytest.mark.postgres
def test_list_transfers_filters_and_pages_newest_first(stub: Any) -> None:
    user, other = f"lt-{uuid.uuid4().hex[:8]}", f"lt-{uuid.uuid4().hex[:8]}"
    made: list[pb.Transfer] = []
    for n in range(7):
        made.append(
            stub.Grant(
                pb.GrantRequest(user_id=user, amount=10 + n, source=pb.GRANT_SOURCE_PURCHASE, reference=new_key()),
                metadata=metadata(key=new_key()),
            ).transfer
        )
        if n % 2:
            made.append(
                stub.Spend(
                    pb.SpendRequest(user_id=user, amount=1, reference=new_key()), metadata=metadata(key=new_key())
                ).transfer
            )
    stub.Grant(
        pb.GrantRequest(user_id=other, amount=5, source=pb.GRANT_SOURCE_PURCHASE, reference=new_key()),
        metadata=metadata(key=new_key()),
    )
    for transfer in made:
        transfer.ClearField("draws")  # the lots a spend drew from come with Spend and GetTransfer, not in lists
    newest_first = sorted(made, key=lambda t: (t.create_time.ToDatetime(), t.id), reverse=True)

    def pages(request: pb.ListTransfersRequest, actor: str = "admin:ops") -> tuple[list[pb.Transfer], int]:
        seen, count = [], 0
        while True:
            page = stub.ListTransfers(request, metadata=metadata(actor=actor))
            assert len(page.transfers) <= (request.page_size or 50)
            seen.extend(page.transfers)
            count += 1
            if not page.next_page_token:
                return seen, count
            request.page_token = page.next_page_token

    listed, count = pages(pb.ListTransfersRequest(user_id=user, page_size=3))
    assert [t.id for t in listed] == [t.id for t in newest_first]
    assert listed == newest_first
    assert count == 4  # 10 transfers, 3 a page

    spends, _ = pages(pb.ListTransfersRequest(user_id=user, kind=pb.TRANSFER_KIND_SPEND, page_size=2), "service:ops")
    assert [t.id for t in spends] == [t.id for t in newest_first if t.kind == pb.TRANSFER_KIND_SPEND]

    middle = newest_first[2:6]
    since, until = middle[-1].create_time, newest_first[1].create_time
    ranged, _ = pages(pb.ListTransfersRequest(user_id=user, since=since, until=until))
    expected = [t.id for t in newest_first if since.ToDatetime() <= t.create_time.ToDatetime() < until.ToDatetime()]
    assert [t.id for t in ranged] == expected

    everyone = stub.ListTransfers(pb.ListTransfersRequest(page_size=200), metadata=metadata(actor="admin:ops"))
    ids = [t.id for t in everyone.transfers]
    assert set(t.id for t in made) <= set(ids) or len(ids) == 200
    times = [(t.create_time.ToDatetime(), t.id) for t in everyone.transfers]
    assert times == sorted(times, reverse=True)


@pytest.mark.postgres
def test_list_transfers_refuses_bad_arguments(stub: Any) -> None:
    admin = metadata(actor="admin:ops")
    now = stamp(datetime.now(UTC))
    for request, field in [
        (pb.ListTransfersRequest(page_size=201), "page_size"),
        (pb.ListTransfersRequest(page_token="garbage!"), "page_token"),
        (pb.ListTransfersRequest(user_id="not valid"), "user_id"),
        (pb.ListTransfersRequest(kind=99), "kind"),  # type: ignore[arg-type]
        (pb.ListTransfersRequest(since=now, until=now), "until"),
    ]:
        error = refused(lambda request=request: stub.ListTransfers(request, metadata=admin))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, request
        assert [v.field for v in details(error).violations] == [field]


# --- audit ----------------------------------------------------------------------------------


def audit_of(stub: Any, actor: str, **filters: Any) -> list[Any]:
    request = pb.ListAuditRecordsRequest(actor=actor, **filters)
    return list(stub.ListAuditRecords(request, metadata=metadata(actor="service:ops")).records)


@pytest.mark.postgres
def test_an_admin_grant_is_audited_once_even_when_replayed(stub: Any) -> None:
    admin = f"admin:a{uuid.uuid4().hex[:10]}"
    user = f"audited-{uuid.uuid4().hex[:8]}"
    request = pb.GrantRequest(
        user_id=user, amount=25, source=pb.GRANT_SOURCE_ADJUSTMENT, reference="ticket-1234-" + user
    )
    key = new_key()
    first = stub.Grant(request, metadata=metadata(key=key, actor=admin))
    again = stub.Grant(request, metadata=metadata(key=key, actor=admin))
    assert again == first

    records = audit_of(stub, admin)
    assert len(records) == 1
    record = records[0]
    assert (record.actor, record.action, record.target, record.service) == (
        admin,
        "credits.grant",
        f"user:{user}",
        "credits",
    )
    for part in ("25", "adjustment", "ticket-1234-" + user):
        assert part in record.detail
    assert record.id.startswith("aud_")
    assert record.request_id

    # Services' routine grants are not audited.
    stub.Grant(
        pb.GrantRequest(user_id=user, amount=1, source=pb.GRANT_SOURCE_PURCHASE, reference=new_key()),
        metadata=metadata(key=new_key()),
    )
    assert audit_of(stub, "service:ops") == []


@pytest.mark.postgres
def test_an_admin_reversal_is_audited_and_the_log_pages(stub: Any) -> None:
    admin = f"admin:r{uuid.uuid4().hex[:10]}"
    user = f"rev-{uuid.uuid4().hex[:8]}"
    grants = [
        stub.Grant(
            pb.GrantRequest(user_id=user, amount=10, source=pb.GRANT_SOURCE_PROMOTION, reference=new_key()),
            metadata=metadata(key=new_key(), actor=admin),
        ).transfer
        for _ in range(4)
    ]
    stub.Reverse(
        pb.ReverseRequest(transfer_id=grants[0].id, amount=4, reference=new_key(), reason="goodwill undone"),
        metadata=metadata(key=new_key(), actor=admin),
    )
    reversals = audit_of(stub, admin, action="credits.reverse")
    assert len(reversals) == 1
    assert reversals[0].target == f"transfer:{grants[0].id}"
    assert "reversed 4 credits" in reversals[0].detail
    assert "goodwill undone" in reversals[0].detail

    everything = audit_of(stub, admin)
    assert [r.action for r in everything] == ["credits.reverse"] + ["credits.grant"] * 4
    paged: list[Any] = []
    request = pb.ListAuditRecordsRequest(actor=admin, page_size=2)
    while True:
        page = stub.ListAuditRecords(request, metadata=metadata(actor="admin:ops"))
        paged.extend(page.records)
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token
    assert paged == everything

    first = everything[-1].time.ToDatetime(tzinfo=UTC)
    since_second = audit_of(stub, admin, since=stamp(first + timedelta(microseconds=1)))
    assert since_second == everything[:-1]
    assert audit_of(stub, admin, until=stamp(first + timedelta(microseconds=1))) == everything[-1:]


AUDIT_REFUSED = ["UPDATE audit_records SET detail = 'edited'", "DELETE FROM audit_records"]


@pytest.mark.parametrize("statement", AUDIT_REFUSED)
def test_audit_records_cannot_be_changed_in_sql(any_database: str, statement: str) -> None:
    engine = migrated_engine(any_database)
    try:
        service = credits_service(engine)
        cmd = domain.GrantCredits("alice", 40, domain.GrantSource.PROMOTION, reference=new_key())
        service.grant(Actor(ActorKind.ADMIN, "auditor"), cmd, call(), lambda r: b"")
        with engine.connect() as conn:
            before = conn.execute(text("SELECT * FROM audit_records")).all()
        assert len(before) == 1

        with pytest.raises(DBAPIError, match="immutable"), engine.begin() as conn:
            conn.execute(text(statement))

        with engine.connect() as conn:
            assert conn.execute(text("SELECT * FROM audit_records")).all() == before
    finally:
        engine.dispose()


def test_a_failed_grant_leaves_no_audit_record(any_database: str) -> None:
    engine = migrated_engine(any_database)
    try:
        service = credits_service(engine)
        admin = Actor(ActorKind.ADMIN, "auditor")
        reference = new_key()
        service.grant(
            admin, domain.GrantCredits("bob", 5, domain.GrantSource.PROMOTION, reference), call(), lambda r: b""
        )
        with pytest.raises(domain.DuplicateReference):
            service.grant(
                admin, domain.GrantCredits("bob", 5, domain.GrantSource.PROMOTION, reference), call(), lambda r: b""
            )
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM audit_records")).scalar_one() == 1
    finally:
        engine.dispose()
