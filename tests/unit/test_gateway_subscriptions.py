"""The subscription endpoints without the services: validation, answers' shapes, problems, routing.

HTTP requests go to the app in-process without its lifespan, so its gRPC
channels are never opened: a request that passes the gateway's checks fails
(500, `NotOpen` logged) where it would call a service; one refused earlier
never gets there.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import grpc
import httpx
import jsonschema
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from starlette.applications import Starlette

from billing.common.v1 import money_pb2
from billing.subscriptions.v1 import subscriptions_pb2 as pb
from gateway.app import api_operations, create_app
from gateway.auth import TokenVerifier
from gateway.config import GatewaySettings
from gateway.grpc_clients import Backends, NotOpen
from gateway.openapi import document
from gateway.payment_schemas import CheckoutSessionRequest
from gateway.problems import Problem, Reason, problem_from_rpc
from gateway.routes.payments import checkout_request
from gateway.routes.subscriptions import update_errors
from gateway.routes.webhooks import owner
from gateway.subscription_schemas import (
    CancelSubscriptionRequest,
    CreateSubscriptionRequest,
    PauseSubscriptionRequest,
    PlanCheckoutRequest,
    Plans,
    Subscription,
    UpdateSubscriptionRequest,
)
from gateway.validation import parse_body
from svckit.grpc_errors import RpcErrorDetails
from tests.support.gateway import bearer

ORIGIN = "http://127.0.0.1:8080"
SETTINGS = GatewaySettings(allowed_redirect_origins=[ORIGIN])
KEY = {"Idempotency-Key": "key-1"}


def alice() -> dict[str, str]:
    """A fresh token each time: tokens expire, and a test may run long after this module was imported."""
    return bearer("alice")


def admin() -> dict[str, str]:
    return bearer("root", ("user", "admin"))


class Client:
    """Requests to the app in-process; exceptions the app raises reach the test."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
                return await http.request(method, path, **options)

        return asyncio.run(send())

    def get(self, path: str, **options: Any) -> httpx.Response:
        return self.request("GET", path, **options)

    def post(self, path: str, **options: Any) -> httpx.Response:
        return self.request("POST", path, **options)

    def put(self, path: str, **options: Any) -> httpx.Response:
        return self.request("PUT", path, **options)


@pytest.fixture(scope="module")
def client() -> Client:
    return Client(create_app(SETTINGS))


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return document(api_operations(Backends(SETTINGS), TokenVerifier.from_settings(SETTINGS), SETTINGS))


def fields_of(problem: Problem) -> list[str]:
    return [error.field for error in problem.errors]


def refused(raw: dict[str, Any] | bytes, model: Any) -> Problem:
    body = raw if isinstance(raw, bytes) else json.dumps(raw).encode()
    with pytest.raises(Problem) as raised:
        parse_body(body, model)
    return raised.value


def in_days(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat().replace("+00:00", "Z")


# --- request bodies ------------------------------------------------------------------------


def test_a_minimal_subscription_request_leaves_the_defaults_to_the_service() -> None:
    body = parse_body(b'{"plan_id": "pro"}', CreateSubscriptionRequest)
    assert (body.plan_id, body.currency, body.interval, body.quantity) == ("pro", None, None, None)
    full = parse_body(
        b'{"plan_id": "pro", "currency": "eur", "interval": "year", "quantity": 1000}', CreateSubscriptionRequest
    )
    assert (full.currency, full.interval, full.quantity) == ("eur", "year", 1000)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "plan_id"),
        ({"plan_id": ""}, "plan_id"),
        ({"plan_id": "Pro Plan"}, "plan_id"),
        ({"plan_id": 7}, "plan_id"),
        ({"plan_id": "pro", "interval": "week"}, "interval"),
        ({"plan_id": "pro", "interval": "MONTH"}, "interval"),
        ({"plan_id": "pro", "currency": "EUR"}, "currency"),
        ({"plan_id": "pro", "quantity": 0}, "quantity"),
        ({"plan_id": "pro", "quantity": 1001}, "quantity"),
        ({"plan_id": "pro", "quantity": -1}, "quantity"),
        ({"plan_id": "pro", "quantity": 1.5}, "quantity"),
        ({"plan_id": "pro", "quantity": "2"}, "quantity"),
        ({"plan_id": "pro", "quantity": True}, "quantity"),
        ({"plan_id": "pro", "user_id": "bob"}, "user_id"),
    ],
)
def test_each_invalid_subscription_field_is_named(body: dict[str, Any], field: str) -> None:
    problem = refused(body, CreateSubscriptionRequest)
    assert (problem.status, problem.reason, fields_of(problem)) == (400, "INVALID_ARGUMENT", [field])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"plan_id": "pro", "proration_behavior": "prorate"}, "proration_behavior"),
        ({"quantity": 0}, "quantity"),
        ({"quantity": 1001}, "quantity"),
        ({"plan_id": "pro", "status": "active"}, "status"),
    ],
)
def test_each_invalid_change_field_is_named(body: dict[str, Any], field: str) -> None:
    assert fields_of(refused(body, UpdateSubscriptionRequest)) == [field]


