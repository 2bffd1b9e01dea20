"""Errors as `application/problem+json` (RFC 9457), and gRPC statuses mapped to HTTP.

Every error response carries `type`, `title`, `status`, `detail`, `reason`
(a stable UPPER_SNAKE name), `request_id` and `errors` (the bad fields, empty
when the problem is not about fields). `type` is
`urn:billing:problem:<reason in lower-kebab-case>`, or `about:blank` when the
problem means no more than its HTTP status (an unknown route, a wrong method).

A failed gRPC call maps to HTTP as google/rpc/code.proto does (`STATUS_BY_CODE`),
with these overrides (`STATUS_BY_REASON` and `problem_from_rpc`):

- IDEMPOTENCY_KEY_REUSED → 422: the key was used with another request (IETF Idempotency-Key draft);
- IDEMPOTENCY_KEY_IN_FLIGHT → 409: the first request with that key has not finished; retry later;
- SUBSCRIPTION_EXISTS → 409: a live subscription (or an open checkout) in the plan's family already exists;
- SUBSCRIPTION_STATE → 409 (not FAILED_PRECONDITION's 400): the subscription's current state, which
  the service's message names, does not allow the change;
- EVENT_NOT_REDRIVABLE → 409: the Stripe event was processed already; only rejected or ignored ones re-drive;
- PLAN_NOT_SYNCED → 503 with `Retry-After`: the plan has no Stripe price until an operator syncs the catalog;
- UNAVAILABLE → 503 with `Retry-After`;
- UNAUTHENTICATED from a service → 500: services authenticate the gateway, never the end
  user, so it means the gateway's own credential was refused; the caller can do nothing about it;
- any 5xx hides the service's message: the detail names only the request id to quote.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus

import grpc
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gateway.schemas import FieldError, ProblemDetails
from svckit import logs
from svckit.grpc_errors import RpcErrorDetails

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:billing:problem:"
BLANK_TYPE = "about:blank"
# Seconds a client should wait before retrying when a service is unavailable.
RETRY_AFTER_SECONDS = 1


class Reason(enum.StrEnum):
    """The reasons the gateway itself reports; reasons from the services pass through unchanged."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    INVALID_JSON = "INVALID_JSON"
    INVALID_SIGNATURE = "INVALID_SIGNATURE"
    IDEMPOTENCY_KEY_REQUIRED = "IDEMPOTENCY_KEY_REQUIRED"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    IDEMPOTENCY_KEY_IN_FLIGHT = "IDEMPOTENCY_KEY_IN_FLIGHT"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    CONTENT_TOO_LARGE = "CONTENT_TOO_LARGE"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    CONFLICT = "CONFLICT"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    CANCELLED = "CANCELLED"
    NOT_IMPLEMENTED = "NOT_IMPLEMENTED"
    DEPENDENCY_UNAVAILABLE = "DEPENDENCY_UNAVAILABLE"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    INTERNAL = "INTERNAL"
    SUBSCRIPTION_EXISTS = "SUBSCRIPTION_EXISTS"
    SUBSCRIPTION_STATE = "SUBSCRIPTION_STATE"
    EVENT_NOT_REDRIVABLE = "EVENT_NOT_REDRIVABLE"
    PLAN_NOT_SYNCED = "PLAN_NOT_SYNCED"


TITLES: Mapping[str, str] = {
    Reason.INVALID_ARGUMENT: "The request is invalid",
    Reason.INVALID_JSON: "The request body is not valid JSON",
    Reason.INVALID_SIGNATURE: "The webhook signature is missing, wrong or too old",
    Reason.IDEMPOTENCY_KEY_REQUIRED: "An Idempotency-Key header is required",
    Reason.IDEMPOTENCY_KEY_REUSED: "The Idempotency-Key was already used with another request",
    Reason.IDEMPOTENCY_KEY_IN_FLIGHT: "A request with this Idempotency-Key is still in progress",
    Reason.UNAUTHENTICATED: "Authentication required",
    Reason.PERMISSION_DENIED: "Not allowed",
    Reason.UNSUPPORTED_MEDIA_TYPE: "The request body must be application/json",
    Reason.CONTENT_TOO_LARGE: "The request body is too large",
    Reason.DEPENDENCY_UNAVAILABLE: "A service is temporarily unavailable",
    Reason.DEADLINE_EXCEEDED: "A service took too long to answer",
    Reason.INTERNAL: "Internal error",
    Reason.NOT_IMPLEMENTED: "Not implemented yet",
    Reason.SUBSCRIPTION_EXISTS: "A subscription in this plan family already exists",
    Reason.SUBSCRIPTION_STATE: "The subscription's state does not allow this",
    Reason.EVENT_NOT_REDRIVABLE: "The event cannot be applied again",
    Reason.PLAN_NOT_SYNCED: "The plan is not on sale at Stripe yet",
    "INSUFFICIENT_CREDITS": "The wallet holds too few credits",
    "DUPLICATE_REFERENCE": "A transfer with this reference already exists",
}

# google/rpc/code.proto's HTTP mapping.
STATUS_BY_CODE: Mapping[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.DATA_LOSS: 500,
}

