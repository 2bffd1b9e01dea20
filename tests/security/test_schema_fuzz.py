"""Property-based fuzzing of every operation of the gateway's OpenAPI document (schemathesis + hypothesis).

The schema is loaded from the running gateway. For each operation, schemathesis generates requests that match
the document (positive) and requests that break it (negative); each is sent with a valid token (an admin's for
`/api/admin/*`, a user's elsewhere) and a fresh Idempotency-Key where one is required, and its response must
not be a 5xx, must match its documented schema, and have a documented status and content type.

The webhook is left to `test_webhook_fuzz`. Generation is derandomized, so a failure reproduces.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.app import api_operations
from gateway.auth import TokenVerifier
from gateway.config import GatewaySettings
from gateway.grpc_clients import Backends
from tests.security.conftest import SecurityStack

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

WEBHOOK = "POST /api/stripe/webhook"
# Examples per operation and mode: 36 operations x (40 + 25) = 2,340 requests.
POSITIVE_EXAMPLES = 40
NEGATIVE_EXAMPLES = 25
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
FUZZ_USER = "fuzz-user"


def served_operations() -> list[str]:
    """`METHOD /path` of every operation the gateway serves (built here, not read from the process)."""
    settings = GatewaySettings()
    operations = api_operations(Backends(settings), TokenVerifier.from_settings(settings), settings)
    return [f"{op.method} {op.path}" for op in operations]


LABELS = [label for label in served_operations() if label != WEBHOOK]


@pytest.fixture(scope="module")
def api_schema(security: SecurityStack) -> Any:
    return schemathesis.openapi.from_url(f"{security.stack.gateway.url}/api/openapi.json", config=schemathesis.Config())


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        yield http


def test_every_documented_operation_is_fuzzed(api_schema: Any) -> None:
    documented = {
        f"{method.upper()} {path}" for path, item in api_schema.raw_schema["paths"].items() for method in item
    }
    assert documented == {*LABELS, WEBHOOK}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"])
@pytest.mark.parametrize("label", LABELS)
def test_fuzz_operation(
    label: str, mode: GenerationMode, api_schema: Any, security: SecurityStack, session: requests.Session
) -> None:
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, label
    path = label.split(" ", 1)[1]
    auth = security.tokens.admin("fuzz-admin") if path.startswith("/api/admin/") else security.tokens.bearer(FUZZ_USER)
    idempotent = any(p.name == "Idempotency-Key" for p in operation.headers)
    base_url = security.stack.gateway.url

    @hypothesis.settings(
        max_examples=POSITIVE_EXAMPLES if mode is GenerationMode.POSITIVE else NEGATIVE_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        print_blob=True,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: Any) -> None:
        headers = dict(case.headers or {})
        headers.update(auth)
        # Positive cases get a key of their own (a reused one is only a 422); negative ones keep what was generated.
        if idempotent and (mode is GenerationMode.POSITIVE or "Idempotency-Key" not in headers):
            headers["Idempotency-Key"] = uuid.uuid4().hex
        case.headers = headers
        case.call_and_validate(base_url=base_url, session=session, checks=CHECKS, timeout=30)

    fuzz()


@pytest.mark.parametrize(
    "label",
    [
        "GET /api/admin/transactions",
        "GET /api/admin/subscriptions",
        "GET /api/admin/ledger/transfers",
        "GET /api/admin/webhook-events",
        "GET /api/admin/audit-log",
    ],
)
def test_csv_exports_are_documented(
    label: str, api_schema: Any, security: SecurityStack, session: requests.Session
) -> None:
    """Regression: `format=csv` answered text/csv, which the document did not declare (found by the fuzzing)."""
    case = api_schema.find_operation_by_label(label).Case(query={"format": "csv"}, headers=security.tokens.admin())
    response = case.call_and_validate(base_url=security.stack.gateway.url, session=session, checks=CHECKS)
    assert response.headers["content-type"] == ["text/csv; charset=utf-8"]