def test_a_change_names_a_plan_a_quantity_or_both() -> None:
    assert update_errors(parse_body(b'{"plan_id": "pro"}', UpdateSubscriptionRequest)) == []
    assert update_errors(parse_body(b'{"quantity": 3}', UpdateSubscriptionRequest)) == []
    both = b'{"plan_id": "pro", "quantity": 3, "proration_behavior": "always_invoice"}'
    assert update_errors(parse_body(both, UpdateSubscriptionRequest)) == []
    for raw in (b"{}", b'{"proration_behavior": "none"}', b'{"plan_id": null, "quantity": null}'):
        errors = update_errors(parse_body(raw, UpdateSubscriptionRequest))
        assert [e.field for e in errors] == ["plan_id", "quantity"]


def test_a_cancellation_ends_with_the_period_unless_told_otherwise() -> None:
    assert parse_body(b"{}", CancelSubscriptionRequest) == CancelSubscriptionRequest(at_period_end=True, reason=None)
    now = parse_body(b'{"at_period_end": false, "reason": "too expensive"}', CancelSubscriptionRequest)
    assert (now.at_period_end, now.reason) == (False, "too expensive")
    assert parse_body(json.dumps({"reason": "x" * 500}).encode(), CancelSubscriptionRequest).reason == "x" * 500


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reason": "x" * 501}, "reason"),
        ({"at_period_end": "yes"}, "at_period_end"),
        ({"at_period_end": 0}, "at_period_end"),
        ({"at_period_end": True, "refund": True}, "refund"),
    ],
)
def test_each_invalid_cancellation_field_is_named(body: dict[str, Any], field: str) -> None:
    assert fields_of(refused(body, CancelSubscriptionRequest)) == [field]


def test_a_pause_may_resume_at_a_future_time_with_an_offset() -> None:
    body = parse_body(json.dumps({"behavior": "void"}).encode(), PauseSubscriptionRequest)
    assert (body.behavior, body.resumes_at) == ("void", None)
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    paris = later.astimezone(timezone(timedelta(hours=2))).isoformat()
    assert paris.endswith("+02:00")
    body = parse_body(json.dumps({"behavior": "keep_as_draft", "resumes_at": paris}).encode(), PauseSubscriptionRequest)
    assert body.resumes_at == later
    body = parse_body(
        json.dumps({"behavior": "mark_uncollectible", "resumes_at": in_days(1)}).encode(), PauseSubscriptionRequest
    )
    assert body.resumes_at is not None
    assert body.resumes_at > datetime.now(UTC)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "behavior"),
        ({"behavior": "stop"}, "behavior"),
        ({"behavior": "VOID"}, "behavior"),
        ({"behavior": "void", "resumes_at": in_days(-1)}, "resumes_at"),
        ({"behavior": "void", "resumes_at": "2001-01-01T00:00:00Z"}, "resumes_at"),
        ({"behavior": "void", "resumes_at": "2099-01-01"}, "resumes_at"),
        ({"behavior": "void", "resumes_at": "2099-01-01T00:00:00"}, "resumes_at"),
        ({"behavior": "void", "resumes_at": "4102444800"}, "resumes_at"),
        ({"behavior": "void", "resumes_at": 4102444800}, "resumes_at"),
        ({"behavior": "void", "resumes_at": "next tuesday"}, "resumes_at"),
        ({"behavior": "void", "resumes_at": "2099-13-01T00:00:00Z"}, "resumes_at"),
    ],
)
def test_each_invalid_pause_field_is_named(body: dict[str, Any], field: str) -> None:
    assert fields_of(refused(body, PauseSubscriptionRequest)) == [field]


