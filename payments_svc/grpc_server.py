"""billing.payments.v1.PaymentsService over gRPC: proto in, use case, proto out. No rules, no SQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from billing.common.v1 import money_pb2
from billing.payments.v1 import payments_pb2 as pb
from billing.payments.v1 import payments_pb2_grpc
from payments_svc import domain
from payments_svc.service import CheckoutCreated, IntentCreated, PaymentsService, RefundCreated
from svckit.errors import FieldViolation, InvalidArgument
from svckit.pagination import decode_page_token, encode_page_token
from svckit.server import apply_stripe_event, current_call, in_thread

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["PaymentsService"].full_name

STATUS_TO_PB = {status: pb.PaymentStatus.Value(f"PAYMENT_STATUS_{status.name}") for status in domain.PaymentStatus}
STATUS_FROM_PB = {value: key for key, value in STATUS_TO_PB.items()}
FLOW_TO_PB = {flow: pb.PaymentFlow.Value(f"PAYMENT_FLOW_{flow.name}") for flow in domain.PaymentFlow}


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


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString(deterministic=True)
    return data


def _page_position(token: str) -> tuple[datetime, str] | None:
    position = decode_page_token(token)
    if not position:
        return None
    try:
        return datetime.fromisoformat(str(position["t"])).astimezone(UTC), str(position["id"])
    except (KeyError, TypeError, ValueError):
        raise InvalidArgument.from_violations(
            [FieldViolation("page_token", "not a page token this service issued")]
        ) from None


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
            before=_page_position(request.page_token),
        )
        token = ""
        if page.next_before is not None:
            created, ident = page.next_before
            token = encode_page_token({"t": created.isoformat(), "id": ident})
        return pb.ListPaymentsResponse(payments=[payment_to_pb(p) for p in page.payments], next_page_token=token)

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

    async def HandleStripeEvent(
        self, request: pb.HandleStripeEventRequest, context: Any
    ) -> pb.HandleStripeEventResponse:
        return await apply_stripe_event(self.service.handle_event, request, pb.HandleStripeEventResponse)
