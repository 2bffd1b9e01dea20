"""Calling the services the way their clients do: metadata, channels, errors."""

from __future__ import annotations

import uuid

import grpc

from billing.credits.v1 import credits_pb2_grpc
from svckit import devdefaults
from svckit.grpc_errors import RpcErrorDetails


def metadata(
    *, key: str | None = None, actor: str | None = None, token: str = devdefaults.OPS_TOKEN
) -> tuple[tuple[str, str], ...]:
    pairs = [("authorization", f"Bearer {token}"), ("x-request-id", uuid.uuid4().hex)]
    if key is not None:
        pairs.append(("idempotency-key", key))
    if actor is not None:
        pairs.append(("x-actor", actor))
    return tuple(pairs)


def new_key() -> str:
    return uuid.uuid4().hex


def credits_stub(channel: grpc.aio.Channel) -> credits_pb2_grpc.CreditsServiceStub:
    return credits_pb2_grpc.CreditsServiceStub(channel)


def details(error: grpc.RpcError) -> RpcErrorDetails:
    return RpcErrorDetails.from_error(error)