def test_a_pause_in_the_past_says_so() -> None:
    problem = refused({"behavior": "void", "resumes_at": "2001-01-01T00:00:00Z"}, PauseSubscriptionRequest)
    assert problem.errors[0].message == "must be in the future"


# --- checkout: a credit package or a plan ------------------------------------------------------

URLS = {"success_url": f"{ORIGIN}/billing/checkout/success", "cancel_url": f"{ORIGIN}/billing/checkout/cancel"}


def test_a_checkout_buys_a_package_or_subscribes_to_a_plan() -> None:
    package = checkout_request(json.dumps({"package_id": "credits-100", **URLS}).encode())
    assert isinstance(package, CheckoutSessionRequest)
    plan = checkout_request(json.dumps({"plan_id": "pro", "interval": "year", "quantity": 5, **URLS}).encode())
    assert isinstance(plan, PlanCheckoutRequest)
    assert (plan.plan_id, plan.interval, plan.quantity) == ("pro", "year", 5)


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({**URLS}, ["package_id", "plan_id"]),
        ({"package_id": "credits-100", "plan_id": "pro", **URLS}, ["package_id", "plan_id"]),
        ({"package_id": "credits-100", "interval": "month", **URLS}, ["interval"]),
        ({"package_id": "credits-100", "quantity": 2, **URLS}, ["quantity"]),
        ({"plan_id": "pro", "quantity": 0, **URLS}, ["quantity"]),
        ({"plan_id": "pro", "interval": "day", **URLS}, ["interval"]),
        ({"plan_id": "pro"}, ["success_url", "cancel_url"]),
    ],
)
def test_a_checkout_names_what_is_wrong(body: dict[str, Any], fields: list[str]) -> None:
    with pytest.raises(Problem) as raised:
        checkout_request(json.dumps(body).encode())
    assert (raised.value.status, raised.value.reason) == (400, "INVALID_ARGUMENT")
    assert sorted(fields_of(raised.value)) == sorted(fields)


@pytest.mark.parametrize(
    ("raw", "reason"), [(b"{", "INVALID_JSON"), (b"[]", "INVALID_ARGUMENT"), (b"", "INVALID_JSON")]
)
def test_a_checkout_body_that_is_no_object_is_refused_as_any_body_is(raw: bytes, reason: str) -> None:
    with pytest.raises(Problem) as raised:
        checkout_request(raw)
    assert raised.value.reason == reason


# --- over HTTP: refused before any call --------------------------------------------------------


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


def error_fields(body: dict[str, Any]) -> list[str]:
    return [error["field"] for error in body["errors"]]


def reaches_a_service(response: httpx.Response, caplog: pytest.LogCaptureFixture) -> bool:
    """True when the gateway accepted the request and went on to call a service (whose channel is not open)."""
    failures = [r.exc_info[1] for r in caplog.records if r.exc_info and r.exc_info[1] is not None]
    caplog.clear()
    return response.status_code == 500 and len(failures) == 1 and isinstance(failures[0], NotOpen)


