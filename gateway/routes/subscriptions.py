"""Subscriptions: `/api/plans`, `/api/stripe/create-subscription`, `/api/stripe/customer-portal` and
`/api/subscriptions/...` (list, change, cancel, reactivate, pause, resume).

(Subscribing through Stripe Checkout is `POST /api/stripe/create-checkout-session` with a `plan_id`:
see `gateway.routes.payments`.)

A user subscribes for themselves and lists only their own subscriptions (403
otherwise, before any call); admins may list anyone's. Calls naming a
subscription pass the caller as the actor: the Subscriptions service answers
NOT_FOUND for another user's subscription, so its existence does not show.
Every mutating call requires an `Idempotency-Key`; a replay answers
`Idempotent-Replayed: true`. The customer portal requires the key too, but
`CreatePortalSession` does not store its answer: a retry makes a new session.
The portal may send the customer back only to an allowed origin
(`GATEWAY_ALLOWED_REDIRECT_ORIGINS`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from starlette.requests import Request
from starlette.responses import Response

from billing.subscriptions.v1 import subscriptions_pb2 as pb
from gateway.auth import Principal, TokenVerifier
from gateway.grpc_clients import Backends, Caller
from gateway.openapi import Operation, Reply
from gateway.problems import Problem, Reason
from gateway.routes.admin import REPLAYED_HEADER
from gateway.routes.common import caller, json_response, principal
from gateway.routes.payments import check_redirect
from gateway.schemas import FieldError
from gateway.subscription_schemas import (
    PAUSE_VALUES,
    PRORATION_VALUES,
    CancelSubscriptionRequest,
    CreateSubscriptionRequest,
    PauseSubscriptionRequest,
    Plans,
    PortalSession,
    PortalSessionRequest,
    Subscription,
    SubscriptionActionPath,
    SubscriptionCreated,
    SubscriptionItemPath,
    SubscriptionReply,
    SubscriptionsPage,
    SubscriptionsQuery,
    UpdateSubscriptionRequest,
    UserPath,
)
from gateway.validation import idempotency_key, invalid, json_body, optional_json_body, parse_path, parse_query
from svckit import logs

CHANGE_PROBLEMS = (400, 401, 403, 404, 409, 413, 415, 422, 500, 503, 504)
BODYLESS_CHANGE_PROBLEMS = (400, 401, 403, 404, 409, 422, 500, 503, 504)
READ_PROBLEMS = (400, 401, 403, 500, 503, 504)
# Names a user for GET and a subscription for PUT and DELETE: OpenAPI forbids two path templates
# that differ only in their parameter's name, so both share `{id}`.
ITEM_PATH = "/api/subscriptions/{id}"


class _Changed(Protocol):
    @property
    def subscription(self) -> pb.Subscription: ...


Changed = TypeVar("Changed", bound=_Changed)
Req = TypeVar("Req")


def update_errors(body: UpdateSubscriptionRequest) -> list[FieldError]:
    """A change names a new plan, a new quantity, or both."""
    if body.plan_id is None and body.quantity is None:
        return [FieldError(field=name, message="send plan_id, quantity or both") for name in ("plan_id", "quantity")]
    return []


def timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def operations(
    backends: Backends, verifier: TokenVerifier, max_body_bytes: int, redirect_origins: Sequence[str]
) -> list[Operation]:
    async def list_plans(request: Request) -> Response:
        # The catalog is public: asked for by the gateway itself, not by a user.
        anyone = Caller(request_id=logs.request_id_var.get(), actor="service:gateway")
        reply = await backends.call(backends.subscriptions.ListPlans, pb.ListPlansRequest(), anyone)
        return json_response(Plans.from_pb(reply.message))

    async def create_subscription(request: Request) -> Response:
        who = principal(request, verifier)
        who.require_access_to_user(who.user_id)
        key = idempotency_key(request)
        body = await json_body(request, CreateSubscriptionRequest, max_body_bytes)
        reply = await backends.call(
            backends.subscriptions.CreateSubscription,
            pb.CreateSubscriptionRequest(
                user_id=who.user_id,
                plan_id=body.plan_id,
                currency=body.currency or "",
                interval=body.interval or "",
                quantity=body.quantity or 0,
            ),
            caller(who, key),
        )
        created = SubscriptionCreated(
            subscription=Subscription.from_pb(reply.message.subscription),
            client_secret=reply.message.client_secret or None,
        )
        return json_response(created, status=201, headers={REPLAYED_HEADER: "true"} if reply.replayed else {})

    async def list_subscriptions(request: Request) -> Response:
        who = principal(request, verifier)
        who.require_role()
        user_id = parse_path(request.path_params, UserPath).id
        who.require_access_to_user(user_id, "subscriptions")
        query = parse_query(request.query_params, SubscriptionsQuery)
        reply = await backends.call(
            backends.subscriptions.ListSubscriptions,
            pb.ListSubscriptionsRequest(
                user_id=user_id, page_size=query.page_size or 0, page_token=query.page_token or ""
            ),
            caller(who),
        )
        page = SubscriptionsPage(
            subscriptions=[Subscription.from_pb(s) for s in reply.message.subscriptions],
            next_page_token=reply.message.next_page_token or None,
        )
        return json_response(page)

    async def changed(
        who: Principal,
        key: str,
        method: grpc.aio.UnaryUnaryMultiCallable[Req, Changed],
        grpc_request: Req,
    ) -> Response:
        reply = await backends.call(method, grpc_request, caller(who, key))
        body = SubscriptionReply(subscription=Subscription.from_pb(reply.message.subscription))
        return json_response(body, headers={REPLAYED_HEADER: "true"} if reply.replayed else {})

    def subscription_action(request: Request) -> tuple[Principal, str, str]:
        """The caller, the subscription named by the path, and the Idempotency-Key."""
        who = principal(request, verifier)
        who.require_role()
        if "id" in request.path_params:  # ITEM_PATH; the others name it subscription_id
            subscription_id = parse_path(request.path_params, SubscriptionItemPath).id
        else:
            subscription_id = parse_path(request.path_params, SubscriptionActionPath).subscription_id
        return who, subscription_id, idempotency_key(request)

    async def update_subscription(request: Request) -> Response:
        who, subscription_id, key = subscription_action(request)
        body = await json_body(request, UpdateSubscriptionRequest, max_body_bytes)
        errors = update_errors(body)
        if errors:
            raise invalid(errors, "request body")
        return await changed(
            who,
            key,
            backends.subscriptions.UpdateSubscription,
            pb.UpdateSubscriptionRequest(
                subscription_id=subscription_id,
                plan_id=body.plan_id or "",
                quantity=body.quantity or 0,
                proration_behavior=(
                    PRORATION_VALUES[body.proration_behavior]
                    if body.proration_behavior
                    else pb.PRORATION_BEHAVIOR_UNSPECIFIED
                ),
            ),
        )

    async def cancel_subscription(request: Request) -> Response:
        who, subscription_id, key = subscription_action(request)
        body = await optional_json_body(request, CancelSubscriptionRequest, max_body_bytes)
        return await changed(
            who,
            key,
            backends.subscriptions.CancelSubscription,
            pb.CancelSubscriptionRequest(
                subscription_id=subscription_id, at_period_end=body.at_period_end, reason=body.reason or ""
            ),
        )

    async def reactivate_subscription(request: Request) -> Response:
        who, subscription_id, key = subscription_action(request)
        return await changed(
            who,
            key,
            backends.subscriptions.ReactivateSubscription,
            pb.ReactivateSubscriptionRequest(subscription_id=subscription_id),
        )

    async def pause_subscription(request: Request) -> Response:
        who, subscription_id, key = subscription_action(request)
        body = await json_body(request, PauseSubscriptionRequest, max_body_bytes)
        grpc_request = pb.PauseSubscriptionRequest(
            subscription_id=subscription_id, behavior=PAUSE_VALUES[body.behavior]
        )
        if body.resumes_at is not None:
            grpc_request.resumes_at.CopyFrom(timestamp(body.resumes_at))
        return await changed(who, key, backends.subscriptions.PauseSubscription, grpc_request)

    async def resume_subscription(request: Request) -> Response:
        who, subscription_id, key = subscription_action(request)
        return await changed(
            who,
            key,
            backends.subscriptions.ResumeSubscription,
            pb.ResumeSubscriptionRequest(subscription_id=subscription_id),
        )

    async def customer_portal(request: Request) -> Response:
        who = principal(request, verifier)
        who.require_access_to_user(who.user_id)
        key = idempotency_key(request)
        body = await json_body(request, PortalSessionRequest, max_body_bytes)
        error = check_redirect("return_url", body.return_url, redirect_origins)
        if error is not None:
            raise Problem(400, Reason.INVALID_ARGUMENT, "the return URL must stay on an allowed origin", errors=[error])
        reply = await backends.call(
            backends.subscriptions.CreatePortalSession,
            pb.CreatePortalSessionRequest(user_id=who.user_id, return_url=body.return_url),
            caller(who, key),
        )
        headers = {REPLAYED_HEADER: "true"} if reply.replayed else {}
        return json_response(PortalSession(url=reply.message.url), headers=headers)

    changed_reply = (Reply(200, "Changed (or replayed).", SubscriptionReply, headers=(REPLAYED_HEADER,)),)
    return [
        Operation(
            method="GET",
            path="/api/plans",
            operation_id="listPlans",
            summary="The subscription plans on sale, with their prices",
            tags=("subscriptions",),
            handler=list_plans,
            authenticated=False,
            replies=(Reply(200, "The plans.", Plans),),
            problems=(500, 503, 504),
        ),
        Operation(
            method="POST",
            path="/api/stripe/create-subscription",
            operation_id="createSubscription",
            summary="Subscribe to a plan, confirming the first payment with a Stripe Elements form",
            description=(
                "Creates (once per Idempotency-Key) a Stripe subscription for the caller, incomplete until its "
                "first invoice is paid with `client_secret`. One live subscription per plan family: 409 "
                "SUBSCRIPTION_EXISTS otherwise; 503 PLAN_NOT_SYNCED while the plan has no Stripe price."
            ),
            tags=("subscriptions",),
            handler=create_subscription,
            body=CreateSubscriptionRequest,
            idempotency_key=True,
            replies=(Reply(201, "Created (or replayed).", SubscriptionCreated, headers=(REPLAYED_HEADER,)),),
            problems=CHANGE_PROBLEMS,
        ),
        Operation(
            method="GET",
            path=ITEM_PATH,
            operation_id="listSubscriptions",
            summary="A user's subscriptions, newest first (the caller's own, or anyone's for an admin)",
            description=(
                "Here `id` is a user id. Follow `next_page_token` (as `page_token`) until it is null to read all."
            ),
            tags=("subscriptions",),
            handler=list_subscriptions,
            path_parameters=UserPath,
            query=SubscriptionsQuery,
            replies=(Reply(200, "One page of subscriptions.", SubscriptionsPage),),
            problems=READ_PROBLEMS,
        ),
        Operation(
            method="PUT",
            path=ITEM_PATH,
            operation_id="updateSubscription",
            summary="Change a subscription's plan and/or quantity",
            description=(
                "Here `id` is a subscription id. Another user's subscription is 404. 409 SUBSCRIPTION_STATE when "
                "its current state (named in `detail`) does not allow the change; 503 PLAN_NOT_SYNCED while the "
                "new plan has no Stripe price."
            ),
            tags=("subscriptions",),
            handler=update_subscription,
            path_parameters=SubscriptionItemPath,
            body=UpdateSubscriptionRequest,
            idempotency_key=True,
            replies=changed_reply,
            problems=CHANGE_PROBLEMS,
        ),
        Operation(
            method="DELETE",
            path=ITEM_PATH,
            operation_id="cancelSubscription",
            summary="Cancel a subscription at the end of its period (default) or now",
            description=(
                "Here `id` is a subscription id. The JSON body is optional: without one, the subscription ends "
                "with its current period. Another user's subscription is 404; 409 SUBSCRIPTION_STATE when its "
                "current state (named in `detail`) does not allow canceling."
            ),
            tags=("subscriptions",),
            handler=cancel_subscription,
            path_parameters=SubscriptionItemPath,
            body=CancelSubscriptionRequest,
            body_required=False,
            idempotency_key=True,
            replies=(
                Reply(200, "Canceled or scheduled (or replayed).", SubscriptionReply, headers=(REPLAYED_HEADER,)),
            ),
            problems=CHANGE_PROBLEMS,
        ),
        Operation(
            method="POST",
            path="/api/subscriptions/{subscription_id}/reactivate",
            operation_id="reactivateSubscription",
            summary="Withdraw a cancellation scheduled for the end of the period",
            description="409 SUBSCRIPTION_STATE when no cancellation is pending (the current state is in `detail`).",
            tags=("subscriptions",),
            handler=reactivate_subscription,
            path_parameters=SubscriptionActionPath,
            idempotency_key=True,
            replies=changed_reply,
            problems=BODYLESS_CHANGE_PROBLEMS,
        ),
        Operation(
            method="POST",
            path="/api/subscriptions/{subscription_id}/pause",
            operation_id="pauseSubscription",
            summary="Pause a subscription's payment collection",
            description=(
                "Stripe keeps the subscription but stops collecting payment (its pause_collection), until "
                "`resumes_at` or a resume. 409 SUBSCRIPTION_STATE when the current state does not allow it."
            ),
            tags=("subscriptions",),
            handler=pause_subscription,
            path_parameters=SubscriptionActionPath,
            body=PauseSubscriptionRequest,
            idempotency_key=True,
            replies=changed_reply,
            problems=CHANGE_PROBLEMS,
        ),
        Operation(
            method="POST",
            path="/api/subscriptions/{subscription_id}/resume",
            operation_id="resumeSubscription",
            summary="Resume a paused subscription's payment collection",
            description="409 SUBSCRIPTION_STATE when collection is not paused (the current state is in `detail`).",
            tags=("subscriptions",),
            handler=resume_subscription,
            path_parameters=SubscriptionActionPath,
            idempotency_key=True,
            replies=changed_reply,
            problems=BODYLESS_CHANGE_PROBLEMS,
        ),
        Operation(
            method="POST",
            path="/api/stripe/customer-portal",
            operation_id="createCustomerPortalSession",
            summary="Open Stripe's customer portal for the caller",
            description=(
                "Creates a Stripe Customer Portal session, where the caller manages payment methods, invoices "
                "and subscriptions; send them to `url`. The Idempotency-Key is required but not replayed: a "
                "retry creates a new session (a portal session is short-lived and changes nothing by itself)."
            ),
            tags=("subscriptions",),
            handler=customer_portal,
            body=PortalSessionRequest,
            idempotency_key=True,
            replies=(
                Reply(200, "Created (never a replay: see the description).", PortalSession, headers=(REPLAYED_HEADER,)),
            ),
            problems=CHANGE_PROBLEMS,
        ),
    ]
