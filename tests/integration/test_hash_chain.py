"""Tamper evidence: the hash chains over transfers and audit records, against real servers and PostgreSQL.

History is written through the real servers (and the real service code), sealed by the
`seal` command, then edited "behind the service's back" in SQL with the immutability
triggers bypassed, as a superuser could. The check must name exactly the link edited.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from billing.credits.v1 import credits_pb2 as pb
from billing.credits.v1 import credits_pb2_grpc
from billing.payments.v1 import payments_pb2, payments_pb2_grpc
from credits_svc import domain
from credits_svc.bootstrap import MIGRATIONS as CREDITS_MIGRATIONS
from credits_svc.models import audit_records as credits_audit_records
from credits_svc.sealing import TRANSFERS, check_ledger, seal_all
from payments_svc.bootstrap import MIGRATIONS as PAYMENTS_MIGRATIONS
from payments_svc.models import AUDIT_CHAIN as PAYMENTS_AUDIT
from payments_svc.models import audit_records as payments_audit_records
from subscriptions_svc.bootstrap import MIGRATIONS as SUBSCRIPTIONS_MIGRATIONS
from subscriptions_svc.models import AUDIT_CHAIN as SUBSCRIPTIONS_AUDIT
from subscriptions_svc.models import audit_records as subscriptions_audit_records
from svckit.actors import Actor, ActorKind
from svckit.audit import AuditLog
from svckit.audit_chain import AuditChain, check_audit_chain
from svckit.chain import GENESIS, LINK_BROKEN, ROW_CHANGED, ROW_MISSING, SEAL_MISSING, seal
from svckit.db import make_engine, run_transaction
from svckit.idempotency import IdempotentCall
from svckit.migrations import upgrade
from tests.support.databases import postgres_database
from tests.support.gateway import bearer, running_gateway
from tests.support.grpc_calls import metadata, new_key
from tests.support.ledger import credits_service, migrated_engine
from tests.support.processes import ServiceProcess, credits_process, run_module

ADMIN = "admin:auditor"
OFF = "86400"  # the periodic sealer and ledger check stay out of the way: the tests seal on demand


# --- a Credits server with some history ------------------------------------------------------


@dataclass
class Ledger:
    server: ServiceProcess
    engine: Engine
    stub: credits_pb2_grpc.CreditsServiceStub
    transfer_ids: list[str]

    def check(self) -> pb.CheckLedgerResponse:
        response: pb.CheckLedgerResponse = self.stub.CheckLedger(
            pb.CheckLedgerRequest(), metadata=metadata(actor=ADMIN)
        )
        return response

    def seal(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.server.command("seal"))
        return result


def write_history(stub: credits_pb2_grpc.CreditsServiceStub) -> list[str]:
    """Grants (audited), spends, reversals (audited) over the real server; the transfer ids in order."""
    ids: list[str] = []
    for n in range(3):
        user = f"chain-{uuid.uuid4().hex[:8]}"
        granted = stub.Grant(
            pb.GrantRequest(user_id=user, amount=100 + n, source=pb.GRANT_SOURCE_PROMOTION, reference=new_key()),
            metadata=metadata(key=new_key(), actor=ADMIN),
        )
        spent = stub.Spend(
            pb.SpendRequest(user_id=user, amount=10 + n, reference=new_key(), description=f"spend {n}"),
            metadata=metadata(key=new_key(), actor=f"user:{user}"),
        )
        reversed_ = stub.Reverse(
            pb.ReverseRequest(transfer_id=spent.transfer.id, amount=5, reference=new_key(), reason="goodwill"),
            metadata=metadata(key=new_key(), actor=ADMIN),
        )
        ids += [granted.transfer.id, spent.transfer.id, reversed_.transfer.id]
    return ids


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with postgres_database("billing_chain") as url:
        server = credits_process(url, tmp_path, seal_seconds=OFF, ledger_check_seconds="0")
        server.migrate()
        server.start()
        engine = make_engine(url, pool_size=2)
        try:
            with grpc.insecure_channel(server.target) as channel:
                stub = credits_pb2_grpc.CreditsServiceStub(channel)
                yield Ledger(server, engine, stub, write_history(stub))
        finally:
            engine.dispose()
            assert server.terminate() == 0, server.logs()


def behind_the_back(engine: Engine, *statements: str, **params: Any) -> None:
    """Edit rows as a superuser would: with every trigger (immutability, foreign keys) bypassed."""
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        for statement in statements:
            conn.execute(text(statement), params)


def seal_of(engine: Engine, table: str, column: str, row_id: str) -> tuple[int, str]:
    with engine.connect() as conn:
        row = conn.execute(text(f"SELECT seq, hash FROM {table} WHERE {column} = :id"), {"id": row_id}).one()
    return int(row.seq), str(row.hash)


# --- intact --------------------------------------------------------------------------------


@pytest.mark.postgres
def test_sealed_history_verifies_and_new_rows_are_unsealed_not_broken(ledger: Ledger) -> None:
    before = ledger.check()
    assert before.balanced
    assert (before.transfer_chain.sealed, before.transfer_chain.unsealed) == (0, 9)
    assert before.transfer_chain.head_hash == GENESIS

    sealed = ledger.seal()
    assert sealed["transfers"] == {"sealed": 9, "last_seq": 9, "skipped": False}
    assert sealed["audit"] == {"sealed": 6, "last_seq": 6, "skipped": False}  # 3 grants + 3 reversals by an admin
    assert ledger.seal()["transfers"]["sealed"] == 0  # a second run finds nothing new

    check = ledger.check()
    assert check.balanced
    for chain, count in ((check.transfer_chain, 9), (check.audit_chain, 6)):
        assert chain.intact
        assert (chain.sealed, chain.unsealed) == (count, 0)
        assert not chain.HasField("first_break")
    # Seals follow the order transfers were written in, from seq 1.
    assert [seal_of(ledger.engine, "transfer_seals", "transfer_id", i)[0] for i in ledger.transfer_ids] == list(
        range(1, 10)
    )
    assert (
        check.transfer_chain.head_hash
        == seal_of(ledger.engine, "transfer_seals", "transfer_id", ledger.transfer_ids[-1])[1]
    )

    # A reversal grows the original's reversed_amount: a legitimate change the chain ignores.
    ledger.stub.Reverse(
        pb.ReverseRequest(transfer_id=ledger.transfer_ids[0], amount=1, reference=new_key(), reason="again"),
        metadata=metadata(key=new_key(), actor=ADMIN),
    )
    after = ledger.check()
    assert after.balanced
    assert after.transfer_chain.intact
    assert (after.transfer_chain.sealed, after.transfer_chain.unsealed) == (9, 1)
    assert (after.audit_chain.sealed, after.audit_chain.unsealed) == (6, 1)


# --- tampering with transfers ---------------------------------------------------------------

TARGET = 4  # the transfer edited: the fifth written (a spend), in the middle of the chain

TRANSFER_TAMPERING: dict[str, tuple[list[str], str]] = {
    "amount": (["UPDATE transfers SET amount = amount + 1 WHERE id = :id"], ROW_CHANGED),
    "entry": (["UPDATE ledger_entries SET amount = amount + 1 WHERE transfer_id = :id AND amount > 0"], ROW_CHANGED),
    "entry account": (
        ["UPDATE ledger_entries SET account = 'system:adjustment' WHERE transfer_id = :id AND amount > 0"],
        ROW_CHANGED,
    ),
    "description": (["UPDATE transfers SET description = 'nothing to see' WHERE id = :id"], ROW_CHANGED),
    "created_at": (
        ["UPDATE transfers SET created_at = created_at - interval '1 microsecond' WHERE id = :id"],
        ROW_CHANGED,
    ),
    "seal deleted": (["DELETE FROM transfer_seals WHERE transfer_id = :id"], SEAL_MISSING),
    "transfer deleted": (
        ["DELETE FROM ledger_entries WHERE transfer_id = :id", "DELETE FROM transfers WHERE id = :id"],
        ROW_MISSING,
    ),
    "seal relinked": (["UPDATE transfer_seals SET prev_hash = repeat('f', 64) WHERE transfer_id = :id"], LINK_BROKEN),
}


@pytest.mark.postgres
@pytest.mark.parametrize("case", sorted(TRANSFER_TAMPERING))
def test_check_ledger_names_the_transfer_edited_behind_its_back(ledger: Ledger, case: str) -> None:
    ledger.seal()
    target = ledger.transfer_ids[TARGET]
    seq, sealed_hash = seal_of(ledger.engine, "transfer_seals", "transfer_id", target)
    statements, reason = TRANSFER_TAMPERING[case]

    behind_the_back(ledger.engine, *statements, id=target)

    check = ledger.check()
    assert not check.balanced
    chain = check.transfer_chain
    assert not chain.intact
    broken = chain.first_break
    assert (broken.seq, broken.row_id, broken.reason) == (seq, target, reason)
    assert chain.sealed == seq - 1  # everything before it still verifies
    if reason == ROW_CHANGED:
        assert broken.sealed_hash == sealed_hash
        assert broken.computed_hash not in ("", sealed_hash)
    if reason == LINK_BROKEN:  # the row is as sealed; the seal's link to the one before is not
        assert broken.computed_hash == broken.sealed_hash == sealed_hash
    assert check.audit_chain.intact  # the other chain is untouched
    # The CLI says the same, and fails.
    done = run_module("credits_svc", "check-ledger", env=ledger.server.env)
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["transfer_chain"]["first_break"]["row_id"] == target


@pytest.mark.postgres
def test_the_first_of_two_edits_is_named(ledger: Ledger) -> None:
    ledger.seal()
    later, earlier = ledger.transfer_ids[7], ledger.transfer_ids[2]
    behind_the_back(ledger.engine, "UPDATE transfers SET description = 'x' WHERE id = :id", id=later)
    behind_the_back(ledger.engine, "UPDATE transfers SET description = 'y' WHERE id = :id", id=earlier)
    assert ledger.check().transfer_chain.first_break.row_id == earlier


@pytest.mark.postgres
def test_the_last_seal_deleted_is_a_missing_seal_not_an_unsealed_row(ledger: Ledger) -> None:
    ledger.seal()
    last = ledger.transfer_ids[-1]
    behind_the_back(ledger.engine, "DELETE FROM transfer_seals WHERE transfer_id = :id", id=last)
    broken = ledger.check().transfer_chain.first_break
    assert (broken.seq, broken.row_id, broken.reason) == (9, last, SEAL_MISSING)


@pytest.mark.postgres
def test_the_gateway_ledger_check_shows_the_first_broken_link(ledger: Ledger, tmp_path: Path) -> None:
    ledger.seal()
    target = ledger.transfer_ids[1]
    behind_the_back(ledger.engine, "UPDATE transfers SET amount = amount * 10 WHERE id = :id", id=target)
    with (
        running_gateway(ledger.server.target, tmp_path) as gateway,
        httpx.Client(base_url=gateway.url, timeout=15) as http,
    ):
        response = http.get("/api/admin/credits/ledger-check", headers=bearer("auditor", ("user", "admin")))
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["balanced"] is False
    chain = report["transfer_chain"]
    assert (chain["intact"], chain["sealed"], chain["unsealed"]) == (False, 1, 0)
    assert chain["first_break"]["row_id"] == target
    assert chain["first_break"]["seq"] == 2
    assert chain["first_break"]["reason"] == "row_changed"
    assert report["audit_chain"]["intact"] is True
    assert report["audit_chain"]["first_break"] is None


def chain_gauges(process: ServiceProcess) -> dict[tuple[str, str], float]:
    port = json.loads(process.ready_file.read_text())["metrics_port"]
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {
        (sample.name, sample.labels.get("chain", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("billing_ledger_")
    }


def wait_for_gauges(process: ServiceProcess, expected: dict[tuple[str, str], float]) -> None:
    """Until the periodic sealer and ledger check have produced `expected` (polled, with a deadline)."""
    deadline = time.monotonic() + 30
    while True:
        gauges = chain_gauges(process)
        if all(gauges.get(key) == wanted for key, wanted in expected.items()):
            return
        assert time.monotonic() < deadline, f"metrics never showed {expected}: {gauges}"
        time.sleep(0.1)


@pytest.mark.postgres
def test_the_periodic_sealer_and_check_report_the_chains_as_metrics(tmp_path: Path) -> None:
    with postgres_database("billing_chain_metrics") as url:
        server = credits_process(url, tmp_path, seal_seconds="0.1", ledger_check_seconds="0.2")
        server.migrate()
        server.start()
        engine = make_engine(url, pool_size=2)
        try:
            with grpc.insecure_channel(server.target) as channel:
                ids = write_history(credits_pb2_grpc.CreditsServiceStub(channel))
            wait_for_gauges(
                server,
                {
                    ("billing_ledger_check_balanced", ""): 1,
                    ("billing_ledger_chain_intact", "transfers"): 1,
                    ("billing_ledger_chain_intact", "audit"): 1,
                    ("billing_ledger_chain_unsealed_rows", "transfers"): 0,
                    ("billing_ledger_chain_unsealed_rows", "audit"): 0,
                },
            )
            with engine.connect() as conn:
                assert conn.execute(text("SELECT count(*) FROM transfer_seals")).scalar_one() == len(ids)
            behind_the_back(engine, "UPDATE transfers SET description = 'x' WHERE id = :id", id=ids[0])
            wait_for_gauges(
                server,
                {("billing_ledger_check_balanced", ""): 0, ("billing_ledger_chain_intact", "transfers"): 0},
            )
            assert chain_gauges(server)[("billing_ledger_chain_intact", "audit")] == 1
        finally:
            engine.dispose()
            assert server.terminate() == 0, server.logs()
    assert "hash chain broken" in server.logs()


# --- tampering with audit records ------------------------------------------------------------

AUDIT_TAMPERING: dict[str, tuple[list[str], str]] = {
    "detail": (["UPDATE audit_records SET detail = 'granted 0 credits' WHERE id = :id"], ROW_CHANGED),
    "actor": (["UPDATE audit_records SET actor = 'admin:someone-else' WHERE id = :id"], ROW_CHANGED),
    "record deleted": (["DELETE FROM audit_records WHERE id = :id"], ROW_MISSING),
    "seal deleted": (["DELETE FROM audit_seals WHERE record_id = :id"], SEAL_MISSING),
}


def audit_ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT id FROM audit_records ORDER BY ordinal")).scalars())


@pytest.mark.postgres
@pytest.mark.parametrize("case", sorted(AUDIT_TAMPERING))
def test_check_ledger_names_the_credits_audit_record_edited(ledger: Ledger, case: str) -> None:
    ledger.seal()
    target = audit_ids(ledger.engine)[2]
    seq, _ = seal_of(ledger.engine, "audit_seals", "record_id", target)
    statements, reason = AUDIT_TAMPERING[case]

    behind_the_back(ledger.engine, *statements, id=target)

    check = ledger.check()
    assert not check.balanced
    assert check.transfer_chain.intact
    broken = check.audit_chain.first_break
    assert (broken.seq, broken.row_id, broken.reason) == (seq, target, reason)


# --- Payments: its audit chain over a real server ---------------------------------------------


def record_audit(engine: Engine, log: AuditLog, count: int) -> None:
    actor = Actor(ActorKind.ADMIN, "chain-test")
    for n in range(count):
        run_transaction(engine, lambda conn, n=n: log.record(conn, actor=actor, action="test.act", target=f"t:{n}"))


@pytest.mark.postgres
def test_payments_check_audit_chain_names_the_record_edited(tmp_path: Path) -> None:
    with postgres_database("billing_chain_payments") as url:
        server = ServiceProcess("payments_svc", "PAYMENTS_", url, tmp_path, seal_seconds=OFF, outbox_relay="false")
        server.migrate()
        engine = make_engine(url, pool_size=2)
        server.start()
        try:
            record_audit(engine, AuditLog(payments_audit_records), 5)
            assert json.loads(server.command("seal"))["audit"]["sealed"] == 5
            record_audit(engine, AuditLog(payments_audit_records), 1)
            with grpc.insecure_channel(server.target) as channel:
                stub = payments_pb2_grpc.PaymentsServiceStub(channel)

                def check() -> Any:
                    request = payments_pb2.CheckAuditChainRequest()
                    return stub.CheckAuditChain(request, metadata=metadata(actor=ADMIN)).audit_chain

                intact = check()
                assert (intact.intact, intact.sealed, intact.unsealed) == (True, 5, 1)
                with pytest.raises(grpc.RpcError) as refused:
                    stub.CheckAuditChain(payments_pb2.CheckAuditChainRequest(), metadata=metadata(actor="user:u1"))
                assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED

                target = audit_ids(engine)[3]
                behind_the_back(engine, "UPDATE audit_records SET target = 't:other' WHERE id = :id", id=target)
                broken = check()
                assert not broken.intact
                assert (broken.first_break.seq, broken.first_break.row_id) == (4, target)
                assert broken.first_break.reason == ROW_CHANGED
            done = run_module("payments_svc", "check-audit-chain", env=server.env)
            assert done.returncode == 1, done.stderr
            assert json.loads(done.stdout)["audit_chain"]["first_break"]["row_id"] == target
        finally:
            engine.dispose()
            assert server.terminate() == 0, server.logs()


# --- both databases, in process ------------------------------------------------------------------

AUDIT_SERVICES: dict[str, tuple[Path, Any, AuditChain]] = {
    "payments": (PAYMENTS_MIGRATIONS, payments_audit_records, PAYMENTS_AUDIT),
    "subscriptions": (SUBSCRIPTIONS_MIGRATIONS, subscriptions_audit_records, SUBSCRIPTIONS_AUDIT),
}


@pytest.mark.parametrize("service", sorted(AUDIT_SERVICES))
def test_an_audit_chain_on_either_database(any_database: str, service: str) -> None:
    migrations, records, chain = AUDIT_SERVICES[service]
    upgrade(any_database, migrations)
    engine = make_engine(any_database, pool_size=2)
    try:
        record_audit(engine, AuditLog(records), 4)
        assert seal(engine, chain).sealed == 4
        assert seal(engine, chain).sealed == 0
        record_audit(engine, AuditLog(records), 2)
        report = check_audit_chain(engine, chain)
        assert (report.intact, report.sealed, report.unsealed) == (True, 4, 2)
        assert seal(engine, chain).sealed == 2
        target = audit_ids(engine)[1]
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SET LOCAL session_replication_role = replica"))
            else:  # whoever holds the file can drop the trigger
                conn.execute(text("DROP TRIGGER audit_records_no_update"))
            conn.execute(text("UPDATE audit_records SET detail = 'edited' WHERE id = :id"), {"id": target})
        broken = check_audit_chain(engine, chain).first_break
        assert broken is not None
        assert (broken.seq, broken.row_id, broken.reason) == (2, target, ROW_CHANGED)
    finally:
        engine.dispose()


def test_existing_audit_records_get_ordinals_and_stay_immutable(any_database: str) -> None:
    """The migration numbers the records already there, keeps them immutable, and the sealer chains them."""
    upgrade(any_database, CREDITS_MIGRATIONS, "0002")
    engine = make_engine(any_database, pool_size=2)
    try:
        with engine.begin() as conn:
            for n in range(3):
                conn.execute(
                    text(
                        "INSERT INTO audit_records (id, actor, action, target, request_id, detail, created_at)"
                        " VALUES (:id, 'admin:old', 'credits.grant', 'user:u', '', '', :at)"
                    ),
                    {"id": f"aud_old{n}", "at": datetime.now(UTC)},
                )
        upgrade(any_database, CREDITS_MIGRATIONS)
        record_audit(engine, AuditLog(credits_audit_records), 1)
        with engine.connect() as conn:
            ordinals = conn.execute(text("SELECT id, ordinal FROM audit_records ORDER BY ordinal")).all()
        assert [ordinal for _, ordinal in ordinals] == [1, 2, 3, 4]
        assert {row_id for row_id, _ in ordinals[:3]} == {"aud_old0", "aud_old1", "aud_old2"}
        for statement in ("UPDATE audit_records SET detail = 'x'", "DELETE FROM audit_records"):
            with pytest.raises(DBAPIError, match="immutable"), engine.begin() as conn:
                conn.execute(text(statement))
        assert [run.sealed for run in seal_all(engine)] == [0, 4]
        for statement in ("UPDATE audit_seals SET hash = 'x'", "DELETE FROM audit_seals"):
            with pytest.raises(DBAPIError, match="immutable"), engine.begin() as conn:
                conn.execute(text(statement))
        assert check_ledger(engine).balanced
    finally:
        engine.dispose()


# --- sealers and writers at once --------------------------------------------------------------


def grant(engine: Engine, user: str, amount: int, encode: Callable[[domain.TransferResult], bytes]) -> str:
    service = credits_service(engine)
    cmd = domain.GrantCredits(user, amount, domain.GrantSource.PROMOTION, reference=new_key())
    call = IdempotentCall.for_request("test", new_key(), "grant", b"")
    return service.grant(Actor(ActorKind.ADMIN, "chain"), cmd, call, encode).response.decode()


def transfer_id_of(result: domain.TransferResult) -> bytes:
    return result.transfer.id.encode()


def assert_every_row_sealed_once_in_order(engine: Engine) -> None:
    with engine.connect() as conn:
        transfers = (
            conn.execute(text("SELECT e.transfer_id FROM ledger_entries e WHERE e.amount > 0 ORDER BY e.id"))
            .scalars()
            .all()
        )
        seals = conn.execute(text("SELECT seq, transfer_id FROM transfer_seals ORDER BY seq")).all()
        records = conn.execute(text("SELECT id FROM audit_records ORDER BY ordinal")).scalars().all()
        audit = conn.execute(text("SELECT seq, record_id FROM audit_seals ORDER BY seq")).all()
    assert [seq for seq, _ in seals] == list(range(1, len(transfers) + 1))
    assert [transfer for _, transfer in seals] == list(transfers)
    assert [seq for seq, _ in audit] == list(range(1, len(records) + 1))
    assert [record for _, record in audit] == list(records)
    report = check_ledger(engine)
    assert report.balanced, report
    assert report.transfer_chain is not None
    assert report.transfer_chain.unsealed == 0
    assert report.transfer_chain.sealed == len(transfers)


@pytest.mark.postgres
def test_concurrent_sealers_seal_every_transfer_once_while_transfers_arrive(pg_database: str) -> None:
    engine = migrated_engine(pg_database, pool_size=12)
    writers_done = threading.Event()
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            service = credits_service(engine)
            for i in range(40):
                user = f"w{n}-{i % 4}"
                grant(engine, user, 20, transfer_id_of)
                spend = domain.SpendCredits(user, 3, reference=new_key())
                service.spend(
                    Actor(ActorKind.USER, user),
                    spend,
                    IdempotentCall.for_request("t", new_key(), "s", b""),
                    transfer_id_of,
                )
        except BaseException as error:
            errors.append(error)

    def sealer() -> None:
        try:
            while not writers_done.is_set():
                seal_all(engine, step_keys=5)
        except BaseException as error:
            errors.append(error)

    writers = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    sealers = [threading.Thread(target=sealer) for _ in range(4)]
    try:
        for thread in writers + sealers:
            thread.start()
        for thread in writers:
            thread.join(timeout=120)
        writers_done.set()
        for thread in sealers:
            thread.join(timeout=60)
        assert not errors, errors
        seal_all(engine)
        assert_every_row_sealed_once_in_order(engine)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM transfers")).scalar_one() == 4 * 40 * 2
    finally:
        writers_done.set()
        engine.dispose()


@pytest.mark.postgres
def test_a_transfer_that_commits_late_below_the_watermark_is_not_skipped(pg_database: str) -> None:
    """A writer takes its entry ids, then holds its transaction open while a later transfer commits."""
    engine = migrated_engine(pg_database)
    inside, release = threading.Event(), threading.Event()
    held: list[str] = []
    errors: list[BaseException] = []

    def held_encode(result: domain.TransferResult) -> bytes:
        # Runs in the grant's transaction, after its transfer, entries and audit record were written.
        held.append(result.transfer.id)
        inside.set()
        assert release.wait(60)
        return result.transfer.id.encode()

    def slow_writer() -> None:
        try:
            grant(engine, "slow", 5, held_encode)
        except BaseException as error:
            errors.append(error)

    try:
        first = grant(engine, "early", 7, transfer_id_of)
        writer = threading.Thread(target=slow_writer)
        writer.start()
        assert inside.wait(30)
        later = grant(engine, "late", 9, transfer_id_of)  # a higher entry id, committed first

        # A sealer that cannot wait long enough gives up its turn and seals nothing past the held ids.
        runs = seal_all(engine, wait_seconds=0.2)
        assert all(run.skipped for run in runs), runs
        with engine.connect() as conn:
            sealed = set(conn.execute(text("SELECT transfer_id FROM transfer_seals")).scalars())
        assert later not in sealed

        # One that may wait does, until the slow writer commits; then seals all three in entry order.
        result: list[Any] = []
        sealer = threading.Thread(target=lambda: result.append(seal_all(engine, wait_seconds=60)))
        sealer.start()
        sealer.join(timeout=0.5)
        assert sealer.is_alive(), "the sealer did not wait for the transaction in flight"
        release.set()
        writer.join(timeout=30)
        sealer.join(timeout=30)
        assert not errors, errors
        assert result
        assert not any(run.skipped for run in result[0])
        with engine.connect() as conn:
            order = list(conn.execute(text("SELECT transfer_id FROM transfer_seals ORDER BY seq")).scalars())
        assert order == [first, held[0], later]
        assert_every_row_sealed_once_in_order(engine)
    finally:
        release.set()
        engine.dispose()


@pytest.mark.postgres
def test_the_transfer_chain_reads_rows_in_credit_entry_order(pg_database: str) -> None:
    engine = migrated_engine(pg_database)
    try:
        ids = [grant(engine, "order", amount, transfer_id_of) for amount in (1, 2, 3)]
        rows = run_transaction(engine, lambda conn: TRANSFERS.rows_between(conn, 0, 10**9))
        assert [row.id for row in rows] == ids
        assert [row.fields["amount"] for row in rows] == [1, 2, 3]
        assert all(len(row.fields["entries"]) == 2 for row in rows)
    finally:
        engine.dispose()