def test_a_user_lists_only_their_own_subscriptions(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    body = problem(client.get("/api/subscriptions/bob", headers=alice()), 403)
    assert body["reason"] == "PERMISSION_DENIED"
    assert "subscriptions" in body["detail"]
    problem(client.get("/api/subscriptions/bob"), 401)
    assert reaches_a_service(client.get("/api/subscriptions/alice", headers=alice()), caplog)
    assert reaches_a_service(client.get("/api/subscriptions/bob", headers=admin()), caplog)


def test_list_parameters_are_checked(client: Client) -> None:
    assert error_fields(problem(client.get("/api/subscriptions/alice?page_size=0", headers=alice()), 400)) == [
        "page_size"
    ]
    assert error_fields(problem(client.get("/api/subscriptions/not%20an%20id", headers=admin()), 400)) == ["id"]


MUTATIONS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/api/stripe/create-checkout-session", {"plan_id": "pro", **URLS}),
    ("POST", "/api/stripe/create-subscription", {"plan_id": "pro"}),
    ("PUT", "/api/subscriptions/sub_1", {"quantity": 2}),
    ("DELETE", "/api/subscriptions/sub_1", None),
    ("POST", "/api/subscriptions/sub_1/reactivate", None),
    ("POST", "/api/subscriptions/sub_1/pause", {"behavior": "void"}),
    ("POST", "/api/subscriptions/sub_1/resume", None),
    ("POST", "/api/stripe/customer-portal", {"return_url": f"{ORIGIN}/account"}),
]


@pytest.mark.parametrize(("method", "path", "body"), MUTATIONS)
def test_every_mutation_needs_an_idempotency_key(
    client: Client, caplog: pytest.LogCaptureFixture, method: str, path: str, body: dict[str, Any] | None
) -> None:
    response = client.request(method, path, headers=alice(), json=body)
    assert problem(response, 400)["reason"] == "IDEMPOTENCY_KEY_REQUIRED"
    problem(client.request(method, path, headers=KEY, json=body), 401)
    assert reaches_a_service(client.request(method, path, headers={**alice(), **KEY}, json=body), caplog)


