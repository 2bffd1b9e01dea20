"""Who may call what: every operation of the OpenAPI document, with bad tokens, other users' ids, non-admins,
and bodies that try to set what the server decides.

Operations are enumerated from the running gateway's document and each must be classified in `ACCESS`, so a
new endpoint fails `test_every_operation_is_classified` until someone decides who may call it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from svckit import devdefaults
from tests.security.conftest import SecurityStack, Victim

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

Access = Literal["public", "webhook", "user", "admin"]

# Every operation, by operationId: who may call it.
ACCESS: dict[str, Access] = {
    "getLiveness": "public",
    "getReadiness": "public",
    "getOpenApi": "public",
    "listCreditPackages": "public",
    "listPlans": "public",
    "billingPage": "public",
    "adminPage": "public",
    "webAsset": "public",
    "webFolderAsset": "public",
    "checkoutSuccessPage": "public",
    "checkoutCancelPage": "public",
    "receiveStripeWebhook": "webhook",
    "getCreditBalance": "user",
    "listCreditLedger": "user",
    "createCheckoutSession": "user",
    "createPaymentIntent": "user",
    "listPayments": "user",
    "getPayment": "user",
    "createSubscription": "user",
    "listSubscriptions": "user",
    "updateSubscription": "user",
    "cancelSubscription": "user",
    "reactivateSubscription": "user",
    "pauseSubscription": "user",
    "resumeSubscription": "user",
    "createCustomerPortalSession": "user",
    "grantCredits": "admin",
    "checkCreditLedger": "admin",
    "getFinancialDashboard": "admin",
    "listTransactions": "admin",
    "listAllSubscriptions": "admin",
    "listTransfers": "admin",
    "listWebhookEvents": "admin",
    "redriveWebhookEvent": "admin",
    "listAuditRecords": "admin",
    "listAllPayments": "admin",
    "refundPayment": "admin",
    "reconcilePayments": "admin",
}

REDIRECT = "http://127.0.0.1/billing/checkout/success"
# A well-formed body for each operation that takes one (so that only the credentials are wrong).
BODIES: dict[str, dict[str, Any]] = {
    "grantCredits": {"user_id": "someone-else", "amount": 5},
    "createCheckoutSession": {"package_id": "credits-100", "success_url": REDIRECT, "cancel_url": REDIRECT},
    "createPaymentIntent": {"package_id": "credits-100"},
    "refundPayment": {},
    "reconcilePayments": {"since": "2026-01-01", "until": "2026-01-02"},
    "createSubscription": {"plan_id": "starter"},
    "updateSubscription": {"quantity": 2},
    "cancelSubscription": {"at_period_end": True},
    "pauseSubscription": {"behavior": "void"},
    "createCustomerPortalSession": {"return_url": REDIRECT},
}


@dataclass(frozen=True)
class Op:
    method: str
    path: str
    operation_id: str
    secured: bool
    has_body: bool
    idempotent: bool


@pytest.fixture(scope="module")
def document(security: SecurityStack) -> dict[str, Any]:
    response = security.http.get("/api/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture(scope="module")
def operations(document: dict[str, Any]) -> list[Op]:
    found = []
    for path, item in document["paths"].items():
        for method, op in item.items():
            idempotent = any(p.get("$ref", "").endswith("/IdempotencyKey") for p in op.get("parameters", ()))
            found.append(
                Op(method.upper(), path, op["operationId"], bool(op["security"]), "requestBody" in op, idempotent)
            )
    return found


def of(operations: list[Op], *kinds: Access) -> Iterator[Op]:
    return (op for op in operations if ACCESS.get(op.operation_id) in kinds)


def concrete_path(op: Op, victim: Victim) -> str:
    """The operation's path with the victim's ids (A's resources) in it."""
    values = {
        "payment_id": victim.payment_id,
        "subscription_id": victim.subscription_id,
        # GET /api/subscriptions/{id} lists a user's subscriptions; PUT and DELETE name a subscription.
        "id": victim.user_id if op.method == "GET" else victim.subscription_id,
        "service": "payments",
        "event_id": "evt_doesnotexist",
        "asset": "billing.js",
        "folder": "admin",
    }
    path = op.path
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, f"{op.operation_id}: a path parameter without a value in concrete_path"
    return path


def send(
    http: httpx.Client, op: Op, victim: Victim, headers: dict[str, str], body: dict[str, Any] | None = None
) -> httpx.Response:
    all_headers = dict(headers)
    if op.idempotent:
        all_headers["Idempotency-Key"] = uuid.uuid4().hex
    payload = body if body is not None else BODIES.get(op.operation_id)
    params = {"user_id": victim.user_id} if op.operation_id in ("getCreditBalance", "listCreditLedger") else None
    return http.request(
        op.method,
        concrete_path(op, victim),
        headers=all_headers,
        params=params,
        json=payload if op.has_body else None,
    )


PROBLEM_KEYS = {"type", "title", "status", "detail", "reason", "request_id", "errors"}


def assert_no_data_of(victim: Victim, response: httpx.Response) -> None:
    """Nothing of A's in the body beyond what the caller sent: not A's other ids, PII, balance or entries."""
    text = response.text
    sent = str(response.request.url) + response.request.content.decode(errors="replace")
    for secret in (victim.payment_id, victim.subscription_id):
        if secret not in sent:
            assert secret not in text, f"{response.request.method} {response.request.url}: leaks {secret}"
    for customer in victim.customers:
        assert customer.email not in text
        assert customer.name not in text
    if response.status_code >= 400:
        problem = response.json()
        assert set(problem) == PROBLEM_KEYS, problem
        assert str(victim.balance) not in problem["detail"]


def unsigned(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hmac_signed(payload: dict[str, Any], alg: str, digest: Any) -> str:
    """A token signed with the gateway's secret, but under another HMAC algorithm than the configured one."""
    signing_input = f"{b64(json.dumps({'alg': alg, 'typ': 'JWT'}).encode())}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(devdefaults.JWT_SECRET.encode(), signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(signature)}"


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def claims(user_id: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "sub": user_id,
        "iss": devdefaults.JWT_ISSUER,
        "aud": devdefaults.JWT_AUDIENCE,
        "iat": now,
        "exp": now + 300,
        "roles": ["user", "admin"],
        **changes,
    }


def bad_credentials(security: SecurityStack, user_id: str) -> dict[str, dict[str, str]]:
    """Authorization headers that must all be refused with 401 (each claims the admin role too)."""
    t = security.tokens
    good = t.token(user_id, ("user", "admin"))
    tampered_payload = base64.urlsafe_b64encode(json.dumps(claims("someone-else")).encode()).rstrip(b"=").decode()
    head, _, signature = good.split(".")
    return {
        "none": {},
        "empty bearer": {"Authorization": "Bearer"},
        "basic scheme": {"Authorization": "Basic " + base64.b64encode(b"admin:admin").decode()},
        "token without scheme": {"Authorization": good},
        "malformed": {"Authorization": "Bearer not.a.jwt"},
        "garbage": {"Authorization": "Bearer " + t.remember("x" * 4000)},
        "expired": {"Authorization": "Bearer " + t.token(user_id, ("user", "admin"), ttl_seconds=-120)},
        "wrong audience": {"Authorization": "Bearer " + t.token(user_id, ("user", "admin"), audience="other-api")},
        "wrong issuer": {"Authorization": "Bearer " + t.token(user_id, ("user", "admin"), issuer="evil-issuer")},
        "wrong secret": {
            "Authorization": "Bearer " + t.token(user_id, ("user", "admin"), secret="a-different-secret-of-32-chars!!")
        },
        "alg none": {"Authorization": "Bearer " + t.remember(unsigned(claims(user_id)))},
        "alg none, no dot": {"Authorization": "Bearer " + t.remember(unsigned(claims(user_id))[:-1])},
        "alg HS384": {"Authorization": "Bearer " + t.remember(hmac_signed(claims(user_id), "HS384", hashlib.sha384))},
        "alg HS512": {"Authorization": "Bearer " + t.remember(hmac_signed(claims(user_id), "HS512", hashlib.sha512))},
        "alg RS256 (own key)": {
            "Authorization": "Bearer " + t.remember(jwt.encode(claims(user_id), rsa_key(), "RS256"))
        },
        "tampered payload": {"Authorization": f"Bearer {t.remember(f'{head}.{tampered_payload}.{signature}')}"},
        "no sub": {
            "Authorization": "Bearer "
            + t.remember(
                jwt.encode({k: v for k, v in claims(user_id).items() if k != "sub"}, devdefaults.JWT_SECRET, "HS256")
            )
        },
        "no exp": {
            "Authorization": "Bearer "
            + t.remember(
                jwt.encode({k: v for k, v in claims(user_id).items() if k != "exp"}, devdefaults.JWT_SECRET, "HS256")
            )
        },
        "bad sub": {
            "Authorization": "Bearer "
            + t.remember(jwt.encode(claims("../../etc/passwd"), devdefaults.JWT_SECRET, "HS256"))
        },
    }


def test_every_operation_is_classified(operations: list[Op]) -> None:
    unclassified = sorted(op.operation_id for op in operations if op.operation_id not in ACCESS)
    assert not unclassified, f"classify these operations in ACCESS: {unclassified}"
    gone = sorted(set(ACCESS) - {op.operation_id for op in operations})
    assert not gone, f"ACCESS names operations the document no longer has: {gone}"
    for op in operations:
        access = ACCESS[op.operation_id]
        assert op.secured == (access in ("user", "admin")), f"{op.operation_id}: security does not match {access}"
        assert op.path.startswith("/api/admin/") == (access == "admin"), f"{op.operation_id} ({op.path}): {access}"
        assert (op.operation_id in BODIES) == op.has_body, f"{op.operation_id}: give (only) a body in BODIES"


def test_bad_credentials_are_refused_everywhere(security: SecurityStack, victim: Victim, operations: list[Op]) -> None:
    failures = []
    for label, headers in bad_credentials(security, victim.user_id).items():
        for op in of(operations, "user", "admin"):
            response = send(security.http, op, victim, headers)
            if response.status_code != 401 or not response.headers.get("www-authenticate", "").startswith("Bearer"):
                failures.append(f"{label}: {op.method} {op.path} -> {response.status_code} {response.text[:200]}")
                continue
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["reason"] == "UNAUTHENTICATED"
            assert_no_data_of(victim, response)
    assert not failures, "\n".join(failures)


def test_a_user_without_any_role_is_refused(security: SecurityStack, victim: Victim, operations: list[Op]) -> None:
    headers = {"Authorization": "Bearer " + security.tokens.token(victim.user_id, ())}
    for op in of(operations, "user", "admin"):
        response = send(security.http, op, victim, headers)
        assert response.status_code == 403, f"{op.method} {op.path}: {response.status_code} {response.text}"
        assert_no_data_of(victim, response)


def test_non_admins_are_refused_on_every_admin_route(
    security: SecurityStack, victim: Victim, operations: list[Op]
) -> None:
    before = security.balance("someone-else")
    # Even on their own data (the user is the victim, whose ids are in the paths).
    for who in (f"intruder-{uuid.uuid4().hex[:8]}", victim.user_id):
        headers = security.tokens.bearer(who)
        for op in of(operations, "admin"):
            response = send(security.http, op, victim, headers)
            assert response.status_code == 403, f"{op.method} {op.path}: {response.status_code} {response.text}"
            assert response.json()["reason"] == "PERMISSION_DENIED"
            assert_no_data_of(victim, response)
    assert security.balance("someone-else") == before


def test_another_users_resources_are_out_of_reach(
    security: SecurityStack, victim: Victim, operations: list[Op]
) -> None:
    intruder = f"intruder-{uuid.uuid4().hex[:8]}"
    headers = security.tokens.bearer(intruder)
    probes = [
        ("GET", "/api/credits/balance", {"user_id": victim.user_id}, None),
        ("GET", "/api/credits/ledger", {"user_id": victim.user_id}, None),
        ("GET", "/api/payments", {"user_id": victim.user_id}, None),
        ("GET", f"/api/payments/{victim.payment_id}", None, None),
        ("GET", f"/api/subscriptions/{victim.user_id}", None, None),
        ("PUT", f"/api/subscriptions/{victim.subscription_id}", None, {"quantity": 3}),
        ("DELETE", f"/api/subscriptions/{victim.subscription_id}", None, {"at_period_end": False}),
        ("POST", f"/api/subscriptions/{victim.subscription_id}/pause", None, {"behavior": "void"}),
        ("POST", f"/api/subscriptions/{victim.subscription_id}/resume", None, None),
        ("POST", f"/api/subscriptions/{victim.subscription_id}/reactivate", None, None),
    ]
    for method, path, params, body in probes:
        extra = {"Idempotency-Key": uuid.uuid4().hex} if method != "GET" else {}
        response = security.http.request(method, path, params=params, json=body, headers={**headers, **extra})
        assert response.status_code in (403, 404), f"{method} {path}: {response.status_code} {response.text}"
        assert_no_data_of(victim, response)
    # The intruder's own lists do not include A's things.
    for path in ("/api/payments", f"/api/subscriptions/{intruder}", "/api/credits/ledger"):
        response = security.http.get(path, headers=headers)
        assert response.status_code == 200, response.text
        assert_no_data_of(victim, response)
    # Nothing of A's changed.
    owner = security.tokens.bearer(victim.user_id)
    listed = security.http.get(f"/api/subscriptions/{victim.user_id}", headers=owner).json()["subscriptions"]
    mine = next(s for s in listed if s["id"] == victim.subscription_id)
    assert mine["status"] in ("active", "trialing")
    assert mine["quantity"] == 1
    assert not mine.get("cancel_at_period_end")
    assert security.balance(victim.user_id) == victim.balance
    # Every user route reached with A's ids in it, as the intruder, is refused or shows the intruder's own data.
    for op in of(operations, "user"):
        response = send(security.http, op, victim, headers)
        assert response.status_code < 500, f"{op.method} {op.path}: {response.status_code}"
        assert_no_data_of(victim, response)


MASS_ASSIGNMENT: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/api/stripe/create-checkout-session", {**BODIES["createCheckoutSession"], "amount": 1}),
    ("POST", "/api/stripe/create-checkout-session", {**BODIES["createCheckoutSession"], "price": 1}),
    ("POST", "/api/stripe/create-checkout-session", {**BODIES["createCheckoutSession"], "credits": 1000000}),
    ("POST", "/api/stripe/create-checkout-session", {**BODIES["createCheckoutSession"], "user_id": "{victim}"}),
    ("POST", "/api/stripe/create-checkout-session", {**BODIES["createCheckoutSession"], "status": "succeeded"}),
    (
        "POST",
        "/api/stripe/create-checkout-session",
        {"plan_id": "starter", "success_url": REDIRECT, "cancel_url": REDIRECT, "unit_amount": 0},
    ),
    ("POST", "/api/stripe/create-payment-intent", {"package_id": "credits-100", "amount": 1}),
    ("POST", "/api/stripe/create-payment-intent", {"package_id": "credits-100", "amount_minor": 1}),
    ("POST", "/api/stripe/create-payment-intent", {"package_id": "credits-100", "user_id": "{victim}"}),
    ("POST", "/api/stripe/create-subscription", {"plan_id": "starter", "price": 0}),
    ("POST", "/api/stripe/create-subscription", {"plan_id": "starter", "user_id": "{victim}"}),
    ("POST", "/api/stripe/create-subscription", {"plan_id": "starter", "status": "active"}),
    ("PUT", "/api/subscriptions/{own}", {"quantity": 2, "status": "active"}),
    ("PUT", "/api/subscriptions/{own}", {"price": 0}),
    ("PUT", "/api/subscriptions/{own}", {"user_id": "{victim}"}),
    ("POST", "/api/stripe/customer-portal", {"return_url": REDIRECT, "user_id": "{victim}"}),
]


def test_client_supplied_amounts_ids_and_statuses_are_refused(security: SecurityStack, victim: Victim) -> None:
    mallory = f"mallory-{uuid.uuid4().hex[:8]}"
    headers = security.tokens.bearer(mallory)
    for method, path, template in MASS_ASSIGNMENT:
        body = json.loads(json.dumps(template).replace("{victim}", victim.user_id))
        response = security.http.request(
            method,
            path.replace("{own}", "sub_" + uuid.uuid4().hex[:12]),
            headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
            json=body,
        )
        assert response.status_code == 400, f"{method} {path} {body}: {response.status_code} {response.text}"
        problem = response.json()
        extra = set(body) - set(template) | {k for k, v in template.items() if "{victim}" in str(v)}
        assert problem["errors"], problem
        fields = {e["field"] for e in problem["errors"]}
        assert fields & {*body, *extra}, problem
        assert victim.user_id not in response.text
    # Nothing was created for anyone.
    assert security.http.get("/api/payments", headers=headers).json()["payments"] == []
    assert security.http.get(f"/api/subscriptions/{mallory}", headers=headers).json()["subscriptions"] == []
    assert security.balance(mallory) == 0
    assert security.balance(victim.user_id) == victim.balance
    listed = security.http.get("/api/payments", headers=security.tokens.bearer(victim.user_id)).json()["payments"]
    assert [p["id"] for p in listed] == [victim.payment_id]


def test_admin_grants_take_only_their_documented_fields(security: SecurityStack, victim: Victim) -> None:
    admin = security.tokens.admin()
    target = f"grantee-{uuid.uuid4().hex[:8]}"
    for extra in ({"balance": 10**9}, {"status": "reversed"}, {"kind": "debit"}, {"id": "t_1"}, {"amount": "5"}):
        body = {"user_id": target, "amount": 5, **extra}
        response = security.http.post(
            "/api/admin/credits/grants", headers={**admin, "Idempotency-Key": uuid.uuid4().hex}, json=body
        )
        assert response.status_code == 400, f"{body}: {response.status_code} {response.text}"
        assert response.json()["errors"]
    assert security.balance(target) == 0
