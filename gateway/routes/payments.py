"""Buying credits and reading payments: `/api/credit-packages`, `/api/stripe/create-*`, `/api/payments`,
and the admin refund `/api/admin/payments/{payment_id}/refund`.

A user buys for themselves only; Checkout may send them back only to an
allowed origin (`GATEWAY_ALLOWED_REDIRECT_ORIGINS`). Every call that creates a
Stripe object requires an `Idempotency-Key`.

`POST /api/stripe/create-checkout-session` also starts a subscription: with
`plan_id` instead of `package_id` it goes to the Subscriptions service (see
`gateway.routes.subscriptions` for the rest of subscriptions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from billing.payments.v1 import payments_pb2 as pb
from billing.subscriptions.v1 import subscriptions_pb2
from gateway.auth import Principal, TokenVerifier
from gateway.grpc_clients import Backends, Caller
from gateway.openapi import Operation, Reply
from gateway.payment_schemas import (
    STATUS_VALUES,
    CheckoutSessionCreated,
    CheckoutSessionRequest,
    CreditPackages,
    Money,
    Payment,
    PaymentIntentCreated,
    PaymentIntentRequest,
    PaymentsPage,
    PaymentsQuery,
    RefundCreated,
    RefundRequest,
)
from gateway.problems import Problem, Reason
from gateway.routes.admin import REPLAYED_HEADER
from gateway.routes.common import caller, json_response, principal
from gateway.schemas import FieldError
from gateway.subscription_schemas import PlanCheckoutRequest, SubscriptionCheckoutCreated
from gateway.validation import idempotency_key, json_body, parse_one_of, parse_query, read_body, require_json
from svckit import logs

CREATE_PROBLEMS = (400, 401, 403, 409, 413, 415, 422, 500, 503, 504)
READ_PROBLEMS = (400, 401, 403, 404, 500, 503, 504)
# The field that tells a checkout's two shapes apart: a credit package, or a subscription plan.
CHECKOUT_SHAPES: Mapping[str, type[BaseModel]] = {"package_id": CheckoutSessionRequest, "plan_id": PlanCheckoutRequest}


def check_redirect(field: str, url: str, origins: Sequence[str]) -> FieldError | None:
    """Checkout may send the customer back only to an allowed origin."""
    if any(url == origin or url.startswith(origin + "/") or url.startswith(origin + "?") for origin in origins):
        return None
    return FieldError(field=field, message=f"must start with one of the allowed origins: {', '.join(origins)}")


def checkout_request(raw: bytes) -> CheckoutSessionRequest | PlanCheckoutRequest:
    """A checkout body: exactly one of `package_id` (buy credits) and `plan_id` (subscribe)."""
    body = parse_one_of(raw, CHECKOUT_SHAPES)
    assert isinstance(body, CheckoutSessionRequest | PlanCheckoutRequest)
    return body


def operations(
    backends: Backends, verifier: TokenVerifier, max_body_bytes: int, redirect_origins: Sequence[str]
) -> list[Operation]:
    async def list_packages(request: Request) -> Response:
        # The catalog is public: asked for by the gateway itself, not by a user.
        anyone = Caller(request_id=logs.request_id_var.get(), actor="service:gateway")
        reply = await backends.call(backends.payments.ListCreditPackages, pb.ListCreditPackagesRequest(), anyone)
        return json_response(CreditPackages.from_pb(reply.message))

    async def create_checkout_session(request: Request) -> Response:
        who = principal(request, verifier)
        who.require_access_to_user(who.user_id)
        key = idempotency_key(request)
        require_json(request.headers.get("content-type"))
        body = checkout_request(await read_body(request, max_body_bytes))
        errors = [
            e
            for e in (
                check_redirect("success_url", body.success_url, redirect_origins),
                check_redirect("cancel_url", body.cancel_url, redirect_origins),
            )
            if e is not None
        ]
        if errors:
            raise Problem(400, Reason.INVALID_ARGUMENT, "redirect URLs must stay on an allowed origin", errors=errors)
        if isinstance(body, PlanCheckoutRequest):
            return await subscription_checkout(who, key, body)
        reply = await backends.call(
            backends.payments.CreateCheckoutSession,
            pb.CreateCheckoutSessionRequest(
                user_id=who.user_id,
                package_id=body.package_id,
                currency=body.currency or "",
                success_url=body.success_url,
                cancel_url=body.cancel_url,
            ),
            caller(who, key),
        )
        created = CheckoutSessionCreated(
            payment_id=reply.message.payment_id,
            checkout_session_id=reply.message.checkout_session_id,
            url=reply.message.url,
        )
        return json_response(created, status=201, headers={REPLAYED_HEADER: "true"} if reply.replayed else {})

    async def subscription_checkout(who: Principal, key: str, body: PlanCheckoutRequest) -> Response:
        reply = await backends.call(
            backends.subscriptions.CreateCheckoutSession,
            subscriptions_pb2.CreateCheckoutSessionRequest(
                user_id=who.user_id,
                plan_id=body.plan_id,
                currency=body.currency or "",
                interval=body.interval or "",
                quantity=body.quantity or 0,
                success_url=body.success_url,
                cancel_url=body.cancel_url,
            ),
            caller(who, key),
        )
        created = SubscriptionCheckoutCreated(
            subscription_id=reply.message.subscription_id,
            checkout_session_id=reply.message.checkout_session_id,
            url=reply.message.url,
        )
        return json_response(created, status=201, headers={REPLAYED_HEADER: "true"} if reply.replayed else {})

    async def create_payment_intent(request: Request) -> Response:
        who = principal(request, verifier)
        who.require_access_to_user(who.user_id)
        key = idempotency_key(request)
        body = await json_body(request, PaymentIntentRequest, max_body_bytes)
        reply = await backends.call(
            backends.payments.CreatePaymentIntent,
            pb.CreatePaymentIntentRequest(
                user_id=who.user_id, package_id=body.package_id, currency=body.currency or ""
            ),
            caller(who, key),
        )
        created = PaymentIntentCreated(
            payment_id=reply.message.payment_id,
            payment_intent_id=reply.message.payment_intent_id,
            client_secret=reply.message.client_secret,
        )
        return json_response(created, status=201, headers={REPLAYED_HEADER: "true"} if reply.replayed else {})

    async def list_payments(request: Request) -> Response:
        who = principal(request, verifier)
        query = parse_query(request.query_params, PaymentsQuery)
        user_id = query.user_id or who.user_id
        who.require_access_to_user(user_id)
        return await _list(who, user_id, query)

    async def list_all_payments(request: Request) -> Response:
        who = principal(request, verifier)
        who.require_admin()
        query = parse_query(request.query_params, PaymentsQuery)
        return await _list(who, query.user_id or "", query)

    async def _list(who: Principal, user_id: str, query: PaymentsQuery) -> Response:
        reply = await backends.call(
            backends.payments.ListPayments,
            pb.ListPaymentsRequest(
                user_id=user_id,
                status=STATUS_VALUES[query.status] if query.status else pb.PAYMENT_STATUS_UNSPECIFIED,
                page_size=query.page_size or 0,
                page_token=query.page_token or "",
            ),
            caller(who),
        )
        page = PaymentsPage(
            payments=[Payment.from_pb(p) for p in reply.message.payments],
            next_page_token=reply.message.next_page_token or None,
        )
        return json_response(page)

    async def get_payment(request: Request) -> Response:
        who = principal(request, verifier)
        who.require_role()
        reply = await backends.call(
            backends.payments.GetPayment,
            pb.GetPaymentRequest(payment_id=request.path_params["payment_id"]),
            caller(who),
        )
        return json_response(Payment.from_pb(reply.message.payment))

    async def refund(request: Request) -> Response:
        who = principal(request, verifier)
        who.require_admin()
        key = idempotency_key(request)
        body = await json_body(request, RefundRequest, max_body_bytes)
        grpc_request = pb.RefundRequest(payment_id=request.path_params["payment_id"], reason=body.reason or "")
        if body.amount_minor is not None:
            grpc_request.amount_minor = body.amount_minor
        reply = await backends.call(backends.payments.Refund, grpc_request, caller(who, key))
        created = RefundCreated(
            payment=Payment.from_pb(reply.message.payment),
            stripe_refund_id=reply.message.stripe_refund_id,
            amount=Money.from_pb(reply.message.amount),
        )
        return json_response(created, status=201, headers={REPLAYED_HEADER: "true"} if reply.replayed else {})

    return [
        Operation(
            method="GET",
            path="/api/credit-packages",
            operation_id="listCreditPackages",
            summary="The credit packages on sale, with their prices",
            tags=("payments",),
            handler=list_packages,
            authenticated=False,
            replies=(Reply(200, "The catalog.", CreditPackages),),
            problems=(500, 503, 504),
        ),
        Operation(
            method="POST",
            path="/api/stripe/create-checkout-session",
            operation_id="createCheckoutSession",
            summary="Start buying a credit package, or subscribing to a plan, through Stripe Checkout",
            description=(
                "Creates (once per Idempotency-Key) a Stripe Checkout Session for the caller and returns its URL. "
                "Send exactly one of `package_id` and `plan_id`. With `package_id` (a one-time purchase) the "
                "credits land in the caller's wallet when Stripe reports the payment; the answer names the "
                "`payment_id`. With `plan_id` (a subscription) the answer names the `subscription_id`, "
                "incomplete until paid; one live subscription per plan family (409 SUBSCRIPTION_EXISTS "
                "otherwise), and 503 PLAN_NOT_SYNCED while the plan has no Stripe price."
            ),
            tags=("payments", "subscriptions"),
            handler=create_checkout_session,
            body=(CheckoutSessionRequest, PlanCheckoutRequest),
            idempotency_key=True,
            replies=(
                Reply(
                    201,
                    "Created (or replayed): a purchase's or a subscription's checkout.",
                    (CheckoutSessionCreated, SubscriptionCheckoutCreated),
                    headers=(REPLAYED_HEADER,),
                ),
            ),
            problems=(*CREATE_PROBLEMS, 404),
        ),
        Operation(
            method="POST",
            path="/api/stripe/create-payment-intent",
            operation_id="createPaymentIntent",
            summary="Start buying a credit package with a Stripe Elements form",
            tags=("payments",),
            handler=create_payment_intent,
            body=PaymentIntentRequest,
            idempotency_key=True,
            replies=(Reply(201, "Created (or replayed).", PaymentIntentCreated, headers=(REPLAYED_HEADER,)),),
            problems=CREATE_PROBLEMS,
        ),
        Operation(
            method="GET",
            path="/api/payments",
            operation_id="listPayments",
            summary="The caller's payments, newest first, with receipt links",
            tags=("payments",),
            handler=list_payments,
            query=PaymentsQuery,
            replies=(Reply(200, "One page of payments.", PaymentsPage),),
            problems=READ_PROBLEMS,
        ),
        Operation(
            method="GET",
            path="/api/payments/{payment_id}",
            operation_id="getPayment",
            summary="One payment (the caller's own, or any for an admin)",
            tags=("payments",),
            handler=get_payment,
            replies=(Reply(200, "The payment.", Payment),),
            problems=READ_PROBLEMS,
        ),
        Operation(
            method="GET",
            path="/api/admin/payments",
            operation_id="listAllPayments",
            summary="Everyone's payments, filtered by user and status (admin)",
            tags=("admin",),
            handler=list_all_payments,
            query=PaymentsQuery,
            replies=(Reply(200, "One page of payments.", PaymentsPage),),
            problems=READ_PROBLEMS,
        ),
        Operation(
            method="POST",
            path="/api/admin/payments/{payment_id}/refund",
            operation_id="refundPayment",
            summary="Refund a payment in full or in part (admin)",
            description=(
                "Refunds through Stripe; the credits of the refunded share are taken back. Credits the user already "
                "spent cannot be: they are recorded as the payment's credit_shortfall."
            ),
            tags=("admin",),
            handler=refund,
            body=RefundRequest,
            idempotency_key=True,
            replies=(Reply(201, "Refunded (or replayed).", RefundCreated, headers=(REPLAYED_HEADER,)),),
            problems=(*CREATE_PROBLEMS, 404),
        ),
    ]