def test_a_cancellation_body_is_optional_but_checked_when_sent(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    path = "/api/subscriptions/sub_1"
    assert reaches_a_service(client.request("DELETE", path, headers={**alice(), **KEY}), caplog)
    now = client.request("DELETE", path, headers={**alice(), **KEY}, json={"at_period_end": False})
    assert reaches_a_service(now, caplog)
    response = client.request("DELETE", "/api/subscriptions/sub_1", headers={**alice(), **KEY}, json={"reason": 5})
    assert error_fields(problem(response, 400)) == ["reason"]
    text = {**alice(), **KEY, "Content-Type": "text/plain"}
    problem(client.request("DELETE", "/api/subscriptions/sub_1", headers=text, content=b"now"), 415)


def test_a_change_without_a_plan_or_quantity_is_refused(client: Client) -> None:
    response = client.put("/api/subscriptions/sub_1", headers={**alice(), **KEY}, json={"proration_behavior": "none"})
    assert error_fields(problem(response, 400)) == ["plan_id", "quantity"]


def test_a_pause_in_the_past_is_refused_over_http(client: Client) -> None:
    body = {"behavior": "void", "resumes_at": in_days(-1)}
    response = client.post("/api/subscriptions/sub_1/pause", headers={**alice(), **KEY}, json=body)
    assert error_fields(problem(response, 400)) == ["resumes_at"]


def test_checkout_and_portal_send_the_customer_back_only_to_allowed_origins(client: Client) -> None:
    elsewhere = {"success_url": "https://evil.example/ok", "cancel_url": f"{ORIGIN}.evil.example/no"}
    response = client.post(
        "/api/stripe/create-checkout-session", headers={**alice(), **KEY}, json={"plan_id": "pro", **elsewhere}
    )
    assert error_fields(problem(response, 400)) == ["success_url", "cancel_url"]
    for url in ("https://evil.example/account", f"{ORIGIN}@evil.example/", "javascript:alert(1)"):
        response = client.post("/api/stripe/customer-portal", headers={**alice(), **KEY}, json={"return_url": url})
        assert error_fields(problem(response, 400)) == ["return_url"]


def test_both_or_neither_of_package_and_plan_is_refused_over_http(client: Client) -> None:
    path, headers = "/api/stripe/create-checkout-session", {**alice(), **KEY}
    both = client.post(path, headers=headers, json={"package_id": "credits-100", "plan_id": "pro", **URLS})
    assert error_fields(problem(both, 400)) == ["package_id", "plan_id"]
    neither = client.post(path, headers=headers, json=URLS)
    assert error_fields(problem(neither, 400)) == ["package_id", "plan_id"]


# --- what the services answer, as JSON ---------------------------------------------------------


def stamp(when: datetime) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(when)
    return result


T0 = datetime(2025, 1, 31, 12, 0, tzinfo=UTC)


def test_a_subscription_with_unset_fields_has_nulls(spec: dict[str, Any]) -> None:
    opening = pb.Subscription(
        id="sub_1",
        user_id="alice",
        plan_id="pro",
        family="pro",
        quantity=1,
        status=pb.SUBSCRIPTION_STATUS_INCOMPLETE,
        currency="usd",
        interval="month",
        create_time=stamp(T0),
        update_time=stamp(T0),
    )
    body = json.loads(Subscription.from_pb(opening).model_dump_json())
    assert body["status"] == "incomplete"
    assert body["created_at"] == "2025-01-31T12:00:00Z"
    for name in (
        "stripe_subscription_id",
        "current_period_start",
        "current_period_end",
        "trial_end",
        "cancel_at",
        "canceled_at",
        "ended_at",
        "cancellation_reason",
        "pause_collection",
    ):
        assert body[name] is None, name
    validate_against(spec, "Subscription", body)


def test_a_paused_subscription_says_how_and_until_when(spec: dict[str, Any]) -> None:
    paused = pb.Subscription(
        id="sub_1",
        user_id="alice",
        plan_id="pro",
        family="pro",
        quantity=3,
        status=pb.SUBSCRIPTION_STATUS_PAST_DUE,
        currency="eur",
        interval="year",
        stripe_subscription_id="sub_stripe",
        current_period_start=stamp(T0),
        current_period_end=stamp(T0 + timedelta(days=365)),
        cancel_at_period_end=True,
        cancel_at=stamp(T0 + timedelta(days=365)),
        cancellation_reason="moving",
        pause_collection=pb.PauseCollection(
            behavior=pb.PAUSE_BEHAVIOR_KEEP_AS_DRAFT, resumes_at=stamp(T0 + timedelta(days=7))
        ),
        periods_granted=2,
        create_time=stamp(T0),
        update_time=stamp(T0),
    )
    body = json.loads(Subscription.from_pb(paused).model_dump_json())
    assert body["status"] == "past_due"
    assert body["pause_collection"] == {"behavior": "keep_as_draft", "resumes_at": "2025-02-07T12:00:00Z"}
    assert (body["stripe_subscription_id"], body["cancel_at"]) == ("sub_stripe", "2026-01-31T12:00:00Z")
    until_resumed = pb.PauseCollection(behavior=pb.PAUSE_BEHAVIOR_VOID)
    paused.pause_collection.CopyFrom(until_resumed)
    assert json.loads(Subscription.from_pb(paused).model_dump_json())["pause_collection"] == {
        "behavior": "void",
        "resumes_at": None,
    }
    validate_against(spec, "Subscription", body)


@pytest.mark.parametrize("status", [s for s in pb.SubscriptionStatus.values() if s])
def test_every_status_has_its_stripe_name(status: pb.SubscriptionStatus.ValueType) -> None:
    message = pb.Subscription(status=status, create_time=stamp(T0), update_time=stamp(T0))
    name = pb.SubscriptionStatus.Name(status).removeprefix("SUBSCRIPTION_STATUS_").lower()
    assert Subscription.from_pb(message).status == name


def test_plans_list_their_prices(spec: dict[str, Any]) -> None:
    response = pb.ListPlansResponse(
        plans=[
            pb.Plan(
                plan_id="pro",
                name="Pro",
                family="pro",
                credits_per_period=1000,
                trial_days=14,
                trial_credits=100,
                credits_roll_over=True,
                prices=[
                    pb.PlanPrice(
                        amount=money_pb2.Money(currency="usd", amount_minor=1500), interval="month", stripe_price_id="p"
                    )
                ],
            )
        ]
    )
    body = json.loads(Plans.from_pb(response).model_dump_json())
    assert body == {
        "plans": [
            {
                "plan_id": "pro",
                "name": "Pro",
                "family": "pro",
                "credits_per_period": 1000,
                "trial_days": 14,
                "trial_credits": 100,
                "credits_roll_over": True,
                "prices": [{"currency": "usd", "amount_minor": 1500, "interval": "month"}],
            }
        ]
    }
    validate_against(spec, "Plans", body)


def validate_against(spec: dict[str, Any], name: str, body: dict[str, Any]) -> None:
    schema = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
    jsonschema.Draft202012Validator(schema).validate(body)


# --- problems ----------------------------------------------------------------------------------


def test_a_subscription_in_the_family_already_existing_is_409() -> None:
    error = RpcErrorDetails(
        code=grpc.StatusCode.ALREADY_EXISTS, message="alice already subscribes to pro", reason="SUBSCRIPTION_EXISTS"
    )
    found = problem_from_rpc(error, "req-1")
    assert (found.status, found.reason, found.detail) == (409, "SUBSCRIPTION_EXISTS", "alice already subscribes to pro")
    assert found.body("req-1").type == "urn:billing:problem:subscription-exists"


def test_a_state_that_forbids_the_change_is_409_naming_the_state() -> None:
    error = RpcErrorDetails(
        code=grpc.StatusCode.FAILED_PRECONDITION,
        message="the subscription is canceled: it cannot be paused",
        reason="SUBSCRIPTION_STATE",
        metadata={"status": "canceled"},
    )
    found = problem_from_rpc(error, "req-1")
    assert (found.status, found.reason) == (409, Reason.SUBSCRIPTION_STATE)
    assert found.detail == "the subscription is canceled: it cannot be paused"


def test_a_plan_not_synced_is_503_with_retry_after_and_no_service_detail() -> None:
    error = RpcErrorDetails(
        code=grpc.StatusCode.FAILED_PRECONDITION,
        message="plan pro has no Stripe price in table plan_prices",
        reason="PLAN_NOT_SYNCED",
    )
    found = problem_from_rpc(error, "req-1")
    assert (found.status, found.reason) == (503, "PLAN_NOT_SYNCED")
    assert int(found.headers["Retry-After"]) > 0
    assert "plan_prices" not in found.detail
    assert found.body("req-1").title == "The plan is not on sale at Stripe yet"


def test_another_users_subscription_stays_a_plain_404() -> None:
    error = RpcErrorDetails(code=grpc.StatusCode.NOT_FOUND, message="no subscription sub_1", reason="NOT_FOUND")
    found = problem_from_rpc(error, "req-1")
    assert (found.status, found.reason, found.detail) == (404, "NOT_FOUND", "no subscription sub_1")


# --- webhooks ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "service"),
    [
        ({"type": "checkout.session.completed", "data": {"object": {"mode": "subscription"}}}, "subscriptions"),
        ({"type": "checkout.session.expired", "data": {"object": {"mode": "subscription"}}}, "subscriptions"),
        ({"type": "checkout.session.completed", "data": {"object": {"mode": "payment"}}}, "payments"),
        ({"type": "checkout.session.completed", "data": {"object": {}}}, "payments"),
        ({"type": "checkout.session.completed", "data": {"object": {"mode": "setup"}}}, None),
        ({"type": "checkout.session.completed", "data": {"object": {"mode": ["subscription"]}}}, None),
        ({"type": "customer.subscription.created"}, "subscriptions"),
        ({"type": "customer.subscription.updated"}, "subscriptions"),
        ({"type": "customer.subscription.deleted"}, "subscriptions"),
        ({"type": "customer.subscription.trial_will_end"}, "subscriptions"),
        ({"type": "customer.subscription.paused"}, "subscriptions"),
        ({"type": "invoice.paid"}, "subscriptions"),
        ({"type": "invoice.payment_failed"}, "subscriptions"),
        ({"type": "invoice.payment_succeeded"}, "subscriptions"),
        ({"type": "invoice.finalized"}, "subscriptions"),
        ({"type": "invoiceitem.created"}, None),
        ({"type": "customer.updated"}, None),
        ({"type": "customer.subscriptionx"}, None),
        ({"type": "payment_intent.succeeded"}, "payments"),
        ({"type": "charge.refunded"}, "payments"),
    ],
)
def test_subscription_events_go_to_the_subscriptions_service(event: dict[str, Any], service: str | None) -> None:
    assert owner(event) == service


