"""The JSON bodies of the subscription endpoints, as pydantic models (conventions as in `gateway.schemas`).

Timestamps are RFC 3339 in UTC, null when unset; enums are Stripe's lower-case names.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from billing.subscriptions.v1 import subscriptions_pb2 as pb
from gateway.payment_schemas import Currency, Money, Request, Url
from gateway.schemas import MAX_PAGE_SIZE, Body, UserId, UtcTime

MIN_QUANTITY, MAX_QUANTITY = 1, 1000
MAX_CANCELLATION_REASON = 500
# RFC 3339 section 5.6: a full date, "T", a full time and an offset.
RFC3339_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")

PlanId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", examples=["pro-monthly"])]
SubscriptionId = Annotated[
    str, Field(pattern=r"^[\x21-\x7e]{1,255}$", description="The subscription's id.", examples=["sub_0f3a9c"])
]
Interval = Literal["month", "year"]
Quantity = Annotated[int, Field(ge=MIN_QUANTITY, le=MAX_QUANTITY, description="Units subscribed, 1 to 1000.")]
SubscriptionStatus = Literal[
    "incomplete", "incomplete_expired", "trialing", "active", "past_due", "canceled", "unpaid", "paused"
]
PauseBehavior = Literal["void", "keep_as_draft", "mark_uncollectible"]
ProrationBehavior = Literal["create_prorations", "none", "always_invoice"]

STATUS_NAMES: dict[pb.SubscriptionStatus.ValueType, SubscriptionStatus] = {
    pb.SUBSCRIPTION_STATUS_INCOMPLETE: "incomplete",
    pb.SUBSCRIPTION_STATUS_INCOMPLETE_EXPIRED: "incomplete_expired",
    pb.SUBSCRIPTION_STATUS_TRIALING: "trialing",
    pb.SUBSCRIPTION_STATUS_ACTIVE: "active",
    pb.SUBSCRIPTION_STATUS_PAST_DUE: "past_due",
    pb.SUBSCRIPTION_STATUS_CANCELED: "canceled",
    pb.SUBSCRIPTION_STATUS_UNPAID: "unpaid",
    pb.SUBSCRIPTION_STATUS_PAUSED: "paused",
}
PAUSE_NAMES: dict[pb.PauseBehavior.ValueType, PauseBehavior] = {
    pb.PAUSE_BEHAVIOR_VOID: "void",
    pb.PAUSE_BEHAVIOR_KEEP_AS_DRAFT: "keep_as_draft",
    pb.PAUSE_BEHAVIOR_MARK_UNCOLLECTIBLE: "mark_uncollectible",
}
PAUSE_VALUES: dict[PauseBehavior, pb.PauseBehavior.ValueType] = {name: value for value, name in PAUSE_NAMES.items()}
PRORATION_VALUES: dict[ProrationBehavior, pb.ProrationBehavior.ValueType] = {
    "create_prorations": pb.PRORATION_BEHAVIOR_CREATE_PRORATIONS,
    "none": pb.PRORATION_BEHAVIOR_NONE,
    "always_invoice": pb.PRORATION_BEHAVIOR_ALWAYS_INVOICE,
}


def _rfc3339(value: object) -> datetime:
    """Only an RFC 3339 string with an offset: no Unix seconds, no date alone, no local time."""
    if isinstance(value, str) and RFC3339_PATTERN.match(value):
        try:
            return datetime.fromisoformat(value.upper())
        except ValueError:
            pass  # e.g. month 13
    raise PydanticCustomError("rfc3339", "must be an RFC 3339 timestamp with an offset, e.g. 2030-01-31T12:00:00Z")


def _in_the_future(value: datetime) -> datetime:
    if value <= datetime.now(UTC):
        raise PydanticCustomError("future", "must be in the future")
    return value


FutureTime = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc3339),
    AfterValidator(_in_the_future),
    Field(description="RFC 3339 with an offset, in the future.", examples=["2030-01-31T12:00:00Z"]),
]


def _utc(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


# --- requests ---------------------------------------------------------------------------


class PlanCheckoutRequest(Request):
    """A Stripe Checkout Session (mode subscription) for one plan, for the caller."""

    plan_id: PlanId
    currency: Currency | None = Field(default=None, description="Default: the catalog's default currency.")
    interval: Interval | None = Field(default=None, description='Billing interval; default "month".')
    quantity: Quantity | None = Field(default=None, description="Units subscribed, 1 to 1000; default 1.")
    success_url: Url = Field(description="Where Stripe sends the customer after subscribing; an allowed origin.")
    cancel_url: Url = Field(description="Where Stripe sends the customer who gives up; an allowed origin.")


class CreateSubscriptionRequest(Request):
    """A subscription to confirm with Stripe Elements, for the caller."""

    plan_id: PlanId
    currency: Currency | None = Field(default=None, description="Default: the catalog's default currency.")
    interval: Interval | None = Field(default=None, description='Billing interval; default "month".')
    quantity: Quantity | None = Field(default=None, description="Units subscribed, 1 to 1000; default 1.")


class UpdateSubscriptionRequest(Request):
    """A new plan and/or quantity: at least one of the two."""

    model_config = ConfigDict(
        json_schema_extra={"anyOf": [{"required": ["plan_id"]}, {"required": ["quantity"]}]},
    )

    plan_id: PlanId | None = Field(default=None, description="The new plan; absent: keep the plan.")
    quantity: Quantity | None = Field(default=None, description="The new quantity; absent: keep it.")
    proration_behavior: ProrationBehavior | None = Field(
        default=None, description='How Stripe prorates the change; default "create_prorations".'
    )


class CancelSubscriptionRequest(Request):
    """How to cancel; the body itself is optional."""

    at_period_end: bool = Field(
        default=True, description="True: at the end of the current period (the default); false: now."
    )
    reason: str | None = Field(
        default=None, max_length=MAX_CANCELLATION_REASON, description="Kept with the subscription; sent to Stripe."
    )


class PauseSubscriptionRequest(Request):
    """Pause payment collection (Stripe's pause_collection)."""

    behavior: PauseBehavior = Field(description="What Stripe does with the invoices of the paused periods.")
    resumes_at: FutureTime | None = Field(
        default=None, description="When collection resumes by itself (RFC 3339, in the future); absent: never."
    )


class PortalSessionRequest(Request):
    return_url: Url = Field(description="Where the portal sends the customer back; an allowed origin.")


class SubscriptionsQuery(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    page_size: int | None = Field(default=None, ge=1, le=MAX_PAGE_SIZE, description="Subscriptions per page, 1 to 200.")
    page_token: str | None = Field(
        default=None, max_length=1024, description="`next_page_token` of the previous page; absent for the first."
    )


class UserPath(BaseModel):
    """`/api/subscriptions/{id}` when it lists a user's subscriptions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: UserId = Field(description="The user whose subscriptions are listed; only admins may name another user.")


class SubscriptionItemPath(BaseModel):
    """`/api/subscriptions/{id}` when it names one subscription."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: SubscriptionId


class SubscriptionActionPath(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    subscription_id: SubscriptionId


# --- responses --------------------------------------------------------------------------


class PlanPrice(Body):
    currency: str
    amount_minor: int = Field(description="Integer minor units (cents), per period and unit.")
    interval: str = Field(description='"month" or "year".')

    @classmethod
    def from_pb(cls, price: pb.PlanPrice) -> PlanPrice:
        money = Money.from_pb(price.amount)
        return cls(currency=money.currency, amount_minor=money.amount_minor, interval=price.interval)


class Plan(Body):
    plan_id: str
    name: str
    family: str = Field(description="Plans of one family are alternatives: one live subscription per family.")
    credits_per_period: int = Field(description="Credits granted for each paid period, per unit.")
    trial_days: int = Field(description="0: no trial.")
    trial_credits: int = Field(description="Credits granted when a trial starts, per unit.")
    credits_roll_over: bool = Field(description="Whether unspent period credits stay after the period ends.")
    prices: list[PlanPrice]

    @classmethod
    def from_pb(cls, plan: pb.Plan) -> Plan:
        return cls(
            plan_id=plan.plan_id,
            name=plan.name,
            family=plan.family,
            credits_per_period=plan.credits_per_period,
            trial_days=plan.trial_days,
            trial_credits=plan.trial_credits,
            credits_roll_over=plan.credits_roll_over,
            prices=[PlanPrice.from_pb(price) for price in plan.prices],
        )


class Plans(Body):
    plans: list[Plan]

    @classmethod
    def from_pb(cls, response: pb.ListPlansResponse) -> Plans:
        return cls(plans=[Plan.from_pb(plan) for plan in response.plans])


class PauseCollection(Body):
    behavior: PauseBehavior
    resumes_at: UtcTime | None = Field(description="When collection resumes by itself; null: until resumed.")


class Subscription(Body):
    id: str
    user_id: str
    plan_id: str
    family: str
    quantity: int
    status: SubscriptionStatus = Field(description="Stripe's status.")
    currency: str
    interval: str = Field(description='"month" or "year".')
    stripe_subscription_id: str | None = Field(description="Null while its checkout is open.")
    current_period_start: UtcTime | None
    current_period_end: UtcTime | None
    trial_end: UtcTime | None
    cancel_at_period_end: bool
    cancel_at: UtcTime | None
    canceled_at: UtcTime | None
    ended_at: UtcTime | None
    cancellation_reason: str | None
    pause_collection: PauseCollection | None = Field(description="Set while payment collection is paused.")
    periods_granted: int = Field(description="Paid periods whose credits were granted.")
    created_at: UtcTime
    updated_at: UtcTime

    @classmethod
    def from_pb(cls, s: pb.Subscription) -> Subscription:
        def at(stamp: Timestamp, present: bool) -> datetime | None:
            return _utc(stamp) if present else None

        pause = None
        if s.HasField("pause_collection"):
            pause = PauseCollection(
                behavior=PAUSE_NAMES[s.pause_collection.behavior],
                resumes_at=at(s.pause_collection.resumes_at, s.pause_collection.HasField("resumes_at")),
            )
        return cls(
            id=s.id,
            user_id=s.user_id,
            plan_id=s.plan_id,
            family=s.family,
            quantity=s.quantity,
            status=STATUS_NAMES[s.status],
            currency=s.currency,
            interval=s.interval,
            stripe_subscription_id=s.stripe_subscription_id or None,
            current_period_start=at(s.current_period_start, s.HasField("current_period_start")),
            current_period_end=at(s.current_period_end, s.HasField("current_period_end")),
            trial_end=at(s.trial_end, s.HasField("trial_end")),
            cancel_at_period_end=s.cancel_at_period_end,
            cancel_at=at(s.cancel_at, s.HasField("cancel_at")),
            canceled_at=at(s.canceled_at, s.HasField("canceled_at")),
            ended_at=at(s.ended_at, s.HasField("ended_at")),
            cancellation_reason=s.cancellation_reason or None,
            pause_collection=pause,
            periods_granted=s.periods_granted,
            created_at=_utc(s.create_time),
            updated_at=_utc(s.update_time),
        )


class SubscriptionReply(Body):
    subscription: Subscription


class SubscriptionsPage(Body):
    subscriptions: list[Subscription] = Field(description="Newest first.")
    next_page_token: str | None = Field(description="Pass it as page_token for the next page; null on the last.")


class SubscriptionCheckoutCreated(Body):
    subscription_id: str = Field(description="The subscription this checkout creates; incomplete until paid.")
    checkout_session_id: str
    url: str = Field(description="Send the customer here: Stripe's hosted checkout page.")


class SubscriptionCreated(Body):
    subscription: Subscription
    client_secret: str | None = Field(
        description="For Stripe.js confirmPayment of the first invoice; null when nothing is due now (a trial). "
        "Never log it."
    )


class PortalSession(Body):
    url: str = Field(description="Send the customer here: Stripe's customer portal.")
