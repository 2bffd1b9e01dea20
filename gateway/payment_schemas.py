"""The JSON bodies of the payment endpoints, as pydantic models (conventions as in `gateway.schemas`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import BaseModel, ConfigDict, Field

from billing.common.v1 import money_pb2
from billing.payments.v1 import payments_pb2 as pb
from gateway.schemas import Body, UserId

PackageId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", examples=["credits-100"])]
Currency = Annotated[str, Field(pattern=r"^[a-z]{3}$", description="Lower-case ISO 4217 code.", examples=["usd"])]
Url = Annotated[str, Field(min_length=1, max_length=2048)]
PaymentStatus = Literal[
    "pending", "processing", "succeeded", "failed", "expired", "canceled", "partially_refunded", "refunded"
]
STATUS_NAMES: dict[pb.PaymentStatus.ValueType, PaymentStatus] = {
    pb.PAYMENT_STATUS_PENDING: "pending",
    pb.PAYMENT_STATUS_PROCESSING: "processing",
    pb.PAYMENT_STATUS_SUCCEEDED: "succeeded",
    pb.PAYMENT_STATUS_FAILED: "failed",
    pb.PAYMENT_STATUS_EXPIRED: "expired",
    pb.PAYMENT_STATUS_CANCELED: "canceled",
    pb.PAYMENT_STATUS_PARTIALLY_REFUNDED: "partially_refunded",
    pb.PAYMENT_STATUS_REFUNDED: "refunded",
}
STATUS_VALUES: dict[str, pb.PaymentStatus.ValueType] = {name: value for value, name in STATUS_NAMES.items()}
FLOW_NAMES: dict[pb.PaymentFlow.ValueType, Literal["checkout", "payment_intent"]] = {
    pb.PAYMENT_FLOW_CHECKOUT: "checkout",
    pb.PAYMENT_FLOW_PAYMENT_INTENT: "payment_intent",
}


def _utc(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# --- requests ---------------------------------------------------------------------------


class CheckoutSessionRequest(Request):
    """A Stripe Checkout Session for one credit package, for the caller."""

    package_id: PackageId
    currency: Currency | None = Field(default=None, description="Default: the catalog's default currency.")
    success_url: Url = Field(description="Where Stripe sends the customer after paying; an allowed origin.")
    cancel_url: Url = Field(description="Where Stripe sends the customer who gives up; an allowed origin.")


class PaymentIntentRequest(Request):
    """A Stripe PaymentIntent for one credit package, for an Elements form."""

    package_id: PackageId
    currency: Currency | None = None


class RefundRequest(Request):
    amount_minor: int | None = Field(
        default=None, ge=1, le=99_999_999, description="Minor units to refund; default: all that is left."
    )
    reason: Literal["duplicate", "fraudulent", "requested_by_customer"] | None = None


class PaymentsQuery(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    user_id: UserId | None = Field(default=None, description="Whose payments; only admins may name another user.")
    status: PaymentStatus | None = None
    page_size: int | None = Field(default=None, ge=1, le=200)
    page_token: str | None = Field(default=None, max_length=1024)


# --- responses --------------------------------------------------------------------------


class Money(Body):
    currency: str
    amount_minor: int = Field(description="Integer minor units (cents).")

    @classmethod
    def from_pb(cls, money: money_pb2.Money) -> Money:
        return cls(currency=money.currency, amount_minor=money.amount_minor)


class CreditPackage(Body):
    package_id: str
    name: str
    credits: int
    prices: list[Money]


class CreditPackages(Body):
    packages: list[CreditPackage]

    @classmethod
    def from_pb(cls, response: pb.ListCreditPackagesResponse) -> CreditPackages:
        return cls(
            packages=[
                CreditPackage(
                    package_id=p.package_id,
                    name=p.name,
                    credits=p.credits,
                    prices=[Money.from_pb(m) for m in p.prices],
                )
                for p in response.packages
            ]
        )


class CheckoutSessionCreated(Body):
    payment_id: str
    checkout_session_id: str
    url: str = Field(description="Send the customer here: Stripe's hosted checkout page.")


class PaymentIntentCreated(Body):
    payment_id: str
    payment_intent_id: str
    client_secret: str = Field(description="For Stripe.js confirmPayment; never log it.")


class StatusChange(Body):
    status: PaymentStatus
    source: str = Field(description='The Stripe event id that caused it, or "api".')
    at: datetime


class Payment(Body):
    id: str
    user_id: str
    package_id: str
    credits: int
    amount: Money
    amount_refunded: Money
    status: PaymentStatus
    flow: Literal["checkout", "payment_intent"]
    receipt_url: str | None = Field(description="Stripe's receipt, once the charge exists.")
    credits_granted: bool = Field(description="True once the credits are in the wallet.")
    credits_reversed: int = Field(description="Credits asked back because of refunds.")
    credit_shortfall: int = Field(description="Credits that could not be taken back: the user had spent them.")
    stripe_checkout_session_id: str | None
    stripe_payment_intent_id: str | None
    history: list[StatusChange]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_pb(cls, p: pb.Payment) -> Payment:
        return cls(
            id=p.id,
            user_id=p.user_id,
            package_id=p.package_id,
            credits=p.credits,
            amount=Money.from_pb(p.amount),
            amount_refunded=Money.from_pb(p.amount_refunded),
            status=STATUS_NAMES[p.status],
            flow=FLOW_NAMES[p.flow],
            receipt_url=p.receipt_url or None,
            credits_granted=p.credits_granted,
            credits_reversed=p.credits_reversed,
            credit_shortfall=p.credit_shortfall,
            stripe_checkout_session_id=p.stripe_checkout_session_id or None,
            stripe_payment_intent_id=p.stripe_payment_intent_id or None,
            history=[StatusChange(status=STATUS_NAMES[c.status], source=c.source, at=_utc(c.time)) for c in p.history],
            created_at=_utc(p.create_time),
            updated_at=_utc(p.update_time),
        )


class PaymentsPage(Body):
    payments: list[Payment]
    next_page_token: str | None


class RefundCreated(Body):
    payment: Payment
    stripe_refund_id: str
    amount: Money


class WebhookReceived(Body):
    received: Literal[True]
    handled: bool = Field(description="False when no service acts on this event type; it is acknowledged anyway.")
