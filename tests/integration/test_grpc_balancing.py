"""Calls to a service spread over all of its addresses (in Kubernetes, a headless Service lists one per
ready pod): the gateway's channels and the services' own channels to their siblings balance round-robin.

Two real Credits servers share one PostgreSQL database; the target names both (`ipv4:a,b`), as DNS for
a headless Service would. Each server's access log shows which calls it served.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from billing.credits.v1 import credits_pb2
from svckit.service_client import channel_options
from tests.support.databases import postgres_database
from tests.support.gateway import bearer, running_gateway
from tests.support.grpc_calls import credits_stub, metadata
from tests.support.processes import ServiceProcess, credits_process

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CALLS = 20


@pytest.fixture(scope="module")
def two_credits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    workdir = tmp_path_factory.mktemp("balancing")
    with postgres_database("billing_credits") as url:
        first = credits_process(url, workdir)
        first.migrate()
        first.start()
        second = credits_process(url, workdir).start()
        try:
            yield first, second
        finally:
            first.kill()
            second.kill()


def both(servers: tuple[ServiceProcess, ServiceProcess]) -> str:
    """One target resolving to both servers' addresses."""
    return "ipv4:" + ",".join(server.target for server in servers)


def served_by(servers: tuple[ServiceProcess, ServiceProcess], request_ids: list[str]) -> list[int]:
    """How many of the calls each server logged."""
    return [sum(request_id in server.logs() for request_id in request_ids) for server in servers]


def balance_calls(target: str, options: list[tuple[str, object]] | None) -> list[str]:
    """CALLS GetBalance calls over one channel; their request ids."""

    async def call_all() -> list[str]:
        ids = []
        async with grpc.aio.insecure_channel(target, options=options) as channel:
            stub = credits_stub(channel)
            for _ in range(CALLS):
                pairs = metadata()
                ids.append(dict(pairs)["x-request-id"])
                await stub.GetBalance(credits_pb2.GetBalanceRequest(user_id="balancing"), metadata=pairs, timeout=5)
        return ids

    return asyncio.run(call_all())


def test_a_service_channel_spreads_calls_over_every_address(two_credits: tuple[ServiceProcess, ServiceProcess]) -> None:
    counts = served_by(two_credits, balance_calls(both(two_credits), channel_options()))
    assert sum(counts) == CALLS
    assert min(counts) >= CALLS // 2 - 1, counts  # round-robin: about half each


def test_without_round_robin_one_address_takes_every_call(two_credits: tuple[ServiceProcess, ServiceProcess]) -> None:
    """The check above can fail: gRPC's default policy (pick_first) sends everything to one server."""
    counts = served_by(two_credits, balance_calls(both(two_credits), None))
    assert sorted(counts) == [0, CALLS]


def test_the_gateway_spreads_calls_over_every_address(
    two_credits: tuple[ServiceProcess, ServiceProcess], tmp_path: Path
) -> None:
    with running_gateway(both(two_credits), tmp_path) as gateway, httpx.Client(base_url=gateway.url) as http:
        ids = []
        for _ in range(CALLS):
            request_id = uuid.uuid4().hex
            response = http.get(
                "/api/credits/balance", headers={**bearer("balancing-user"), "X-Request-ID": request_id}
            )
            assert response.status_code == 200, response.text
            ids.append(request_id)
    counts = served_by(two_credits, ids)
    assert sum(counts) == CALLS
    assert min(counts) >= CALLS // 2 - 1, counts