# --- the OpenAPI document ----------------------------------------------------------------------

OPERATIONS = {
    ("/api/plans", "get"): "listPlans",
    ("/api/stripe/create-checkout-session", "post"): "createCheckoutSession",
    ("/api/stripe/create-subscription", "post"): "createSubscription",
    ("/api/subscriptions/{id}", "get"): "listSubscriptions",
    ("/api/subscriptions/{id}", "put"): "updateSubscription",
    ("/api/subscriptions/{id}", "delete"): "cancelSubscription",
    ("/api/subscriptions/{subscription_id}/reactivate", "post"): "reactivateSubscription",
    ("/api/subscriptions/{subscription_id}/pause", "post"): "pauseSubscription",
    ("/api/subscriptions/{subscription_id}/resume", "post"): "resumeSubscription",
    ("/api/stripe/customer-portal", "post"): "createCustomerPortalSession",
}


def test_the_document_lists_the_subscription_operations(spec: dict[str, Any]) -> None:
    for (path, method), operation_id in OPERATIONS.items():
        assert spec["paths"][path][method]["operationId"] == operation_id
    assert spec["paths"]["/api/plans"]["get"]["security"] == []


def test_every_subscription_mutation_documents_its_key_replays_and_conflicts(spec: dict[str, Any]) -> None:
    for (path, method), operation_id in OPERATIONS.items():
        if method == "get":
            continue
        operation = spec["paths"][path][method]
        assert {"$ref": "#/components/parameters/IdempotencyKey"} in operation["parameters"], operation_id
        success = next(status for status in operation["responses"] if status.startswith("2"))
        assert "Idempotent-Replayed" in operation["responses"][success]["headers"], operation_id
        for status in ("400", "401", "404", "409", "422", "503"):
            assert status in operation["responses"], (operation_id, status)


