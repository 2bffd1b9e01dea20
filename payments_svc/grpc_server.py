"""billing.payments.v1.PaymentsService over gRPC: proto in, use case, proto out. No rules, no SQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from billing.common.v1 import money_pb2
from billing.payments.v1 import payments_pb2 as pb
from billing.payments.v1 import payments_pb2_grpc
from payments_svc import domain
from payments_svc.reconciler import Report
from payments_svc.service import CheckoutCreated, IntentCreated, PaymentsService, RefundCreated
from svckit.admin_pb import audit_to_pb, chain_to_pb, event_to_pb
from svckit.audit import AuditFilter
from svckit.errors import FieldViolation, InvalidArgument
from svckit.inbox import StoredEvent
from svckit.pagination import decode_page_token, encode_page_token, position_from_token, position_token
from svckit.server import apply_stripe_event, current_call, in_thread

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["PaymentsService"].full_name

STATUS_TO_PB = {status: pb.PaymentStatus.Value(f"PAYMENT_STATUS_{status.name}") for status in domain.PaymentStatus}
STATUS_FROM_PB = {value: key for key, value in STATUS_TO_PB.items()}
FLOW_TO_PB = {flow: pb.PaymentFlow.Value(f"PAYMENT_FLOW_{flow.name}") for flow in domain.PaymentFlow}
KIND_TO_PB = {kind: pb.TransactionKind.Value(f"TRANSACTION_KIND_{kind.name}") for kind in domain.TransactionKind}
KIND_FROM_PB = {value: key for key, value in KIND_TO_PB.items()}
KIND_NAMES = {kind: kind.name.lower() for kind in domain.TransactionKind}
AUDIT_SERVICE = "payments"


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _money(currency: str, amount: int) -> money_pb2.Money:
    return money_pb2.Money(currency=currency, amount_minor=amount)


def payment_to_pb(p: domain.Payment) -> pb.Payment:
    return pb.Payment(
        id=p.id,
        user_id=p.user_id,
        package_id=p.package_id,
        credits=p.credits,
        amount=_money(p.currency, p.amount_minor),
        amount_refunded=_money(p.currency, p.amount_refunded_minor),
        status=STATUS_TO_PB[p.status],
        flow=FLOW_TO_PB[p.flow],
        stripe_checkout_session_id=p.stripe_checkout_session_id or "",
        stripe_payment_intent_id=p.stripe_payment_intent_id or "",
        stripe_charge_id=p.stripe_charge_id or "",
        receipt_url=p.receipt_url or "",
        credits_granted=p.credits_granted,
        credits_reversed=p.credits_reversed,
        credit_shortfall=p.credit_shortfall,
        history=[
            pb.PaymentStatusChange(status=STATUS_TO_PB[c.status], source=c.source, time=_timestamp(c.at))
            for c in p.history
        ],
        create_time=_timestamp(p.created_at),
        update_time=_timestamp(p.updated_at),
    )


def transaction_to_pb(t: domain.Transaction) -> pb.Transaction:
    return pb.Transaction(
        id=t.id,
        kind=KIND_TO_PB[t.kind],
        user_id=t.user_id,
        payment_id=t.payment_id,
        amount=_money(t.currency, t.amount_minor),
        status=t.status,
        create_time=_timestamp(t.created_at),
        actor=t.actor,
        receipt_url=t.receipt_url,
    )


def report_to_pb(report: Report) -> pb.ReconcileResponse:
    return pb.ReconcileResponse(
        since=_timestamp(report.since),
        until=_timestamp(report.until),
        stripe_checked=report.stripe,
        checked=report.findings.checked,
        in_flight_payment_ids=report.findings.in_flight,
        discrepancies=[
            pb.Discrepancy(kind=d.kind.value, ids=d.ids, expected=d.expected, actual=d.actual, fix=d.fix)
            for d in report.findings.discrepancies
        ],
    )


def _time(request: Any, name: str) -> datetime | None:
    """A Timestamp field as an aware UTC datetime; None when unset."""
    if not request.HasField(name):
        return None
    stamp: Timestamp = getattr(request, name)
    return stamp.ToDatetime(tzinfo=UTC)


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString(deterministic=True)
    return data


def _transaction_position(token: str) -> domain.TransactionPosition | None:
    position = decode_page_token(token)
    if not position:
        return None
    kinds = {name: kind for kind, name in KIND_NAMES.items()}
    try:
        at = datetime.fromisoformat(str(position["t"])).astimezone(UTC)
        return domain.TransactionPosition(at, kinds[str(position["k"])], str(position["id"]))
    except (KeyError, TypeError, ValueError):
        raise InvalidArgument.from_violations(
            [FieldViolation("page_token", "not a page token this service issued")]
        ) from None


def _transaction_token(position: domain.TransactionPosition | None) -> str:
    if position is None:
        return ""
    return encode_page_token({"t": position.created_at.isoformat(), "k": KIND_NAMES[position.kind], "id": position.id})


class PaymentsServicer(payments_pb2_grpc.PaymentsServiceServicer):
    def __init__(self, service: PaymentsService) -> None:
        self.service = service

    async def ListCreditPackages(
        self, request: pb.ListCreditPackagesRequest, context: Any
    ) -> pb.ListCreditPackagesResponse:
        return pb.ListCreditPackagesResponse(
            packages=[
                pb.CreditPackage(
                    package_id=p.package_id,
                    name=p.name,
                    credits=p.credits,
                    prices=[_money(currency, amount) for currency, amount in sorted(p.prices.items())],
                )
                for p in self.service.catalog.packages
            ]
        )

    async def CreateCheckoutSession(
        self, request: pb.CreateCheckoutSessionRequest, context: Any
    ) -> pb.CreateCheckoutSessionResponse:
        call = current_call()
        cmd = domain.BuyPackage(
            user_id=request.user_id,
            package_id=request.package_id,
            currency=request.currency,
            success_url=request.success_url,
            cancel_url=request.cancel_url,
        )

        def encode(created: CheckoutCreated) -> bytes:
            return _serialize(
                pb.CreateCheckoutSessionResponse(
                    payment_id=created.payment.id,
                    checkout_session_id=created.payment.stripe_checkout_session_id or "",
                    url=created.url,
                )
            )

        outcome = await in_thread(
            self.service.create_checkout_session, call.actor, cmd, call.idempotent(request), encode
        )
        call.mark_replayed(outcome.replayed)
        return pb.CreateCheckoutSessionResponse.FromString(outcome.response)

    async def CreatePaymentIntent(
        self, request: pb.CreatePaymentIntentRequest, context: Any
    ) -> pb.CreatePaymentIntentResponse:
        call = current_call()
        cmd = domain.BuyPackage(user_id=request.user_id, package_id=request.package_id, currency=request.currency)

        def encode(created: IntentCreated) -> bytes:
            return _serialize(
                pb.CreatePaymentIntentResponse(
                    payment_id=created.payment.id,
                    payment_intent_id=created.payment.stripe_payment_intent_id or "",
                    client_secret=created.client_secret,
                )
            )

        outcome = await in_thread(self.service.create_payment_intent, call.actor, cmd, call.idempotent(request), encode)
        call.mark_replayed(outcome.replayed)
        return pb.CreatePaymentIntentResponse.FromString(outcome.response)

    async def GetPayment(self, request: pb.GetPaymentRequest, context: Any) -> pb.GetPaymentResponse:
        payment = await in_thread(self.service.get_payment, current_call().actor, request.payment_id)
        return pb.GetPaymentResponse(payment=payment_to_pb(payment))

    async def ListPayments(self, request: pb.ListPaymentsRequest, context: Any) -> pb.ListPaymentsResponse:
        page = await in_thread(
            self.service.list_payments,
            current_call().actor,
            user_id=request.user_id,
            status=STATUS_FROM_PB.get(request.status),
            page_size=request.page_size,
            before=position_from_token(request.page_token),
        )
        return pb.ListPaymentsResponse(
            payments=[payment_to_pb(p) for p in page.payments], next_page_token=position_token(page.next_before)
        )

    async def Refund(self, request: pb.RefundRequest, context: Any) -> pb.RefundResponse:
        call = current_call()
        cmd = domain.RefundPayment(
            payment_id=request.payment_id,
            amount_minor=request.amount_minor if request.HasField("amount_minor") else None,
            reason=request.reason,
        )

        def encode(created: RefundCreated) -> bytes:
            return _serialize(
                pb.RefundResponse(
                    payment=payment_to_pb(created.payment),
                    stripe_refund_id=created.stripe_refund_id,
                    amount=_money(created.payment.currency, created.amount_minor),
                )
            )

        outcome = await in_thread(self.service.refund, call.actor, cmd, call.idempotent(request), encode)
        call.mark_replayed(outcome.replayed)
        return pb.RefundResponse.FromString(outcome.response)

    async def EnsureCustomer(self, request: pb.EnsureCustomerRequest, context: Any) -> pb.EnsureCustomerResponse:
        customer = await in_thread(self.service.ensure_customer, current_call().actor, request.user_id)
        return pb.EnsureCustomerResponse(stripe_customer_id=customer)

    # --- admin ------------------------------------------------------------------------

    async def GetRevenueSummary(
        self, request: pb.GetRevenueSummaryRequest, context: Any
    ) -> pb.GetRevenueSummaryResponse:
        summary = await in_thread(
            self.service.revenue_summary, current_call().actor, _time(request, "since"), _time(request, "until")
        )
        return pb.GetRevenueSummaryResponse(
            totals=[
                pb.CurrencyRevenue(
                    currency=t.currency,
                    gross_minor=t.gross_minor,
                    refunds_minor=t.refunds_minor,
                    net_minor=t.net_minor,
                    payments=t.payments,
                    refund_count=t.refund_count,
                )
                for t in summary.totals
            ],
            daily=[
                pb.DailyRevenue(
                    date=d.day, currency=d.currency, gross_minor=d.gross_minor, refunds_minor=d.refunds_minor
                )
                for d in summary.daily
            ],
        )

    async def ListTransactions(self, request: pb.ListTransactionsRequest, context: Any) -> pb.ListTransactionsResponse:
        page = await in_thread(
            self.service.list_transactions,
            current_call().actor,
            user_id=request.user_id,
            kind=KIND_FROM_PB.get(request.kind),
            since=_time(request, "since"),
            until=_time(request, "until"),
            page_size=request.page_size,
            after=_transaction_position(request.page_token),
        )
        return pb.ListTransactionsResponse(
            transactions=[transaction_to_pb(t) for t in page.transactions],
            next_page_token=_transaction_token(page.next_after),
        )

    async def ListStripeEvents(self, request: pb.ListStripeEventsRequest, context: Any) -> pb.ListStripeEventsResponse:
        page = await in_thread(
            self.service.list_stripe_events,
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
            self.service.redrive_event, call.actor, request.event_id, call.idempotent(request), encode
        )
        call.mark_replayed(outcome.replayed)
        return pb.RedriveStripeEventResponse.FromString(outcome.response)

    async def ListAuditRecords(self, request: pb.ListAuditRecordsRequest, context: Any) -> pb.ListAuditRecordsResponse:
        where = AuditFilter(
            actor=request.actor, action=request.action, since=_time(request, "since"), until=_time(request, "until")
        )
        page = await in_thread(
            self.service.list_audit_records,
            current_call().actor,
            where,
            page_size=request.page_size,
            before=position_from_token(request.page_token),
        )
        return pb.ListAuditRecordsResponse(
            records=[audit_to_pb(r, AUDIT_SERVICE) for r in page.records],
            next_page_token=position_token(page.next_before),
        )

    async def HandleStripeEvent(
        self, request: pb.HandleStripeEventRequest, context: Any
    ) -> pb.HandleStripeEventResponse:
        return await apply_stripe_event(self.service.handle_event, request, pb.HandleStripeEventResponse)

    async def Reconcile(self, request: pb.ReconcileRequest, context: Any) -> pb.ReconcileResponse:
        report = await in_thread(
            self.service.reconcile,
            current_call().actor,
            _time(request, "since"),
            _time(request, "until"),
            use_stripe=not request.skip_stripe,
        )
        return report_to_pb(report)

    async def CheckAuditChain(self, request: pb.CheckAuditChainRequest, context: Any) -> pb.CheckAuditChainResponse:
        report = await in_thread(self.service.check_audit_chain, current_call().actor)
        return pb.CheckAuditChainResponse(audit_chain=chain_to_pb(report))
