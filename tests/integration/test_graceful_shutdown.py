"""SIGTERM in the middle of a burst: every call answered OK is in the ledger, and the server exits cleanly."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import grpc
import pytest
from sqlalchemy import select

from billing.credits.v1 import credits_pb2 as pb
from credits_svc.models import transfers
from tests.support.grpc_calls import credits_stub, metadata, new_key
from tests.support.ledger import check_ledger, migrated_engine
from tests.support.processes import credits_process

WORKERS = 24
SIGNAL_AFTER_OK = 300


@pytest.mark.postgres
@pytest.mark.slow
def test_sigterm_during_a_burst_loses_no_acknowledged_call(pg_database: str, tmp_path: Path) -> None:
    engine = migrated_engine(pg_database)
    server = credits_process(pg_database, tmp_path, GRACE_PERIOD_SECONDS="20", ACCESS_LOG="false").start()
    acknowledged: list[str] = []
    after_signal: list[str] = []
    failures: list[grpc.StatusCode] = []

    async def burst() -> int:
        signalled = asyncio.Event()
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = credits_stub(channel)

            async def worker() -> None:
                wallet = f"burst-{uuid.uuid4().hex[:10]}"
                while True:
                    try:
                        granted = await stub.Grant(
                            pb.GrantRequest(
                                user_id=wallet, amount=3, source=pb.GRANT_SOURCE_PURCHASE, reference=new_key()
                            ),
                            metadata=metadata(key=new_key()),
                            timeout=30,
                        )
                        (after_signal if signalled.is_set() else acknowledged).append(granted.transfer.id)
                        spent = await stub.Spend(
                            pb.SpendRequest(user_id=wallet, amount=2, reference=new_key()),
                            metadata=metadata(key=new_key()),
                            timeout=30,
                        )
                        (after_signal if signalled.is_set() else acknowledged).append(spent.transfer.id)
                    except grpc.aio.AioRpcError as error:
                        failures.append(error.code())
                        return
                    if len(acknowledged) >= SIGNAL_AFTER_OK and not signalled.is_set():
                        signalled.set()
                        server.signal_terminate()

            await asyncio.gather(*(worker() for _ in range(WORKERS)))
        return await asyncio.to_thread(server.terminate)

    try:
        exit_status = asyncio.run(burst())
    finally:
        server.kill()
    try:
        ok_ids = acknowledged + after_signal
        with engine.connect() as conn:
            stored = set(conn.execute(select(transfers.c.id).where(transfers.c.id.in_(ok_ids))).scalars())
        report = check_ledger(engine)
    finally:
        engine.dispose()

    assert exit_status == 0, server.logs()
    assert len(acknowledged) >= SIGNAL_AFTER_OK
    # Every worker stopped on an error once the server stopped taking calls.
    assert len(failures) == WORKERS
    assert set(failures) <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}, failures
    missing = [transfer_id for transfer_id in ok_ids if transfer_id not in stored]
    assert not missing, f"{len(missing)} acknowledged transfers are not in the ledger"
    assert report.balanced, report
    assert "draining" in server.logs()
