"""Calling a sibling service over gRPC: where it is, how its channel balances calls, the credential and
metadata every call carries, and which refusals retrying cannot change (for outbox handlers)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import grpc

from svckit import logs, tracing

# Refusals that retrying cannot change: an outbox message that meets one is parked for an operator.
PERMANENT = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)


# Calls spread over every address the target resolves to (a headless Kubernetes Service lists one
# per ready pod); a plain host:port resolves to one address, where this is the same as pick_first.
# Servers end each connection after SERVER_MAX_CONNECTION_AGE_MS (svckit.server), so clients
# resolve again and find pods added since.
ROUND_ROBIN: dict[str, Any] = {"loadBalancingConfig": [{"round_robin": {}}]}


def channel_options(service_config: dict[str, Any] | None = None) -> list[tuple[str, Any]]:
    """Options of every channel to a sibling service: round-robin over its addresses, quick reconnects,
    keepalive pings; `service_config` adds to the balancing policy (e.g. a retry policy)."""
    return [
        ("grpc.service_config", json.dumps({**ROUND_ROBIN, **(service_config or {})})),
        ("grpc.enable_retries", 1),
        # Reconnect soon after a service comes back, rather than after minutes of backoff.
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 5000),
        ("grpc.keepalive_time_ms", 30_000),
    ]


@dataclass(frozen=True)
class ServiceTarget:
    """A sibling service: its address, this service's token there, and the deadline of each call."""

    address: str
    token: str
    deadline_seconds: float


def call_metadata(token: str, caller: str, key: str | None = None) -> tuple[tuple[str, str], ...]:
    """The metadata of a call made by this service itself (actor `service:<caller>`).

    It carries the request id of the call being served, if any (a new one otherwise), and the current
    trace context as `traceparent`; outside any span (the outbox relay) the call starts a trace of its own.
    """
    current_id = logs.request_id_var.get()
    pairs = [
        ("authorization", f"Bearer {token}"),
        ("x-actor", f"service:{caller}"),
        ("x-request-id", current_id if current_id != "-" else uuid.uuid4().hex),
        *tracing.inject_or_start(),
    ]
    if key is not None:
        pairs.append(("idempotency-key", key))
    return tuple(pairs)