# Per-reason overrides of the code's status.
STATUS_BY_REASON: Mapping[str, int] = {
    Reason.IDEMPOTENCY_KEY_REUSED: 422,
    Reason.IDEMPOTENCY_KEY_IN_FLIGHT: 409,
    Reason.SUBSCRIPTION_EXISTS: 409,
    Reason.SUBSCRIPTION_STATE: 409,
    Reason.EVENT_NOT_REDRIVABLE: 409,
    Reason.PLAN_NOT_SYNCED: 503,
}
# Service reasons a 5xx keeps (with HIDDEN_DETAIL's text, not the service's message).
SHOWN_SERVER_REASONS = frozenset({Reason.PLAN_NOT_SYNCED})
# Seconds to wait before retrying a plan that is not synced: an operator has to act.
PLAN_SYNC_RETRY_AFTER_SECONDS = 60

# The reason reported when the service gave none (or when its own must not show).
REASON_BY_CODE: Mapping[grpc.StatusCode, Reason] = {
    grpc.StatusCode.INVALID_ARGUMENT: Reason.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION: Reason.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE: Reason.INVALID_ARGUMENT,
    grpc.StatusCode.PERMISSION_DENIED: Reason.PERMISSION_DENIED,
    grpc.StatusCode.NOT_FOUND: Reason.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: Reason.ALREADY_EXISTS,
    grpc.StatusCode.ABORTED: Reason.CONFLICT,
    grpc.StatusCode.RESOURCE_EXHAUSTED: Reason.RESOURCE_EXHAUSTED,
    grpc.StatusCode.CANCELLED: Reason.CANCELLED,
    grpc.StatusCode.UNIMPLEMENTED: Reason.NOT_IMPLEMENTED,
    grpc.StatusCode.UNAVAILABLE: Reason.DEPENDENCY_UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: Reason.DEADLINE_EXCEEDED,
}

# What a 5xx says instead of the service's message.
HIDDEN_DETAIL: Mapping[Reason, str] = {
    Reason.NOT_IMPLEMENTED: "this operation is not available yet",
    Reason.DEPENDENCY_UNAVAILABLE: "a service this request needs is unavailable; retry later",
    Reason.DEADLINE_EXCEEDED: "a service this request needs did not answer in time; retry later",
    Reason.PLAN_NOT_SYNCED: "this plan has no Stripe price yet; retry later",
}


@dataclass(eq=False)
class Problem(Exception):
    """An error answered as problem+json. Raise it from anywhere in a request."""

    status: int
    reason: str
    detail: str
    errors: Sequence[FieldError] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    type: str | None = None  # None: derived from the reason
    title: str | None = None  # None: from TITLES, else the HTTP status phrase

    def __post_init__(self) -> None:
        super().__init__(f"{self.status} {self.reason}: {self.detail}")

    def body(self, request_id: str) -> ProblemDetails:
        return ProblemDetails(
            type=self.type or problem_type(self.reason),
            title=self.title or TITLES.get(self.reason) or _phrase(self.status),
            status=self.status,
            detail=self.detail,
            reason=self.reason,
            request_id=request_id,
            errors=list(self.errors),
        )

    def response(self, request_id: str) -> Response:
        return Response(
            self.body(request_id).model_dump_json(),
            status_code=self.status,
            headers=dict(self.headers),
            media_type=PROBLEM_MEDIA_TYPE,
        )


def problem_type(reason: str) -> str:
    return TYPE_PREFIX + reason.lower().replace("_", "-")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Client Closed Request" if status == 499 else "Error"


def http_status(code: grpc.StatusCode, reason: str = "") -> int:
    """The HTTP status for a gRPC status code and ErrorInfo reason."""
    return STATUS_BY_REASON.get(reason) or STATUS_BY_CODE.get(code, 500)


def internal_error(request_id: str) -> Problem:
    return Problem(500, Reason.INTERNAL, f"internal error; quote request id {request_id} when reporting it")


def problem_from_rpc(error: RpcErrorDetails, request_id: str) -> Problem:
    """What the caller sees of a failed gRPC call."""
    if error.code is grpc.StatusCode.UNAUTHENTICATED:
        return internal_error(request_id)
    status = http_status(error.code, error.reason)
    if status >= 500:
        if error.reason in SHOWN_SERVER_REASONS:
            hidden = Reason(error.reason)
        else:
            hidden = REASON_BY_CODE.get(error.code, Reason.INTERNAL)
        if hidden not in HIDDEN_DETAIL:
            return internal_error(request_id)
        retry_after = PLAN_SYNC_RETRY_AFTER_SECONDS if hidden is Reason.PLAN_NOT_SYNCED else RETRY_AFTER_SECONDS
        headers = {"Retry-After": str(retry_after)} if status == 503 else {}
        return Problem(status, hidden, HIDDEN_DETAIL[hidden], headers=headers)
    reason = error.reason or REASON_BY_CODE.get(error.code, Reason.INTERNAL)
    errors = [FieldError(field=v.field, message=v.description) for v in error.violations]
    return Problem(status, reason, error.message or _phrase(status), errors=errors)


def current_request_id() -> str:
    return logs.request_id_var.get()


async def handle_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return exc.response(current_request_id())


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown route, wrong method) as problems."""
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        problem = Problem(404, Reason.NOT_FOUND, f"no route for {request.url.path}", type=BLANK_TYPE)
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
        problem = Problem(405, Reason.METHOD_NOT_ALLOWED, detail, headers=headers, type=BLANK_TYPE)
    elif exc.status_code == 413:
        problem = Problem(413, Reason.CONTENT_TOO_LARGE, "the request body is too large")
    elif exc.status_code >= 500:
        problem = internal_error(current_request_id())
    else:
        detail = _phrase(exc.status_code)
        problem = Problem(exc.status_code, Reason.INVALID_ARGUMENT, detail, headers=headers, type=BLANK_TYPE)
    return problem.response(current_request_id())
