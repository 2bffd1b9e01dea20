"""`GET /api/openapi.json`: a valid OpenAPI 3.1 document that covers every route and matches real responses."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate
from starlette.routing import Route

from gateway.app import create_app
from gateway.config import GatewaySettings
from tests.support.gateway import GatewayProcess, bearer, running_gateway
from tests.support.grpc_calls import new_key
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.postgres

GRANTS = "/api/admin/credits/grants"


@pytest.fixture(scope="module")
def gateway(credits_server_pg: ServiceProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with running_gateway(credits_server_pg.target, tmp_path_factory.mktemp("gateway")) as running:
        yield running


@pytest.fixture(scope="module")
def client(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=15) as http:
        yield http


@pytest.fixture(scope="module")
def document(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


def assert_matches_documented(document: dict[str, Any], path: str, method: str, response: httpx.Response) -> None:
    """The response's body validates against the schema documented for its path, method, status and media type."""
    documented = document["paths"][path][method.lower()]["responses"]
    assert str(response.status_code) in documented, f"{method} {path} {response.status_code} is not documented"
    content = documented[str(response.status_code)]["content"]
    media_type = response.headers["content-type"]
    assert media_type in content, f"{media_type} is not documented for {method} {path} {response.status_code}"
    schema = {**content[media_type]["schema"], "components": document["components"]}
    jsonschema.Draft202012Validator(schema).validate(response.json())
    for header in documented[str(response.status_code)].get("headers", {}):
        if header == "Idempotent-Replayed":
            continue  # only on replays
        assert header.lower() in response.headers, f"documented header {header} missing"


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_route_of_the_app_is_documented(document: dict[str, Any]) -> None:
    app = create_app(GatewaySettings())
    served = {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert served == documented
    assert {"/api/credits/balance", "/api/credits/ledger", GRANTS, "/api/admin/credits/ledger-check"} <= {
        path for path, _ in served
    }


def test_protected_operations_declare_bearer_auth_and_their_problems(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        **document["components"]["securitySchemes"]["bearerAuth"],
        "type": "http",
        "scheme": "bearer",
    }
    for path, item in document["paths"].items():
        for operation in item.values():
            if path.startswith("/api/credits") or path.startswith("/api/admin"):
                assert operation["security"] == [{"bearerAuth": []}]
                for status in ("401", "403", "500"):
                    problem = operation["responses"][status]["content"]["application/problem+json"]
                    assert problem["schema"] == {"$ref": "#/components/schemas/ProblemDetails"}
    grant = document["paths"][GRANTS]["post"]
    assert {"$ref": "#/components/parameters/IdempotencyKey"} in grant["parameters"]
    assert document["components"]["parameters"]["IdempotencyKey"]["name"] == "Idempotency-Key"
    assert grant["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/GrantCreditsRequest"
    }


def test_the_request_body_schema_is_the_validated_one(document: dict[str, Any]) -> None:
    schema = document["components"]["schemas"]["GrantCreditsRequest"]
    assert schema["required"] == ["user_id", "amount"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["amount"]["type"] == "integer"
    assert (schema["properties"]["amount"]["minimum"], schema["properties"]["amount"]["maximum"]) == (1, 10**12)
    assert schema["properties"]["source"]["enum"] == ["promotion", "adjustment"]


def test_real_responses_match_their_documented_schemas(client: httpx.Client, document: dict[str, Any]) -> None:
    user = f"user-{uuid.uuid4().hex[:12]}"
    admin = bearer(f"admin-{uuid.uuid4().hex[:8]}", ("user", "admin"))
    key = new_key()

    grant = client.post(GRANTS, headers={**admin, "Idempotency-Key": key}, json={"user_id": user, "amount": 42})
    assert grant.status_code == 201
    assert_matches_documented(document, GRANTS, "POST", grant)
    replay = client.post(GRANTS, headers={**admin, "Idempotency-Key": key}, json={"user_id": user, "amount": 42})
    assert replay.headers["idempotent-replayed"] == "true"
    assert_matches_documented(document, GRANTS, "POST", replay)

    balance = client.get("/api/credits/balance", headers=bearer(user))
    assert balance.status_code == 200
    assert_matches_documented(document, "/api/credits/balance", "GET", balance)

    ledger = client.get("/api/credits/ledger", headers=bearer(user))
    assert ledger.status_code == 200
    assert ledger.json()["entries"]
    assert_matches_documented(document, "/api/credits/ledger", "GET", ledger)

    check = client.get("/api/admin/credits/ledger-check", headers=admin)
    assert check.status_code == 200
    assert_matches_documented(document, "/api/admin/credits/ledger-check", "GET", check)

    for path in ("/healthz", "/readyz"):
        assert_matches_documented(document, path, "GET", client.get(path))


def test_problems_match_the_documented_problem_schema(client: httpx.Client, document: dict[str, Any]) -> None:
    user = bearer(f"user-{uuid.uuid4().hex[:12]}")
    admin = bearer(f"admin-{uuid.uuid4().hex[:8]}", ("admin",))
    keyed_admin = {**admin, "Idempotency-Key": new_key()}
    cases: list[tuple[str, str, httpx.Response, int]] = [
        ("GET", "/api/credits/balance", client.get("/api/credits/balance"), 401),
        ("GET", "/api/credits/ledger", client.get("/api/credits/ledger?user_id=someone-else", headers=user), 403),
        ("GET", "/api/credits/ledger", client.get("/api/credits/ledger?page_size=0", headers=user), 400),
        ("POST", GRANTS, client.post(GRANTS, headers=admin, json={"user_id": "u1", "amount": 1}), 400),
        ("POST", GRANTS, client.post(GRANTS, headers=keyed_admin, json={"user_id": "u1", "amount": 1.5}), 400),
        (
            "POST",
            GRANTS,
            client.post(GRANTS, headers={**keyed_admin, "Content-Type": "text/plain"}, content=b"hello"),
            415,
        ),
        ("GET", "/api/admin/credits/ledger-check", client.get("/api/admin/credits/ledger-check", headers=user), 403),
    ]
    for method, path, response, status in cases:
        assert response.status_code == status, f"{method} {path}: {response.text}"
        assert response.headers["content-type"] == "application/problem+json"
        assert_matches_documented(document, path, method, response)


def test_subscription_problems_match_the_documented_problem_schema(
    client: httpx.Client, document: dict[str, Any]
) -> None:
    """Subscriptions is not running here: what the gateway refuses itself, and a 503 for the service being down."""
    user_id = f"user-{uuid.uuid4().hex[:12]}"
    user = bearer(user_id)
    keyed = {**user, "Idempotency-Key": new_key()}
    item, pause = "/api/subscriptions/{id}", "/api/subscriptions/{subscription_id}/pause"
    past = {"behavior": "void", "resumes_at": "2001-01-01T00:00:00Z"}
    cases: list[tuple[str, str, httpx.Response, int]] = [
        ("GET", item, client.get("/api/subscriptions/someone-else", headers=user), 403),
        ("PUT", item, client.put("/api/subscriptions/sub_1", headers=user, json={"quantity": 2}), 400),
        ("PUT", item, client.put("/api/subscriptions/sub_1", headers=keyed, json={}), 400),
        ("DELETE", item, client.request("DELETE", "/api/subscriptions/sub_1", headers=keyed, json={"x": 1}), 400),
        ("POST", pause, client.post("/api/subscriptions/sub_1/pause", headers=keyed, json=past), 400),
        ("GET", "/api/plans", client.get("/api/plans"), 503),
        ("GET", item, client.get(f"/api/subscriptions/{user_id}", headers=user), 503),
    ]
    for method, path, response, status in cases:
        assert response.status_code == status, f"{method} {path}: {response.text}"
        assert response.headers["content-type"] == "application/problem+json"
        assert_matches_documented(document, path, method, response)
