"""The JSON of the admin reports: the financial dashboard, transaction, subscription, transfer, webhook event
and audit lists (conventions as in `gateway.schemas`: every field present, timestamps ISO-8601 UTC)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Literal, Self

from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import BaseModel, ConfigDict, Field, model_validator

from billing.common.v1 import admin_pb2
from billing.credits.v1 import credits_pb2
from billing.payments.v1 import payments_pb2
from billing.subscriptions.v1 import subscriptions_pb2
from gateway.payment_schemas import Money
from gateway.schemas import SOURCE_NAMES, Body, TransferKind, UserId, UtcTime
from gateway.subscription_schemas import STATUS_NAMES, SubscriptionStatus

DEFAULT_RANGE_DAYS = 30
MAX_RANGE_DAYS = 366
ServiceName = Literal["credits", "payments", "subscriptions"]
EventService = Literal["payments", "subscriptions"]
TransactionKind = Literal["payment", "refund"]
Format = Literal["json", "csv"]
TRANSACTION_KINDS: dict[TransactionKind, payments_pb2.TransactionKind.ValueType] = {
    "payment": payments_pb2.TRANSACTION_KIND_PAYMENT,
    "refund": payments_pb2.TRANSACTION_KIND_REFUND,
}
TRANSACTION_NAMES = {value: name for name, value in TRANSACTION_KINDS.items()}
TRANSFER_KINDS: dict[TransferKind, credits_pb2.TransferKind.ValueType] = {
    "grant": credits_pb2.TRANSFER_KIND_GRANT,
    "spend": credits_pb2.TRANSFER_KIND_SPEND,
    "reversal": credits_pb2.TRANSFER_KIND_REVERSAL,
    "expiry": credits_pb2.TRANSFER_KIND_EXPIRY,
    "hold": credits_pb2.TRANSFER_KIND_HOLD,
    "capture": credits_pb2.TRANSFER_KIND_CAPTURE,
    "release": credits_pb2.TRANSFER_KIND_RELEASE,
}
LotCategory = Literal["paid", "subscription", "promotional"]
CATEGORY_NAMES: dict[credits_pb2.LotCategory.ValueType, LotCategory] = {
    credits_pb2.LOT_CATEGORY_PAID: "paid",
    credits_pb2.LOT_CATEGORY_SUBSCRIPTION: "subscription",
    credits_pb2.LOT_CATEGORY_PROMOTIONAL: "promotional",
}
STATUS_VALUES = {name: value for value, name in STATUS_NAMES.items()}


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def utc(value: Timestamp) -> datetime:
    return value.ToDatetime(tzinfo=UTC)


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


# --- queries -------------------------------------------------------------------------------


class Query(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class DateRange(Query):
    since: date | None = Field(default=None, description="First UTC day, YYYY-MM-DD (default: 30 days ago).")
    until: date | None = Field(default=None, description="Day after the last, YYYY-MM-DD (default: tomorrow).")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        since, until = self.bounds()
        if since >= until:
            raise ValueError("since must be before until")
        if until - since > timedelta(days=MAX_RANGE_DAYS):
            raise ValueError(f"a range is at most {MAX_RANGE_DAYS} days")
        return self

    def bounds(self) -> tuple[datetime, datetime]:
        until = self.until or (datetime.now(UTC).date() + timedelta(days=1))
        since = self.since or (until - timedelta(days=DEFAULT_RANGE_DAYS))
        return day_start(since), day_start(until)


class ListQuery(Query):
    page_size: int | None = Field(default=None, ge=1, le=200)
    page_token: str | None = Field(default=None, max_length=1024)
    format: Format = Field(default="json", description="`csv` answers the page as text/csv.")


class TimedListQuery(ListQuery):
    since: datetime | None = Field(default=None, description="ISO-8601; included.")
    until: datetime | None = Field(default=None, description="ISO-8601; excluded.")


class TransactionsQuery(TimedListQuery):
    user_id: UserId | None = None
    kind: TransactionKind | None = None


class AdminSubscriptionsQuery(ListQuery):
    status: SubscriptionStatus | None = None


class TransfersQuery(TimedListQuery):
    user_id: UserId | None = None
    kind: TransferKind | None = None


class WebhookEventsQuery(ListQuery):
    service: EventService = "payments"
    status: Literal["processed", "ignored", "rejected"] | None = None
    type: str | None = Field(default=None, max_length=128)


class AuditQuery(TimedListQuery):
    service: ServiceName = "credits"
    actor: str | None = Field(default=None, max_length=140)
    action: str | None = Field(default=None, max_length=64)


class RedrivePath(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    service: EventService
    event_id: str = Field(pattern=r"^evt_[A-Za-z0-9]{1,250}$")


# --- the dashboard -------------------------------------------------------------------------


class CurrencyRevenue(Body):
    currency: str
    gross_minor: int
    refunds_minor: int
    net_minor: int
    payments: int
    refund_count: int


class DailyRevenue(Body):
    date: str
    currency: str
    gross_minor: int
    refunds_minor: int


class Revenue(Body):
    totals: list[CurrencyRevenue]
    daily: list[DailyRevenue]

    @classmethod
    def from_pb(cls, r: payments_pb2.GetRevenueSummaryResponse) -> Revenue:
        return cls(
            totals=[
                CurrencyRevenue(
                    currency=t.currency,
                    gross_minor=t.gross_minor,
                    refunds_minor=t.refunds_minor,
                    net_minor=t.net_minor,
                    payments=t.payments,
                    refund_count=t.refund_count,
                )
                for t in r.totals
            ],
            daily=[
                DailyRevenue(date=d.date, currency=d.currency, gross_minor=d.gross_minor, refunds_minor=d.refunds_minor)
                for d in r.daily
            ],
        )


class RecurringRevenue(Body):
    currency: str
    mrr_minor: int
    arr_minor: int


class InvoiceRevenue(Body):
    currency: str
    paid_minor: int
    invoices: int


class DailyInvoiceRevenue(Body):
    date: str
    currency: str
    paid_minor: int


class SubscriptionFigures(Body):
    recurring: list[RecurringRevenue]
    by_status: dict[str, int]
    new: int
    churned: int
    invoice_revenue: list[InvoiceRevenue] = Field(description="Subscription invoices paid in the range.")
    daily_invoice_revenue: list[DailyInvoiceRevenue]

    @classmethod
    def from_pb(cls, r: subscriptions_pb2.GetSubscriptionMetricsResponse) -> SubscriptionFigures:
        return cls(
            recurring=[
                RecurringRevenue(currency=x.currency, mrr_minor=x.mrr_minor, arr_minor=x.arr_minor) for x in r.recurring
            ],
            by_status={STATUS_NAMES[s.status]: s.count for s in r.by_status if s.status in STATUS_NAMES},
            new=r.new_subscriptions,
            churned=r.churned_subscriptions,
            invoice_revenue=[
                InvoiceRevenue(currency=x.currency, paid_minor=x.paid_minor, invoices=x.invoices)
                for x in r.invoice_revenue
            ],
            daily_invoice_revenue=[
                DailyInvoiceRevenue(date=d.date, currency=d.currency, paid_minor=d.paid_minor)
                for d in r.daily_invoice_revenue
            ],
        )


class CreditFigures(Body):
    granted: int
    spent: int
    reversed: int
    expired: int
    outstanding: int
    granted_by_source: dict[str, int]

    @classmethod
    def from_pb(cls, r: credits_pb2.GetCreditTotalsResponse) -> CreditFigures:
        return cls(
            granted=r.granted,
            spent=r.spent,
            reversed=r.reversed,
            expired=r.expired,
            outstanding=r.outstanding,
            granted_by_source={
                SOURCE_NAMES[s.source]: s.granted for s in r.granted_by_source if s.source in SOURCE_NAMES
            },
        )


class CategoryLiability(Body):
    category: LotCategory
    credits: int = Field(description="Credits of this category in wallets, not spent yet.")
    held: int = Field(description="Credits of this category reserved by open holds.")
    value: list[Money] = Field(description="What credits + held cost, per currency (from what each lot was paid).")


class MonthlyBreakage(Body):
    month: str = Field(description="YYYY-MM, UTC.")
    category: LotCategory
    credits: int = Field(description="Credits that expired unused in that month.")
    value: list[Money] = Field(description="What those credits cost, per currency.")


class CreditLiability(Body):
    """Outstanding credits now (whatever the range) and breakage over the last 12 months."""

    categories: list[CategoryLiability]
    breakage: list[MonthlyBreakage] = Field(description="The last 12 months, oldest first; empty months left out.")
    deferred_revenue: list[Money] = Field(description="Money paid for credits not spent yet, per currency.")

    @classmethod
    def from_pb(cls, r: credits_pb2.GetLiabilityResponse) -> CreditLiability:
        return cls(
            categories=[
                CategoryLiability(
                    category=CATEGORY_NAMES[c.category],
                    credits=c.credits,
                    held=c.held,
                    value=[Money.from_pb(m) for m in c.value],
                )
                for c in r.categories
            ],
            breakage=[
                MonthlyBreakage(
                    month=b.month,
                    category=CATEGORY_NAMES[b.category],
                    credits=b.credits,
                    value=[Money.from_pb(m) for m in b.value],
                )
                for b in r.breakage
            ],
            deferred_revenue=[Money.from_pb(m) for m in r.deferred_revenue],
        )


class RangeBody(Body):
    since: str
    until: str


class FinancialDashboard(Body):
    range: RangeBody
    revenue: Revenue | None = Field(description="Null when the Payments service did not answer in time.")
    subscriptions: SubscriptionFigures | None = Field(description="Null when Subscriptions did not answer.")
    credits: CreditFigures | None = Field(description="Null when Credits did not answer.")
    liability: CreditLiability | None = Field(description="Null when Credits did not answer.")
    missing: list[ServiceName] = Field(description="The services whose figures are missing; empty when complete.")


# --- lists -----------------------------------------------------------------------------------


class Transaction(Body):
    id: str
    kind: TransactionKind
    user_id: str
    payment_id: str
    amount: Money
    status: str
    created_at: UtcTime
    actor: str | None
    receipt_url: str | None

    @classmethod
    def from_pb(cls, t: payments_pb2.Transaction) -> Transaction:
        return cls(
            id=t.id,
            kind=TRANSACTION_NAMES.get(t.kind, "payment"),
            user_id=t.user_id,
            payment_id=t.payment_id,
            amount=Money.from_pb(t.amount),
            status=t.status,
            created_at=utc(t.create_time),
            actor=t.actor or None,
            receipt_url=t.receipt_url or None,
        )


class TransactionsPage(Body):
    transactions: list[Transaction]
    next_page_token: str | None


class WebhookEvent(Body):
    service: EventService
    event_id: str
    type: str
    status: str
    detail: str
    received_at: UtcTime
    redrives: int

    @classmethod
    def from_pb(cls, service: EventService, e: admin_pb2.StripeEventRecord) -> WebhookEvent:
        return cls(
            service=service,
            event_id=e.event_id,
            type=e.type,
            status=e.status,
            detail=e.detail,
            received_at=utc(e.receive_time),
            redrives=e.redrives,
        )


class WebhookEventsPage(Body):
    events: list[WebhookEvent]
    next_page_token: str | None


class WebhookEventRedriven(Body):
    event: WebhookEvent


class AuditRecord(Body):
    service: str
    id: str
    actor: str
    action: str
    target: str
    request_id: str
    detail: str
    created_at: UtcTime

    @classmethod
    def from_pb(cls, r: admin_pb2.AuditRecord) -> AuditRecord:
        return cls(
            service=r.service,
            id=r.id,
            actor=r.actor,
            action=r.action,
            target=r.target,
            request_id=r.request_id,
            detail=r.detail,
            created_at=utc(r.time),
        )


class AuditPage(Body):
    records: list[AuditRecord]
    next_page_token: str | None
