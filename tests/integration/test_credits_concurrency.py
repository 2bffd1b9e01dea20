"""Money under concurrency, over real sockets against a real Credits server on PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import grpc
import pytest

from billing.credits.v1 import credits_pb2 as pb
from tests.support.grpc_calls import credits_stub, details, metadata, new_key
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.postgres


def user() -> str:
    return f"u-{uuid.uuid4().hex[:12]}"


async def grant(stub: Any, user_id: str, amount: int) -> pb.GrantResponse:
    response: pb.GrantResponse = await stub.Grant(
        pb.GrantRequest(user_id=user_id, amount=amount, source=pb.GRANT_SOURCE_PURCHASE, reference=new_key()),
        metadata=metadata(key=new_key()),
    )
    return response


async def ledger_is_balanced(stub: Any) -> pb.CheckLedgerResponse:
    report: pb.CheckLedgerResponse = await stub.CheckLedger(pb.CheckLedgerRequest(), metadata=metadata())
    return report


def test_200_concurrent_spends_against_credits_for_100(credits_server_pg: ServiceProcess) -> None:
    async def scenario() -> tuple[list[str], list[grpc.aio.AioRpcError], pb.GetBalanceResponse, pb.CheckLedgerResponse]:
        async with grpc.aio.insecure_channel(credits_server_pg.target) as channel:
            stub = credits_stub(channel)
            wallet = user()
            await grant(stub, wallet, 100 * 7)

            async def spend(i: int) -> str:
                response = await stub.Spend(
                    pb.SpendRequest(user_id=wallet, amount=7, reference=f"job:{wallet}:{i}"),
                    metadata=metadata(key=new_key()),
                )
                return response.transfer.id

            outcomes = await asyncio.gather(*(spend(i) for i in range(200)), return_exceptions=True)
            succeeded = [o for o in outcomes if isinstance(o, str)]
            failed = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
            unexpected = [o for o in outcomes if not isinstance(o, str | grpc.aio.AioRpcError)]
            assert not unexpected, unexpected
            balance = await stub.GetBalance(pb.GetBalanceRequest(user_id=wallet), metadata=metadata())
            return succeeded, failed, balance, await ledger_is_balanced(stub)

    succeeded, failed, balance, report = asyncio.run(scenario())
    assert len(succeeded) == 100
    assert len(set(succeeded)) == 100
    assert len(failed) == 100
    assert {e.code() for e in failed} == {grpc.StatusCode.FAILED_PRECONDITION}
    assert {details(e).reason for e in failed} == {"INSUFFICIENT_CREDITS"}
    assert balance.balance == 0
    assert report.balanced, report


def test_same_grant_50_times_concurrently_is_one_transfer(credits_server_pg: ServiceProcess) -> None:
    wallet, key, reference = user(), new_key(), f"payment:{uuid.uuid4().hex}"
    request = pb.GrantRequest(user_id=wallet, amount=25, source=pb.GRANT_SOURCE_PURCHASE, reference=reference)

    async def scenario() -> tuple[list[pb.GrantResponse], pb.ListEntriesResponse, pb.GetBalanceResponse]:
        async with grpc.aio.insecure_channel(credits_server_pg.target) as channel:
            stub = credits_stub(channel)
            responses = await asyncio.gather(*(stub.Grant(request, metadata=metadata(key=key)) for _ in range(50)))
            entries = await stub.ListEntries(pb.ListEntriesRequest(user_id=wallet), metadata=metadata())
            balance = await stub.GetBalance(pb.GetBalanceRequest(user_id=wallet), metadata=metadata())
            return list(responses), entries, balance

    responses, entries, balance = asyncio.run(scenario())
    assert len(responses) == 50
    first = responses[0].SerializeToString(deterministic=True)
    assert all(r.SerializeToString(deterministic=True) == first for r in responses)
    assert responses[0].balance == 25
    assert len(entries.entries) == 1
    assert entries.entries[0].transfer_id == responses[0].transfer.id
    assert balance.balance == 25


def test_same_key_with_a_different_amount_is_refused_and_writes_nothing(credits_server_pg: ServiceProcess) -> None:
    wallet, key = user(), new_key()

    async def scenario() -> tuple[grpc.aio.AioRpcError, pb.ListEntriesResponse, pb.GetBalanceResponse]:
        async with grpc.aio.insecure_channel(credits_server_pg.target) as channel:
            stub = credits_stub(channel)
            await stub.Grant(
                pb.GrantRequest(user_id=wallet, amount=10, source=pb.GRANT_SOURCE_PROMOTION, reference=f"promo:{key}"),
                metadata=metadata(key=key),
            )
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Grant(
                    pb.GrantRequest(
                        user_id=wallet, amount=11, source=pb.GRANT_SOURCE_PROMOTION, reference=f"promo2:{key}"
                    ),
                    metadata=metadata(key=key),
                )
            entries = await stub.ListEntries(pb.ListEntriesRequest(user_id=wallet), metadata=metadata())
            balance = await stub.GetBalance(pb.GetBalanceRequest(user_id=wallet), metadata=metadata())
            return refused.value, entries, balance

    error, entries, balance = asyncio.run(scenario())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(error).reason == "IDEMPOTENCY_KEY_REUSED"
    assert len(entries.entries) == 1
    assert balance.balance == 10


def test_concurrent_partial_reversals_never_exceed_the_transfer(credits_server_pg: ServiceProcess) -> None:
    wallet = user()

    async def scenario() -> tuple[list[object], pb.GetBalanceResponse, pb.CheckLedgerResponse]:
        async with grpc.aio.insecure_channel(credits_server_pg.target) as channel:
            stub = credits_stub(channel)
            granted = await grant(stub, wallet, 50)

            async def reverse(i: int) -> pb.ReverseResponse:
                response: pb.ReverseResponse = await stub.Reverse(
                    pb.ReverseRequest(transfer_id=granted.transfer.id, amount=10, reference=f"refund:{wallet}:{i}"),
                    metadata=metadata(key=new_key()),
                )
                return response

            outcomes = await asyncio.gather(*(reverse(i) for i in range(12)), return_exceptions=True)
            balance = await stub.GetBalance(pb.GetBalanceRequest(user_id=wallet), metadata=metadata())
            return list(outcomes), balance, await ledger_is_balanced(stub)

    outcomes, balance, report = asyncio.run(scenario())
    done = [o for o in outcomes if isinstance(o, pb.ReverseResponse)]
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(done) == 5
    assert len(refused) == 7
    assert {details(e).reason for e in refused} == {"REVERSAL_EXCEEDS_REMAINING"}
    assert sorted(r.remaining for r in done) == [0, 10, 20, 30, 40]
    assert balance.balance == 0
    assert report.balanced, report


def test_the_same_reference_under_another_key_is_a_duplicate(credits_server_pg: ServiceProcess) -> None:
    wallet, reference = user(), f"invoice:{uuid.uuid4().hex}"
    request = pb.GrantRequest(user_id=wallet, amount=5, source=pb.GRANT_SOURCE_SUBSCRIPTION, reference=reference)

    async def scenario() -> tuple[list[object], pb.GetBalanceResponse]:
        async with grpc.aio.insecure_channel(credits_server_pg.target) as channel:
            stub = credits_stub(channel)
            outcomes = await asyncio.gather(
                *(stub.Grant(request, metadata=metadata(key=new_key())) for _ in range(20)), return_exceptions=True
            )
            balance = await stub.GetBalance(pb.GetBalanceRequest(user_id=wallet), metadata=metadata())
            return list(outcomes), balance

    outcomes, balance = asyncio.run(scenario())
    granted = [o for o in outcomes if isinstance(o, pb.GrantResponse)]
    duplicates = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(granted) == 1
    assert len(duplicates) == 19
    assert {e.code() for e in duplicates} == {grpc.StatusCode.ALREADY_EXISTS}
    assert {details(e).reason for e in duplicates} == {"DUPLICATE_REFERENCE"}
    assert balance.balance == 5
