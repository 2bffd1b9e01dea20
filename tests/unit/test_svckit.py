"""The shared plumbing, without I/O: credentials, actors, idempotency keys, page tokens, settings, error details."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from pydantic import ValidationError

from svckit import devdefaults
from svckit.actors import Actor, ActorKind, ServiceCredentials, parse_actor
from svckit.errors import FailedPrecondition, FieldViolation, InvalidArgument, PermissionDenied, Reason, Unauthenticated
from svckit.grpc_errors import RpcErrorDetails, to_grpc_status
from svckit.idempotency import IdempotentCall
from svckit.pagination import decode_int_position, encode_page_token
from svckit.settings import ServiceSettings


def test_credentials_name_the_caller() -> None:
    credentials = ServiceCredentials({"gateway": "token-a", "payments": "token-b"})
    assert credentials.authenticate("Bearer token-b") == "payments"
    assert credentials.authenticate("bearer token-a") == "gateway"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Basic token-a", "Bearer token-c", "token-a"])
def test_credentials_refuse_anything_else(header: str | None) -> None:
    with pytest.raises(Unauthenticated):
        ServiceCredentials({"gateway": "token-a"}).authenticate(header)


def test_actors() -> None:
    assert parse_actor(None, "gateway") == Actor(ActorKind.SERVICE, "gateway")
    assert parse_actor("user:alice", "gateway") == Actor(ActorKind.USER, "alice")
    assert str(parse_actor("admin:root", "gateway")) == "admin:root"
    for bad in ["alice", "root:alice", "user:", "user:has space"]:
        with pytest.raises(InvalidArgument):
            parse_actor(bad, "gateway")


def test_users_reach_only_their_own_resources() -> None:
    Actor(ActorKind.USER, "alice").require_access_to_user("alice")
    Actor(ActorKind.ADMIN, "root").require_access_to_user("alice")
    with pytest.raises(PermissionDenied):
        Actor(ActorKind.USER, "alice").require_access_to_user("bob")
    with pytest.raises(PermissionDenied):
        Actor(ActorKind.USER, "alice").require_privileged("grant")


def test_idempotency_fingerprints_tell_requests_apart() -> None:
    one = IdempotentCall.for_request("gateway", "k", "/m", b"a")
    assert one == IdempotentCall.for_request("gateway", "k", "/m", b"a")
    assert one.fingerprint != IdempotentCall.for_request("gateway", "k", "/m", b"b").fingerprint
    assert one.fingerprint != IdempotentCall.for_request("gateway", "k", "/other", b"a").fingerprint


@pytest.mark.parametrize("key", [None, "", "has space", "x" * 256, "naïve"])
def test_idempotency_keys_must_be_present_and_printable(key: str | None) -> None:
    with pytest.raises(InvalidArgument) as raised:
        IdempotentCall.for_request("gateway", key, "/m", b"")
    assert raised.value.reason is Reason.IDEMPOTENCY_KEY_REQUIRED


def test_page_tokens_round_trip_and_reject_forgeries() -> None:
    assert decode_int_position(encode_page_token({"before": 42}), "before") == 42
    assert decode_int_position("", "before") is None
    for forged in ["%%%", "bm90IGpzb24", encode_page_token({"before": "42"}), encode_page_token({"before": True})]:
        with pytest.raises(InvalidArgument):
            decode_int_position(forged, "before")


def test_production_refuses_development_secrets_and_sqlite() -> None:
    with pytest.raises(ValidationError, match="development default"):
        ServiceSettings(environment="production", database_url="postgresql://db/x")
    strong = {"gateway": "s" * 40}
    with pytest.raises(ValidationError, match="PostgreSQL"):
        ServiceSettings(environment="production", service_tokens=strong)
    settings = ServiceSettings(environment="production", service_tokens=strong, database_url="postgres://db/x")
    assert settings.database_url == "postgresql+psycopg://db/x"
    assert devdefaults.GATEWAY_TOKEN not in settings.plain_tokens().values()


def test_unknown_databases_are_refused() -> None:
    with pytest.raises(ValidationError, match="sqlite"):
        ServiceSettings(database_url="mysql://db/x")


class FakeRpcError(grpc.RpcError):
    """What a client holds after a failed call: code, details, trailing metadata."""

    def __init__(self, status: grpc.Status) -> None:
        self.status = status

    def code(self) -> grpc.StatusCode:
        return self.status.code  # type: ignore[attr-defined,no-any-return]

    def details(self) -> str:
        return self.status.details  # type: ignore[attr-defined,no-any-return]

    def trailing_metadata(self) -> Any:
        return self.status.trailing_metadata  # type: ignore[attr-defined]


def test_error_details_survive_the_wire_format() -> None:
    error = FailedPrecondition(
        "too few credits",
        reason=Reason.INSUFFICIENT_CREDITS,
        metadata={"user_id": "alice"},
        violations=[FieldViolation("amount", "too big")],
    )
    found = RpcErrorDetails.from_error(FakeRpcError(to_grpc_status(error, "req-1")))
    assert found.code == grpc.StatusCode.FAILED_PRECONDITION
    assert found.reason == "INSUFFICIENT_CREDITS"
    assert found.metadata == {"user_id": "alice"}
    assert found.violations == [FieldViolation("amount", "too big")]
    assert found.request_id == "req-1"
    assert found.message == "too few credits"
