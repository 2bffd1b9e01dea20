"""Calling a sibling service over gRPC: where it is, the credential and metadata every call carries,
and which refusals retrying cannot change (for outbox handlers)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import grpc

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


@dataclass(frozen=True)
class ServiceTarget:
    """A sibling service: its address, this service's token there, and the deadline of each call."""

    address: str
    token: str
    deadline_seconds: float


def call_metadata(token: str, caller: str, key: str | None = None) -> tuple[tuple[str, str], ...]:
    """The metadata of a call made by this service itself (actor `service:<caller>`)."""
    pairs = [
        ("authorization", f"Bearer {token}"),
        ("x-actor", f"service:{caller}"),
        ("x-request-id", uuid.uuid4().hex),
    ]
    if key is not None:
        pairs.append(("idempotency-key", key))
    return tuple(pairs)