def test_the_checkout_documents_both_shapes(spec: dict[str, Any]) -> None:
    operation = spec["paths"]["/api/stripe/create-checkout-session"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "oneOf": [
            {"$ref": "#/components/schemas/CheckoutSessionRequest"},
            {"$ref": "#/components/schemas/PlanCheckoutRequest"},
        ]
    }
    assert operation["responses"]["201"]["content"]["application/json"]["schema"] == {
        "oneOf": [
            {"$ref": "#/components/schemas/CheckoutSessionCreated"},
            {"$ref": "#/components/schemas/SubscriptionCheckoutCreated"},
        ]
    }
    request = {**operation["requestBody"]["content"]["application/json"]["schema"], "components": spec["components"]}
    validator = jsonschema.Draft202012Validator(request)
    assert validator.is_valid({"package_id": "credits-100", **URLS})
    assert validator.is_valid({"plan_id": "pro", "quantity": 2, **URLS})
    assert not validator.is_valid({"package_id": "credits-100", "plan_id": "pro", **URLS})
    assert not validator.is_valid(URLS)


def test_path_parameters_are_the_validated_ones(spec: dict[str, Any]) -> None:
    listing = spec["paths"]["/api/subscriptions/{id}"]["get"]["parameters"][0]
    assert (listing["name"], listing["in"], listing["required"]) == ("id", "path", True)
    assert listing["schema"]["pattern"] == "^[A-Za-z0-9_.:@-]{1,128}$"
    pause = spec["paths"]["/api/subscriptions/{subscription_id}/pause"]["post"]["parameters"][0]
    assert (pause["name"], pause["in"], pause["required"]) == ("subscription_id", "path", True)


def test_the_cancellation_body_is_optional_and_a_change_needs_a_plan_or_quantity(spec: dict[str, Any]) -> None:
    assert spec["paths"]["/api/subscriptions/{id}"]["delete"]["requestBody"]["required"] is False
    schema = {"$ref": "#/components/schemas/UpdateSubscriptionRequest", "components": spec["components"]}
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid({"quantity": 2})
    assert not validator.is_valid({"proration_behavior": "none"})
    assert not validator.is_valid({"quantity": 1001})
