"""gRPC failures as HTTP problems: the status table, the per-reason overrides, what is hidden."""

from __future__ import annotations

import json

import grpc
import pytest

from gateway.problems import (
    PROBLEM_MEDIA_TYPE,
    STATUS_BY_CODE,
    Problem,
    Reason,
    http_status,
    problem_from_rpc,
    problem_type,
)
from gateway.schemas import FieldError
from svckit.errors import FieldViolation
from svckit.grpc_errors import RpcErrorDetails

REQUEST_ID = "req-123"


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 400),
        (grpc.StatusCode.FAILED_PRECONDITION, 400),
        (grpc.StatusCode.OUT_OF_RANGE, 400),
        (grpc.StatusCode.UNAUTHENTICATED, 401),
        (grpc.StatusCode.PERMISSION_DENIED, 403),
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.ALREADY_EXISTS, 409),
        (grpc.StatusCode.ABORTED, 409),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
        (grpc.StatusCode.CANCELLED, 499),
        (grpc.StatusCode.UNIMPLEMENTED, 501),
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
        (grpc.StatusCode.INTERNAL, 500),
        (grpc.StatusCode.UNKNOWN, 500),
        (grpc.StatusCode.DATA_LOSS, 500),
    ],
)
def test_status_codes_map_as_google_rpc_code_proto_does(code: grpc.StatusCode, status: int) -> None:
    assert http_status(code) == status


def test_every_grpc_status_code_has_an_http_status() -> None:
    assert set(STATUS_BY_CODE) == set(grpc.StatusCode)


@pytest.mark.parametrize(
    ("code", "reason", "status"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, "IDEMPOTENCY_KEY_REUSED", 422),
        (grpc.StatusCode.ABORTED, "IDEMPOTENCY_KEY_IN_FLIGHT", 409),
        (grpc.StatusCode.ABORTED, "CONCURRENT_UPDATE", 409),
        (grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_CREDITS", 400),
        (grpc.StatusCode.ALREADY_EXISTS, "DUPLICATE_REFERENCE", 409),
        (grpc.StatusCode.INVALID_ARGUMENT, "IDEMPOTENCY_KEY_REQUIRED", 400),
    ],
)
def test_reasons_override_the_status_where_documented(code: grpc.StatusCode, reason: str, status: int) -> None:
    problem = problem_from_rpc(RpcErrorDetails(code=code, message="m", reason=reason), REQUEST_ID)
    assert (problem.status, problem.reason) == (status, reason)


def test_a_service_problem_keeps_its_reason_message_and_fields() -> None:
    error = RpcErrorDetails(
        code=grpc.StatusCode.INVALID_ARGUMENT,
        message="invalid request: amount, reference",
        reason="INVALID_ARGUMENT",
        violations=[
            FieldViolation("amount", "must be between 1 and 1,000,000,000,000"),
            FieldViolation("reference", "x"),
        ],
    )
    problem = problem_from_rpc(error, REQUEST_ID)
    assert problem.status == 400
    assert problem.detail == "invalid request: amount, reference"
    assert [e.field for e in problem.errors] == ["amount", "reference"]
    assert problem.errors[0].message == "must be between 1 and 1,000,000,000,000"


def test_a_missing_reason_is_named_after_the_code() -> None:
    problem = problem_from_rpc(RpcErrorDetails(code=grpc.StatusCode.NOT_FOUND, message="no transfer"), REQUEST_ID)
    assert (problem.status, problem.reason, problem.detail) == (404, "NOT_FOUND", "no transfer")


def test_unavailable_is_503_with_retry_after_and_hides_the_cause() -> None:
    error = RpcErrorDetails(
        code=grpc.StatusCode.UNAVAILABLE, message="connection refused to 10.0.0.7:5432", reason="DEPENDENCY_UNAVAILABLE"
    )
    problem = problem_from_rpc(error, REQUEST_ID)
    assert problem.status == 503
    assert problem.reason == Reason.DEPENDENCY_UNAVAILABLE
    assert int(problem.headers["Retry-After"]) > 0
    assert "10.0.0.7" not in problem.detail


def test_deadline_exceeded_is_504() -> None:
    problem = problem_from_rpc(RpcErrorDetails(code=grpc.StatusCode.DEADLINE_EXCEEDED, message="Deadline"), REQUEST_ID)
    assert (problem.status, problem.reason) == (504, "DEADLINE_EXCEEDED")


@pytest.mark.parametrize("code", [grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS])
def test_internal_errors_never_leak_details(code: grpc.StatusCode) -> None:
    secret_detail = 'Traceback (most recent call last): psycopg.OperationalError password="hunter2"'
    problem = problem_from_rpc(RpcErrorDetails(code=code, message=secret_detail, reason="SOMETHING"), REQUEST_ID)
    assert problem.status == 500
    assert problem.reason == Reason.INTERNAL
    assert "hunter2" not in problem.detail
    assert "Traceback" not in problem.detail
    assert REQUEST_ID in problem.detail
    assert problem.errors == ()


def test_a_refused_gateway_credential_is_a_500_not_a_401_for_the_end_user() -> None:
    error = RpcErrorDetails(code=grpc.StatusCode.UNAUTHENTICATED, message="invalid service credential")
    problem = problem_from_rpc(error, REQUEST_ID)
    assert (problem.status, problem.reason) == (500, Reason.INTERNAL)
    assert "WWW-Authenticate" not in problem.headers


@pytest.mark.parametrize(
    ("reason", "uri"),
    [
        ("IDEMPOTENCY_KEY_REUSED", "urn:billing:problem:idempotency-key-reused"),
        ("INSUFFICIENT_CREDITS", "urn:billing:problem:insufficient-credits"),
        ("INTERNAL", "urn:billing:problem:internal"),
    ],
)
def test_problem_types_are_urns_named_after_the_reason(reason: str, uri: str) -> None:
    assert problem_type(reason) == uri


def test_a_problem_renders_as_rfc_9457_json() -> None:
    problem = Problem(
        400,
        Reason.INVALID_ARGUMENT,
        "invalid request body: amount",
        errors=[FieldError(field="amount", message="Input should be a valid integer")],
    )
    response = problem.response(REQUEST_ID)
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert json.loads(response.body) == {
        "type": "urn:billing:problem:invalid-argument",
        "title": "The request is invalid",
        "status": 400,
        "detail": "invalid request body: amount",
        "reason": "INVALID_ARGUMENT",
        "request_id": REQUEST_ID,
        "errors": [{"field": "amount", "message": "Input should be a valid integer"}],
    }


def test_a_status_without_a_known_title_uses_the_http_phrase() -> None:
    body = Problem(404, "NO_SUCH_THING", "gone").body(REQUEST_ID)
    assert body.title == "Not Found"
    client_closed = Problem(499, "CANCELLED", "the client went away").body(REQUEST_ID)
    assert client_closed.title == "Client Closed Request"
