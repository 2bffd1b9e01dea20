"""The gateway as its callers see it: a real gateway process in front of a real Credits server on PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest

from billing.credits.v1 import credits_pb2 as pb
from billing.credits.v1 import credits_pb2_grpc
from tests.support.gateway import GatewayProcess, bearer, running_gateway, token
from tests.support.grpc_calls import metadata, new_key
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.postgres

PROBLEM_JSON = "application/problem+json"
GRANTS = "/api/admin/credits/grants"


@pytest.fixture(scope="module")
def gateway(credits_server_pg: ServiceProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with running_gateway(credits_server_pg.target, tmp_path_factory.mktemp("gateway")) as running:
        yield running


@pytest.fixture
def client(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=15) as http:
        yield http


@pytest.fixture(scope="module")
def credits(credits_server_pg: ServiceProcess) -> Iterator[credits_pb2_grpc.CreditsServiceStub]:
    """The Credits service called directly, to set up and check wallets independently of the gateway."""
    with grpc.insecure_channel(credits_server_pg.target) as channel:
        yield credits_pb2_grpc.CreditsServiceStub(channel)


def new_user() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


def admin_headers(key: str | None = None) -> dict[str, str]:
    headers = bearer(f"admin-{uuid.uuid4().hex[:8]}", ("user", "admin"))
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


def grant_directly(credits: credits_pb2_grpc.CreditsServiceStub, user_id: str, amount: int) -> None:
    credits.Grant(
        pb.GrantRequest(
            user_id=user_id,
            amount=amount,
            source=pb.GRANT_SOURCE_PROMOTION,
            reference=f"test:{uuid.uuid4().hex}",
        ),
        metadata=metadata(key=new_key()),
        timeout=10,
    )


def spend_directly(credits: credits_pb2_grpc.CreditsServiceStub, user_id: str, amount: int) -> None:
    credits.Spend(
        pb.SpendRequest(user_id=user_id, amount=amount, reference=f"job:{uuid.uuid4().hex}"),
        metadata=metadata(key=new_key()),
        timeout=10,
    )


def balance_directly(credits: credits_pb2_grpc.CreditsServiceStub, user_id: str) -> int:
    response = credits.GetBalance(pb.GetBalanceRequest(user_id=user_id), metadata=metadata(), timeout=10)
    return int(response.balance)


def assert_problem(response: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["reason"] == reason
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["type"].startswith("urn:billing:problem:") or body["type"] == "about:blank"
    return body


# --- authentication ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/credits/balance"),
        ("GET", "/api/credits/ledger"),
        ("POST", GRANTS),
        ("GET", "/api/admin/credits/ledger-check"),
    ],
)
def test_no_token_is_401_with_a_bearer_challenge(client: httpx.Client, method: str, path: str) -> None:
    response = client.request(method, path)
    assert_problem(response, 401, "UNAUTHENTICATED")
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_an_expired_token_is_401(client: httpx.Client) -> None:
    expired = token(new_user(), ttl_seconds=-120)
    response = client.get("/api/credits/balance", headers={"Authorization": f"Bearer {expired}"})
    body = assert_problem(response, 401, "UNAUTHENTICATED")
    assert "expired" in body["detail"]
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


@pytest.mark.parametrize(
    "bad",
    [
        {"secret": "a-secret-that-is-not-the-gateways-one-at-all"},
        {"issuer": "someone-else"},
        {"audience": "another-api"},
    ],
)
def test_tokens_not_made_for_this_gateway_are_401(client: httpx.Client, bad: dict[str, str]) -> None:
    forged = token(new_user(), ("user", "admin"), **bad)
    response = client.get("/api/credits/balance", headers={"Authorization": f"Bearer {forged}"})
    assert_problem(response, 401, "UNAUTHENTICATED")


# --- reading a wallet -------------------------------------------------------------------


def test_a_user_reads_their_own_balance_and_ledger(
    client: httpx.Client, credits: credits_pb2_grpc.CreditsServiceStub
) -> None:
    user = new_user()
    grant_directly(credits, user, 70)
    grant_directly(credits, user, 30)
    spend_directly(credits, user, 45)

    balance = client.get("/api/credits/balance", headers=bearer(user))
    assert balance.status_code == 200, balance.text
    assert balance.headers["content-type"] == "application/json"
    body = balance.json()
    assert (body["user_id"], body["balance"]) == (user, 55)
    assert body["updated_at"].endswith("Z")

    ledger = client.get("/api/credits/ledger", headers=bearer(user))
    assert ledger.status_code == 200, ledger.text
    page = ledger.json()
    assert page["user_id"] == user
    assert page["next_page_token"] is None
    # Newest first, each with the balance right after it.
    assert [(e["kind"], e["amount"], e["balance_after"]) for e in page["entries"]] == [
        ("spend", -45, 55),
        ("grant", 30, 100),
        ("grant", 70, 70),
    ]


def test_a_wallet_that_never_moved_reads_zero(client: httpx.Client) -> None:
    user = new_user()
    body = client.get("/api/credits/balance", headers=bearer(user)).json()
    assert body == {"user_id": user, "balance": 0, "held": 0, "updated_at": None}
    assert client.get("/api/credits/ledger", headers=bearer(user)).json()["entries"] == []


@pytest.mark.parametrize("path", ["/api/credits/balance", "/api/credits/ledger"])
def test_a_user_cannot_read_another_users_wallet(
    client: httpx.Client, credits: credits_pb2_grpc.CreditsServiceStub, path: str
) -> None:
    victim = new_user()
    grant_directly(credits, victim, 10)
    response = client.get(path, params={"user_id": victim}, headers=bearer(new_user()))
    assert_problem(response, 403, "PERMISSION_DENIED")


def test_a_user_may_name_their_own_wallet(client: httpx.Client) -> None:
    user = new_user()
    response = client.get("/api/credits/balance", params={"user_id": user}, headers=bearer(user))
    assert response.status_code == 200
    assert response.json()["user_id"] == user


@pytest.mark.parametrize("path", ["/api/credits/balance", "/api/credits/ledger"])
def test_an_admin_reads_anyones_wallet(
    client: httpx.Client, credits: credits_pb2_grpc.CreditsServiceStub, path: str
) -> None:
    user = new_user()
    grant_directly(credits, user, 12)
    response = client.get(path, params={"user_id": user}, headers=admin_headers())
    assert response.status_code == 200, response.text
    assert response.json()["user_id"] == user


def test_ledger_pagination_follows_next_page_token_to_the_end(
    client: httpx.Client, credits: credits_pb2_grpc.CreditsServiceStub
) -> None:
    user = new_user()
    for amount in range(1, 8):
        grant_directly(credits, user, amount)
    seen: list[int] = []
    amounts: list[int] = []
    pages = 0
    params: dict[str, str | int] = {"page_size": 3}
    while True:
        response = client.get("/api/credits/ledger", params=params, headers=bearer(user))
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        assert len(page["entries"]) <= 3
        seen += [entry["id"] for entry in page["entries"]]
        amounts += [entry["amount"] for entry in page["entries"]]
        if page["next_page_token"] is None:
            break
        params = {"page_size": 3, "page_token": page["next_page_token"]}
    assert pages == 3
    assert len(seen) == len(set(seen)) == 7
    assert seen == sorted(seen, reverse=True)
    assert amounts == [7, 6, 5, 4, 3, 2, 1]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"page_size": "500"}, "page_size"), ({"page_size": "x"}, "page_size"), ({"page_token": "garbage"}, "page_token")],
)
def test_bad_ledger_parameters_are_400_naming_the_parameter(
    client: httpx.Client, params: dict[str, str], field: str
) -> None:
    response = client.get("/api/credits/ledger", params=params, headers=bearer(new_user()))
    body = assert_problem(response, 400, "INVALID_ARGUMENT")
    assert [error["field"] for error in body["errors"]] == [field]


# --- admin ------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [("POST", GRANTS), ("GET", "/api/admin/credits/ledger-check")])
def test_non_admins_are_403_on_admin_endpoints(client: httpx.Client, method: str, path: str) -> None:
    user = new_user()
    headers = {**bearer(user), "Idempotency-Key": new_key()}
    response = client.request(method, path, headers=headers, json={"user_id": user, "amount": 1_000})
    assert_problem(response, 403, "PERMISSION_DENIED")


def test_an_admin_grant_is_applied_once_per_idempotency_key(
    client: httpx.Client, credits: credits_pb2_grpc.CreditsServiceStub
) -> None:
    user = new_user()
    key = new_key()
    headers = admin_headers(key)
    first = client.post(GRANTS, headers=headers, json={"user_id": user, "amount": 250, "description": "welcome"})
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    created = first.json()
    assert created["balance"] == 250
    transfer = created["transfer"]
    assert (transfer["kind"], transfer["amount"], transfer["user_id"]) == ("grant", 250, user)
    assert (transfer["source"], transfer["reference"]) == ("adjustment", f"admin-grant:{key}")
    assert transfer["to_account"] == f"user:{user}"
    assert transfer["actor"].startswith("admin:admin-")

    again = client.post(GRANTS, headers=headers, json={"user_id": user, "amount": 250, "description": "welcome"})
    assert again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content

    changed = client.post(GRANTS, headers=headers, json={"user_id": user, "amount": 999, "description": "welcome"})
    assert_problem(changed, 422, "IDEMPOTENCY_KEY_REUSED")

    assert balance_directly(credits, user) == 250
    ledger = client.get("/api/credits/ledger", headers=bearer(user)).json()
    assert [entry["amount"] for entry in ledger["entries"]] == [250]


def test_a_grant_with_an_explicit_reference_and_source(client: httpx.Client) -> None:
    user = new_user()
    reference = f"spring-promo:{user}"
    body = {"user_id": user, "amount": 5, "source": "promotion", "reference": reference}
    response = client.post(GRANTS, headers=admin_headers(new_key()), json=body)
    assert response.status_code == 201, response.text
    assert (response.json()["transfer"]["source"], response.json()["transfer"]["reference"]) == ("promotion", reference)

    duplicate = client.post(GRANTS, headers=admin_headers(new_key()), json=body)
    assert_problem(duplicate, 409, "DUPLICATE_REFERENCE")


def test_a_grant_without_an_idempotency_key_is_400(
    client: httpx.Client, credits: credits_pb2_grpc.CreditsServiceStub
) -> None:
    user = new_user()
    response = client.post(GRANTS, headers=admin_headers(), json={"user_id": user, "amount": 10})
    assert_problem(response, 400, "IDEMPOTENCY_KEY_REQUIRED")
    assert balance_directly(credits, user) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": "u1", "amount": "10"}, "amount"),
        ({"user_id": "u1", "amount": 10.5}, "amount"),
        ({"user_id": "u1", "amount": -1}, "amount"),
        ({"user_id": "u1", "amount": True}, "amount"),
        ({"amount": 10}, "user_id"),
        ({"user_id": "u1", "amount": 10, "bonus": 5}, "bonus"),
        ({"user_id": "u1", "amount": 10, "source": "purchase"}, "source"),
    ],
)
def test_malformed_grant_bodies_are_400_naming_the_field(
    client: httpx.Client, body: dict[str, object], field: str
) -> None:
    response = client.post(GRANTS, headers=admin_headers(new_key()), json=body)
    problem = assert_problem(response, 400, "INVALID_ARGUMENT")
    assert [error["field"] for error in problem["errors"]] == [field]


def test_invalid_json_is_400(client: httpx.Client) -> None:
    headers = {**admin_headers(new_key()), "Content-Type": "application/json"}
    response = client.post(GRANTS, headers=headers, content=b'{"user_id": "u1", "amount": 10')
    assert_problem(response, 400, "INVALID_JSON")


def test_a_body_that_is_not_json_typed_is_415(client: httpx.Client) -> None:
    headers = {**admin_headers(new_key()), "Content-Type": "text/plain"}
    response = client.post(GRANTS, headers=headers, content=json.dumps({"user_id": "u1", "amount": 10}))
    assert_problem(response, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_an_oversized_body_is_413(client: httpx.Client) -> None:
    body = json.dumps({"user_id": "u1", "amount": 10, "description": "x" * 70_000}).encode()
    headers = {**admin_headers(new_key()), "Content-Type": "application/json"}
    assert_problem(client.post(GRANTS, headers=headers, content=body), 413, "CONTENT_TOO_LARGE")


def test_an_oversized_streamed_body_is_413(client: httpx.Client) -> None:
    """Without a Content-Length the gateway counts the bytes as they arrive."""

    def chunks() -> Iterator[bytes]:
        yield b'{"user_id": "u1", "amount": 10, "description": "'
        for _ in range(20):
            yield b"x" * 4096
        yield b'"}'

    headers = {**admin_headers(new_key()), "Content-Type": "application/json"}
    response = client.post(GRANTS, headers=headers, content=chunks())
    assert_problem(response, 413, "CONTENT_TOO_LARGE")


def test_an_admin_checks_the_ledger(client: httpx.Client) -> None:
    response = client.get("/api/admin/credits/ledger-check", headers=admin_headers())
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["balanced"] is True
    assert report["total_balance"] == 0
    assert report["mismatches"] == []
    assert report["lot_problems"] == []
    for chain in ("transfer_chain", "audit_chain"):
        assert report[chain]["intact"] is True
        assert report[chain]["first_break"] is None
        assert len(report[chain]["head_hash"]) == 64


# --- routing, probes, request ids ---------------------------------------------------------


def test_an_unknown_route_is_a_404_problem(client: httpx.Client) -> None:
    assert_problem(client.get("/api/nothing-here"), 404, "NOT_FOUND")


def test_a_wrong_method_is_a_405_problem(client: httpx.Client) -> None:
    response = client.delete("/api/credits/balance", headers=bearer(new_user()))
    assert_problem(response, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in response.headers["allow"]


def test_healthz_answers_while_the_process_lives(client: httpx.Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_each_service(client: httpx.Client, credits_server_pg: ServiceProcess) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "not_ready"
    services = body["services"]
    assert services["credits"] == {"target": credits_server_pg.target, "status": "SERVING", "error": None}
    for name in ("payments", "subscriptions"):
        assert services[name]["status"] == "UNREACHABLE"
        assert services[name]["error"] == "UNAVAILABLE"


def test_the_request_id_sent_comes_back_and_reaches_the_logs(client: httpx.Client, gateway: GatewayProcess) -> None:
    request_id = f"test-{uuid.uuid4().hex}"
    response = client.get("/api/credits/balance", headers={**bearer(new_user()), "X-Request-ID": request_id})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == request_id

    problem = client.get("/api/credits/balance", headers={"X-Request-ID": request_id + "-2"})
    assert problem.json()["request_id"] == request_id + "-2"

    access = [
        record
        for record in gateway.log_records()
        if record.get("logger") == "billing.access" and record.get("request_id") == request_id
    ]
    assert len(access) == 1
    assert (access[0]["method"], access[0]["path"], access[0]["status"]) == ("GET", "/api/credits/balance", 200)
    assert isinstance(access[0]["duration_ms"], float)


@pytest.mark.parametrize("supplied", ["has spaces", "x" * 129, "semi;colon"])
def test_a_malformed_request_id_is_replaced(client: httpx.Client, supplied: str) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": supplied})
    assert response.headers["x-request-id"] != supplied
    assert response.headers["x-request-id"]
