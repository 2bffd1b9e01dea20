"""The OpenAPI document, built in-process from the operations the app serves."""

from __future__ import annotations

import re
from typing import Any

import pytest
from openapi_spec_validator import validate
from starlette.routing import Route

from gateway.app import api_operations, create_app
from gateway.auth import TokenVerifier
from gateway.config import GatewaySettings
from gateway.grpc_clients import Backends
from gateway.openapi import PROBLEM_DESCRIPTIONS, document


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    settings = GatewaySettings()
    return document(api_operations(Backends(settings), TokenVerifier.from_settings(settings), settings))


def test_the_document_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    validate(spec)


def test_the_document_describes_exactly_the_served_routes(spec: dict[str, Any]) -> None:
    app = create_app(GatewaySettings())
    served = {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    assert served == {(path, method) for path, item in spec["paths"].items() for method in item}


def test_every_error_response_is_a_problem_with_a_description(spec: dict[str, Any]) -> None:
    for item in spec["paths"].values():
        for operation in item.values():
            for status, response in operation["responses"].items():
                if int(status) >= 400 and "application/problem+json" in response.get("content", {}):
                    assert response["description"] == PROBLEM_DESCRIPTIONS[int(status)]


def test_response_schemas_forbid_undocumented_fields(spec: dict[str, Any]) -> None:
    for name, schema in spec["components"]["schemas"].items():
        assert schema.get("additionalProperties") is False, name


def test_every_mutating_operation_requires_an_idempotency_key(spec: dict[str, Any]) -> None:
    signed_by_stripe = {"receiveStripeWebhook"}
    for item in spec["paths"].values():
        for method, operation in item.items():
            if method in ("post", "put", "patch", "delete") and operation["operationId"] not in signed_by_stripe:
                assert {"$ref": "#/components/parameters/IdempotencyKey"} in operation["parameters"], operation[
                    "operationId"
                ]


def test_templated_paths_differ_by_more_than_their_parameter_names(spec: dict[str, Any]) -> None:
    shapes = [re.sub(r"{\w+}", "{}", path) for path in spec["paths"]]
    assert len(shapes) == len(set(shapes))
