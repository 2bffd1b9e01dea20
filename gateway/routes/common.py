"""What every endpoint does: authenticate, name the caller to the services, answer JSON."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from gateway.auth import Principal, TokenVerifier, authenticate
from gateway.grpc_clients import Caller
from gateway.validation import JSON_MEDIA_TYPE
from svckit import logs


def principal(request: Request, verifier: TokenVerifier) -> Principal:
    """The authenticated caller (or a 401 problem); their actor goes into the log context."""
    found = authenticate(verifier, request.headers.get("authorization"))
    logs.actor_var.set(found.actor)
    return found


def caller(who: Principal, idempotency_key: str | None = None) -> Caller:
    return Caller(request_id=logs.request_id_var.get(), actor=who.actor, idempotency_key=idempotency_key)


def json_response(body: BaseModel, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(body.model_dump_json(), status_code=status, headers=dict(headers or {}), media_type=JSON_MEDIA_TYPE)
