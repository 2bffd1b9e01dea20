"""billing.subscriptions.v1.SubscriptionsService over gRPC: proto in, use case, proto out. No rules, no SQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from billing.common.v1 import money_pb2
from billing.subscriptions.v1 import subscriptions_pb2 as pb
from billing.subscriptions.v1 import subscriptions_pb2_grpc
from subscriptions_svc import domain
from subscriptions_svc.event_handler import StripeEventHandler
from subscriptions_svc.service import CheckoutStarted, SubscriptionCreated, SubscriptionsService
from svckit.admin_pb import audit_to_pb, chain_to_pb, event_to_pb
from svckit.audit import AuditFilter
from svckit.errors import FieldViolation, InvalidArgument
from svckit.idempotency import Outcome
from svckit.inbox import StoredEvent
from svckit.pagination import position_from_token, position_token
from svckit.server import apply_stripe_event, current_call, in_thread

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["SubscriptionsService"].full_name

SERVICE = "subscriptions"
STATUS_TO_PB = {s: pb.SubscriptionStatus.Value(f"SUBSCRIPTION_STATUS_{s.name}") for s in domain.Status}
STATUS_FROM_PB: dict[int, domain.Status] = {int(value): key for key, value in STATUS_TO_PB.items()}
PAUSE_TO_PB = {b: pb.PauseBehavior.Value(f"PAUSE_BEHAVIOR_{b.name}") for b in domain.PauseBehavior}
PAUSE_FROM_PB = {value: key for key, value in PAUSE_TO_PB.items()}
PRORATION_FROM_PB = {
    pb.PRORATION_BEHAVIOR_UNSPECIFIED: domain.ProrationBehavior.CREATE_PRORATIONS,
    pb.PRORATION_BEHAVIOR_CREATE_PRORATIONS: domain.ProrationBehavior.CREATE_PRORATIONS,
    pb.PRORATION_BEHAVIOR_NONE: domain.ProrationBehavior.NONE,
    pb.PRORATION_BEHAVIOR_ALWAYS_INVOICE: domain.ProrationBehavior.ALWAYS_INVOICE,
}


def _timestamp(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def subscription_to_pb(s: domain.Subscription) -> pb.Subscription:
    message = pb.Subscription(
        id=s.id,
        user_id=s.user_id,
        plan_id=s.plan_id,
        family=s.family,
        quantity=s.quantity,
        status=STATUS_TO_PB[s.status],
        currency=s.currency,
        interval=s.interval,
        stripe_subscription_id=s.stripe_subscription_id or "",
        cancel_at_period_end=s.cancel_at_period_end,
        cancellation_reason=s.cancellation_reason or "",
        periods_granted=s.periods_granted,
        current_period_start=_timestamp(s.current_period_start),
        current_period_end=_timestamp(s.current_period_end),
        trial_end=_timestamp(s.trial_end),
        cancel_at=_timestamp(s.cancel_at),
        canceled_at=_timestamp(s.canceled_at),
        ended_at=_timestamp(s.ended_at),
        create_time=_timestamp(s.created_at),
        update_time=_timestamp(s.updated_at),
    )
    if s.pause_behavior is not None:
        message.pause_collection.CopyFrom(
            pb.PauseCollection(behavior=PAUSE_TO_PB[s.pause_behavior], resumes_at=_timestamp(s.pause_resumes_at))
        )
    return message


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString(deterministic=True)
    return data


def _optional_time(message: Any, field: str) -> datetime | None:
    if not message.HasField(field):
        return None
    moment: datetime = getattr(message, field).ToDatetime(tzinfo=UTC)
    return moment


def _status_filter(value: int) -> domain.Status | None:
    if value == pb.SUBSCRIPTION_STATUS_UNSPECIFIED:
        return None
    status = STATUS_FROM_PB.get(value)
    if status is None:
        raise InvalidArgument.from_violations([FieldViolation("status", "not a subscription status")])
    return status


def _encode_subscription(sub: domain.Subscription) -> bytes:
    return _serialize(subscription_to_pb(sub))


async def _run(method: Callable[..., Outcome], *args: Any) -> pb.Subscription:
    """A change whose response is one subscription: run it keyed, and mark replays."""
    call = current_call()
    outcome = await in_thread(method, call.actor, *args, _encode_subscription)
    call.mark_replayed(outcome.replayed)
    return pb.Subscription.FromString(outcome.response)


class SubscriptionsServicer(subscriptions_pb2_grpc.SubscriptionsServiceServicer):
    def __init__(self, service: SubscriptionsService, events: StripeEventHandler) -> None:
        self.service = service
        self.events = events

    async def ListPlans(self, request: pb.ListPlansRequest, context: Any) -> pb.ListPlansResponse:
        on_sale = await in_thread(self.service.list_plans)
        return pb.ListPlansResponse(
            plans=[
                pb.Plan(
                    plan_id=item.plan.plan_id,
                    name=item.plan.name,
                    family=item.plan.family,
                    credits_per_period=item.plan.credits_per_period,
                    trial_days=item.plan.trial_days,
                    trial_credits=item.plan.trial_credits,
                    credits_roll_over=item.plan.credits_roll_over,
                    prices=[
                        pb.PlanPrice(
                            amount=money_pb2.Money(currency=p.currency, amount_minor=p.amount_minor),
                            interval=p.interval,
                            stripe_price_id=p.stripe_price_id,
                        )
                        for p in item.prices
                    ],
                )
                for item in on_sale
            ]
        )

    async def CreateCheckoutSession(
        self, request: pb.CreateCheckoutSessionRequest, context: Any
    ) -> pb.CreateCheckoutSessionResponse:
        call = current_call()
        cmd = domain.Subscribe(
            user_id=request.user_id,
            plan_id=request.plan_id,
            currency=request.currency,
            interval=request.interval,
            quantity=request.quantity or 1,
            success_url=request.success_url,
            cancel_url=request.cancel_url,
        )

        def encode(started: CheckoutStarted) -> bytes:
            return _serialize(
                pb.CreateCheckoutSessionResponse(
                    checkout_session_id=started.checkout_session_id,
                    url=started.url,
                    subscription_id=started.subscription.id,
                )
            )

        outcome = await in_thread(
            self.service.create_checkout_session, call.actor, cmd, call.idempotent(request), encode
        )
        call.mark_replayed(outcome.replayed)
        return pb.CreateCheckoutSessionResponse.FromString(outcome.response)

    async def CreateSubscription(
        self, request: pb.CreateSubscriptionRequest, context: Any
    ) -> pb.CreateSubscriptionResponse:
        call = current_call()
        cmd = domain.Subscribe(
            user_id=request.user_id,
            plan_id=request.plan_id,
            currency=request.currency,
            interval=request.interval,
            quantity=request.quantity or 1,
        )

        def encode(created: SubscriptionCreated) -> bytes:
            return _serialize(
                pb.CreateSubscriptionResponse(
                    subscription=subscription_to_pb(created.subscription), client_secret=created.client_secret
                )
            )

        outcome = await in_thread(self.service.create_subscription, call.actor, cmd, call.idempotent(request), encode)
        call.mark_replayed(outcome.replayed)
        return pb.CreateSubscriptionResponse.FromString(outcome.response)

    async def GetSubscription(self, request: pb.GetSubscriptionRequest, context: Any) -> pb.GetSubscriptionResponse:
        sub = await in_thread(self.service.get, current_call().actor, request.subscription_id)
        return pb.GetSubscriptionResponse(subscription=subscription_to_pb(sub))

    async def ListSubscriptions(
        self, request: pb.ListSubscriptionsRequest, context: Any
    ) -> pb.ListSubscriptionsResponse:
        page = await in_thread(
            self.service.list,
            current_call().actor,
            user_id=request.user_id,
            page_size=request.page_size,
            before=position_from_token(request.page_token),
            status=_status_filter(request.status),
        )
        return pb.ListSubscriptionsResponse(
            subscriptions=[subscription_to_pb(s) for s in page.subscriptions],
            next_page_token=position_token(page.next_before),
        )

    async def UpdateSubscription(
        self, request: pb.UpdateSubscriptionRequest, context: Any
    ) -> pb.UpdateSubscriptionResponse:
        cmd = domain.ChangePlan(
            plan_id=request.plan_id,
            quantity=request.quantity,
            proration=PRORATION_FROM_PB.get(request.proration_behavior, domain.ProrationBehavior.CREATE_PRORATIONS),
        )
        call = current_call()
        sub = await _run(self.service.change, request.subscription_id, cmd, call.idempotent(request))
        return pb.UpdateSubscriptionResponse(subscription=sub)

    async def CancelSubscription(
        self, request: pb.CancelSubscriptionRequest, context: Any
    ) -> pb.CancelSubscriptionResponse:
        cmd = domain.Cancel(at_period_end=request.at_period_end, reason=request.reason)
        call = current_call()
        sub = await _run(self.service.cancel, request.subscription_id, cmd, call.idempotent(request))
        return pb.CancelSubscriptionResponse(subscription=sub)

    async def ReactivateSubscription(
        self, request: pb.ReactivateSubscriptionRequest, context: Any
    ) -> pb.ReactivateSubscriptionResponse:
        call = current_call()
        sub = await _run(self.service.reactivate, request.subscription_id, call.idempotent(request))
        return pb.ReactivateSubscriptionResponse(subscription=sub)

    async def PauseSubscription(
        self, request: pb.PauseSubscriptionRequest, context: Any
    ) -> pb.PauseSubscriptionResponse:
        cmd = domain.Pause(
            behavior=PAUSE_FROM_PB.get(request.behavior),
            resumes_at=request.resumes_at.ToDatetime(tzinfo=UTC) if request.HasField("resumes_at") else None,
        )
        call = current_call()
        sub = await _run(self.service.pause, request.subscription_id, cmd, call.idempotent(request))
        return pb.PauseSubscriptionResponse(subscription=sub)

    async def ResumeSubscription(
        self, request: pb.ResumeSubscriptionRequest, context: Any
    ) -> pb.ResumeSubscriptionResponse:
        call = current_call()
        sub = await _run(self.service.resume, request.subscription_id, call.idempotent(request))
        return pb.ResumeSubscriptionResponse(subscription=sub)

    async def CreatePortalSession(
        self, request: pb.CreatePortalSessionRequest, context: Any
    ) -> pb.CreatePortalSessionResponse:
        url = await in_thread(self.service.portal_session, current_call().actor, request.user_id, request.return_url)
        return pb.CreatePortalSessionResponse(url=url)

    async def GetSubscriptionMetrics(
        self, request: pb.GetSubscriptionMetricsRequest, context: Any
    ) -> pb.GetSubscriptionMetricsResponse:
        span = domain.MetricsRange(_optional_time(request, "since"), _optional_time(request, "until"))
        metrics = await in_thread(self.service.metrics, current_call().actor, span)
        return pb.GetSubscriptionMetricsResponse(
            recurring=[
                pb.RecurringRevenue(currency=r.currency, mrr_minor=r.mrr_minor, arr_minor=r.arr_minor)
                for r in metrics.recurring
            ],
            by_status=[pb.StatusCount(status=STATUS_TO_PB[status], count=count) for status, count in metrics.by_status],
            new_subscriptions=metrics.new_subscriptions,
            churned_subscriptions=metrics.churned_subscriptions,
            invoice_revenue=[
                pb.InvoiceRevenue(currency=r.currency, paid_minor=r.paid_minor, invoices=r.invoices)
                for r in metrics.invoice_revenue
            ],
            daily_invoice_revenue=[
                pb.DailyInvoiceRevenue(date=r.day, currency=r.currency, paid_minor=r.paid_minor)
                for r in metrics.daily_invoice_revenue
            ],
        )

    async def ListStripeEvents(self, request: pb.ListStripeEventsRequest, context: Any) -> pb.ListStripeEventsResponse:
        page = await in_thread(
            self.service.stripe_events,
            current_call().actor,
            status=request.status,
            type_=request.type,
            page_size=request.page_size,
            before=position_from_token(request.page_token),
        )
        return pb.ListStripeEventsResponse(
            events=[event_to_pb(e) for e in page.events], next_page_token=position_token(page.next_before)
        )

    async def RedriveStripeEvent(
        self, request: pb.RedriveStripeEventRequest, context: Any
    ) -> pb.RedriveStripeEventResponse:
        call = current_call()

        def encode(event: StoredEvent) -> bytes:
            return _serialize(pb.RedriveStripeEventResponse(event=event_to_pb(event)))

        outcome = await in_thread(
            self.events.redrive, call.actor, event_id=request.event_id, call=call.idempotent(request), encode=encode
        )
        call.mark_replayed(outcome.replayed)
        return pb.RedriveStripeEventResponse.FromString(outcome.response)

    async def ListAuditRecords(self, request: pb.ListAuditRecordsRequest, context: Any) -> pb.ListAuditRecordsResponse:
        where = AuditFilter(
            actor=request.actor,
            action=request.action,
            since=_optional_time(request, "since"),
            until=_optional_time(request, "until"),
        )
        page = await in_thread(
            self.service.audit_records,
            current_call().actor,
            where,
            page_size=request.page_size,
            before=position_from_token(request.page_token),
        )
        return pb.ListAuditRecordsResponse(
            records=[audit_to_pb(r, SERVICE) for r in page.records], next_page_token=position_token(page.next_before)
        )

    async def HandleStripeEvent(
        self, request: pb.HandleStripeEventRequest, context: Any
    ) -> pb.HandleStripeEventResponse:
        return await apply_stripe_event(self.events.handle, request, pb.HandleStripeEventResponse)

    async def CheckAuditChain(self, request: pb.CheckAuditChainRequest, context: Any) -> pb.CheckAuditChainResponse:
        report = await in_thread(self.service.check_audit_chain, current_call().actor)
        return pb.CheckAuditChainResponse(audit_chain=chain_to_pb(report))
