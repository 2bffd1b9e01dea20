"""The Credits gRPC contract over a real socket: credentials, ownership, validation, health, reflection."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from billing.credits.v1 import credits_pb2 as pb
from tests.support.grpc_calls import credits_stub, details, metadata, new_key
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.postgres
T = TypeVar("T")


def run(server: ServiceProcess, scenario: Callable[[Any], Awaitable[T]]) -> T:
    async def main() -> T:
        async with grpc.aio.insecure_channel(server.target) as channel:
            return await scenario(channel)

    return asyncio.run(main())


def error_of(server: ServiceProcess, call: Callable[[Any], Awaitable[object]]) -> grpc.aio.AioRpcError:
    async def scenario(channel: Any) -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call(credits_stub(channel))
        return raised.value

    return run(server, scenario)


def test_a_call_without_a_service_credential_is_refused(credits_server_pg: ServiceProcess) -> None:
    error = error_of(credits_server_pg, lambda stub: stub.GetBalance(pb.GetBalanceRequest(user_id="alice")))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert details(error).reason == "UNAUTHENTICATED"


def test_a_wrong_service_credential_is_refused(credits_server_pg: ServiceProcess) -> None:
    error = error_of(
        credits_server_pg,
        lambda stub: stub.GetBalance(pb.GetBalanceRequest(user_id="alice"), metadata=metadata(token="forged")),
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_user_reads_only_their_own_wallet(credits_server_pg: ServiceProcess) -> None:
    own = run(
        credits_server_pg,
        lambda channel: credits_stub(channel).GetBalance(
            pb.GetBalanceRequest(user_id="alice"), metadata=metadata(actor="user:alice")
        ),
    )
    assert own.user_id == "alice"
    error = error_of(
        credits_server_pg,
        lambda stub: stub.ListEntries(pb.ListEntriesRequest(user_id="bob"), metadata=metadata(actor="user:alice")),
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_user_cannot_grant_credits(credits_server_pg: ServiceProcess) -> None:
    error = error_of(
        credits_server_pg,
        lambda stub: stub.Grant(
            pb.GrantRequest(user_id="alice", amount=5, source=pb.GRANT_SOURCE_PROMOTION, reference=new_key()),
            metadata=metadata(key=new_key(), actor="user:alice"),
        ),
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


def test_mutations_require_an_idempotency_key(credits_server_pg: ServiceProcess) -> None:
    error = error_of(
        credits_server_pg,
        lambda stub: stub.Spend(pb.SpendRequest(user_id="alice", amount=1, reference=new_key()), metadata=metadata()),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(error).reason == "IDEMPOTENCY_KEY_REQUIRED"


def test_every_bad_field_is_named(credits_server_pg: ServiceProcess) -> None:
    error = error_of(
        credits_server_pg,
        lambda stub: stub.Grant(
            pb.GrantRequest(user_id="", amount=0, reference="", description="x" * 501),
            metadata=metadata(key=new_key()),
        ),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    found = details(error)
    assert found.reason == "INVALID_ARGUMENT"
    assert {v.field for v in found.violations} == {"user_id", "amount", "source", "reference", "description"}
    assert found.request_id


def test_the_request_id_given_is_the_one_reported(credits_server_pg: ServiceProcess) -> None:
    request_id = f"req-{uuid.uuid4().hex}"
    error = error_of(
        credits_server_pg,
        lambda stub: stub.GetTransfer(
            pb.GetTransferRequest(transfer_id="tr_" + "0" * 32),
            metadata=(*metadata(), ("x-request-id", request_id)),
        ),
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert details(error).request_id == request_id


def test_a_replay_is_marked_and_identical(credits_server_pg: ServiceProcess) -> None:
    key = new_key()
    request = pb.GrantRequest(user_id=f"u-{key[:8]}", amount=9, source=pb.GRANT_SOURCE_PROMOTION, reference=key)

    async def scenario(channel: Any) -> tuple[Any, Any, Any, Any]:
        stub = credits_stub(channel)
        first = stub.Grant(request, metadata=metadata(key=key))
        first_response, first_trailers = await first, await first.trailing_metadata()
        second = stub.Grant(request, metadata=metadata(key=key))
        return first_response, first_trailers, await second, await second.trailing_metadata()

    first, first_trailers, second, second_trailers = run(credits_server_pg, scenario)
    assert first == second
    assert ("idempotent-replayed", "true") not in tuple(first_trailers)
    assert ("idempotent-replayed", "true") in tuple(second_trailers)


def test_ledger_pages_cover_every_entry_once(credits_server_pg: ServiceProcess) -> None:
    wallet = f"pages-{uuid.uuid4().hex[:8]}"

    async def scenario(channel: Any) -> tuple[list[int], list[int]]:
        stub = credits_stub(channel)
        for amount in range(1, 12):
            await stub.Grant(
                pb.GrantRequest(user_id=wallet, amount=amount, source=pb.GRANT_SOURCE_PROMOTION, reference=new_key()),
                metadata=metadata(key=new_key()),
            )
        seen, token = [], ""
        while True:
            page = await stub.ListEntries(
                pb.ListEntriesRequest(user_id=wallet, page_size=4, page_token=token), metadata=metadata()
            )
            seen.extend(entry.amount for entry in page.entries)
            token = page.next_page_token
            if not token:
                return seen, [entry.balance_after for entry in page.entries]

    amounts, last_balances = run(credits_server_pg, scenario)
    assert amounts == list(range(11, 0, -1))
    assert last_balances == [6, 3, 1]


def test_a_forged_page_token_is_invalid(credits_server_pg: ServiceProcess) -> None:
    error = error_of(
        credits_server_pg,
        lambda stub: stub.ListEntries(
            pb.ListEntriesRequest(user_id="alice", page_token="not-a-token"), metadata=metadata()
        ),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in details(error).violations] == ["page_token"]


def test_health_is_open_and_reflection_lists_the_service(credits_server_pg: ServiceProcess) -> None:
    async def scenario(channel: Any) -> tuple[Any, list[str]]:
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="billing.credits.v1.CreditsService")
        )
        names: list[str] = []
        stream = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), metadata=metadata()
        )
        async for response in stream:
            names.extend(service.name for service in response.list_services_response.service)
        return health, names

    health, names = run(credits_server_pg, scenario)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert "billing.credits.v1.CreditsService" in names


def test_reflection_needs_a_service_credential(credits_server_pg: ServiceProcess) -> None:
    async def scenario(channel: Any) -> grpc.aio.AioRpcError:
        stream = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in stream:
                pass
        return refused.value

    assert run(credits_server_pg, scenario).code() == grpc.StatusCode.UNAUTHENTICATED
