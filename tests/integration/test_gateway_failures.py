"""What callers see when a service is down, hangs, or refuses the gateway: problems, never internals."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.gateway import bearer, refused_target, running_gateway
from tests.support.processes import ServiceProcess


@contextmanager
def silent_target() -> Iterator[str]:
    """host:port that accepts TCP connections and never says a word: a hung service."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def balance(url: str) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=15) as client:
        return client.get("/api/credits/balance", headers=bearer(f"user-{uuid.uuid4().hex[:8]}"))


def test_a_service_that_is_down_is_503_with_retry_after(tmp_path: Path) -> None:
    with refused_target() as credits, running_gateway(credits, tmp_path) as gateway:
        response = balance(gateway.url)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    body = response.json()
    assert body["reason"] == "DEPENDENCY_UNAVAILABLE"
    assert credits.rpartition(":")[2] not in body["detail"]


def test_a_service_that_hangs_is_504_within_the_deadline(tmp_path: Path) -> None:
    with silent_target() as credits, running_gateway(credits, tmp_path, grpc_deadline_seconds="0.5") as gateway:
        response = balance(gateway.url)
    assert response.status_code == 504
    assert response.json()["reason"] == "DEADLINE_EXCEEDED"
    assert response.elapsed.total_seconds() < 5


@pytest.mark.postgres
def test_a_refused_gateway_credential_is_a_500_that_names_only_the_request_id(
    credits_server_pg: ServiceProcess, tmp_path: Path
) -> None:
    with running_gateway(credits_server_pg.target, tmp_path, service_token="not-the-gateway-token") as gateway:
        response = balance(gateway.url)
    assert response.status_code == 500
    body = response.json()
    assert body["reason"] == "INTERNAL"
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["request_id"] in body["detail"]
    assert "credential" not in body["detail"]
    assert "www-authenticate" not in response.headers
