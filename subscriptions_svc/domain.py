"""Subscription rules: statuses, what each state allows, and folding Stripe's reports into our record.

No I/O. Stripe is the source of truth for a subscription's state; this module
decides whether a reading of it is newer than the one we hold (never roll back),
whether a caller's request is allowed in the current state, which invoice
grants how many credits, and what the admin metrics count.

Metrics (`subscription_metrics`):

- MRR per currency: the subscriptions now `active` or `past_due` whose
  collection is not paused, each at its price's amount per month (a yearly
  price divided by 12, rounded down) times its quantity; ARR is 12 x MRR. A
  subscription on a price the plan sync does not know is not counted.
- Counts by status: every subscription's current status, for each status present.
- Started: a subscription starts the first time a reading shows it live
  (`STARTED`: trialing, active, past due, unpaid or paused), at the start of the
  period that reading shows (Stripe's clock, as `ended_at` is), or the reading's
  time if it shows none (`mark_started`). It never changes afterwards. One
  created and ended before any reading of it showed it live never started
  (an expired checkout, say). Rows older than `started_at` were backfilled with
  their creation time when they ever were live.
- New in [since, until): started in the range. Churned in [since, until): ended
  (`ended_at`) in the range, having started.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from subscriptions_svc.plans import INTERVALS, PLAN_ID_PATTERN
from svckit.actors import ID_PATTERN
from svckit.errors import AlreadyExists, FailedPrecondition, NotFound, Reason, Violations

MAX_QUANTITY = 1000
MAX_REASON_LENGTH = 500
# How long an unfinished checkout's Stripe session stays open.
CHECKOUT_HOLD = timedelta(hours=1)
# A record that never learnt its session (its process stopped mid-call, and the caller never
# retried) frees its slot this long after the session closed: time for a late webhook to link it.
ABANDONED_AFTER = timedelta(minutes=30)


class Status(enum.StrEnum):
    INCOMPLETE = "incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired"
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    CANCELED = "canceled"
    UNPAID = "unpaid"
    PAUSED = "paused"

    @property
    def ended(self) -> bool:
        return self in ENDED


ENDED = frozenset({Status.CANCELED, Status.INCOMPLETE_EXPIRED})
# A subscription first read in one of these has started (it was paid for, or is on trial).
STARTED = frozenset({Status.TRIALING, Status.ACTIVE, Status.PAST_DUE, Status.UNPAID, Status.PAUSED})
# The statuses whose subscriptions count in recurring revenue (unless collection is paused).
BILLING = frozenset({Status.ACTIVE, Status.PAST_DUE})
# Where Stripe can take a subscription from each status. A reading that would go
# elsewhere (out of an ended state) is not from the subscription's present.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.INCOMPLETE: frozenset(
        {Status.ACTIVE, Status.TRIALING, Status.INCOMPLETE_EXPIRED, Status.CANCELED, Status.PAST_DUE}
    ),
    Status.TRIALING: frozenset({Status.ACTIVE, Status.PAST_DUE, Status.CANCELED, Status.PAUSED, Status.UNPAID}),
    Status.ACTIVE: frozenset({Status.PAST_DUE, Status.CANCELED, Status.UNPAID, Status.PAUSED, Status.TRIALING}),
    Status.PAST_DUE: frozenset({Status.ACTIVE, Status.CANCELED, Status.UNPAID, Status.TRIALING}),
    Status.UNPAID: frozenset({Status.ACTIVE, Status.CANCELED, Status.PAST_DUE}),
    Status.PAUSED: frozenset({Status.ACTIVE, Status.TRIALING, Status.CANCELED, Status.PAST_DUE}),
    Status.CANCELED: frozenset(),
    Status.INCOMPLETE_EXPIRED: frozenset(),
}


class PauseBehavior(enum.StrEnum):
    VOID = "void"
    KEEP_AS_DRAFT = "keep_as_draft"
    MARK_UNCOLLECTIBLE = "mark_uncollectible"


class ProrationBehavior(enum.StrEnum):
    CREATE_PRORATIONS = "create_prorations"
    NONE = "none"
    ALWAYS_INVOICE = "always_invoice"


# --- errors --------------------------------------------------------------------------------


class SubscriptionNotFound(NotFound):
    def __init__(self, subscription_id: str) -> None:
        super().__init__(f"subscription {subscription_id} not found", metadata={"subscription_id": subscription_id})


class SubscriptionExists(AlreadyExists):
    reason = Reason.SUBSCRIPTION_EXISTS


class StateNotAllowed(FailedPrecondition):
    """The call is not allowed in the subscription's current state; the message names the state."""

    reason = Reason.SUBSCRIPTION_STATE

    def __init__(self, subscription: Subscription, action: str, why: str = "") -> None:
        state = subscription.describe_state()
        super().__init__(
            f"cannot {action}: the subscription is {state}{f' ({why})' if why else ''}",
            metadata={"status": subscription.status.value, "subscription_id": subscription.id},
        )


class PlanNotSynced(FailedPrecondition):
    reason = Reason.PLAN_NOT_SYNCED


# --- the record ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PriceInfo:
    """A synced Stripe price and the plan terms it was synced with."""

    stripe_price_id: str
    plan_id: str
    family: str
    currency: str
    interval: str
    amount_minor: int
    credits_per_period: int
    trial_credits: int
    active: bool


@dataclass(frozen=True)
class Snapshot:
    """A subscription as one reading from Stripe showed it."""

    stripe_subscription_id: str
    stripe_customer_id: str
    status: Status
    stripe_price_id: str
    stripe_item_id: str
    quantity: int
    current_period_start: datetime | None
    current_period_end: datetime | None
    trial_end: datetime | None
    cancel_at_period_end: bool
    cancel_at: datetime | None
    canceled_at: datetime | None
    ended_at: datetime | None
    pause_behavior: PauseBehavior | None
    pause_resumes_at: datetime | None
    # Ours, from the metadata we set when creating it (absent for subscriptions made elsewhere).
    subscription_id: str | None
    user_id: str | None


@dataclass
class Subscription:
    id: str
    user_id: str
    plan_id: str
    family: str
    quantity: int
    status: Status
    currency: str
    interval: str
    stripe_price_id: str
    stripe_customer_id: str
    created_at: datetime
    updated_at: datetime
    stripe_subscription_id: str | None = None
    stripe_item_id: str | None = None
    checkout_session_id: str | None = None
    pending_until: datetime | None = None
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    trial_end: datetime | None = None
    cancel_at_period_end: bool = False
    cancel_at: datetime | None = None
    canceled_at: datetime | None = None
    ended_at: datetime | None = None
    cancellation_reason: str | None = None
    pause_behavior: PauseBehavior | None = None
    pause_resumes_at: datetime | None = None
    periods_granted: int = 0
    started_at: datetime | None = None
    synced_at: datetime | None = None

    @property
    def family_slot(self) -> str | None:
        """The family while live: what makes a second live subscription in it impossible."""
        return None if self.status.ended else self.family

    @property
    def awaiting_checkout(self) -> bool:
        return self.stripe_subscription_id is None and self.status is Status.INCOMPLETE

    def describe_state(self) -> str:
        state = self.status.value
        if self.awaiting_checkout:
            state += ", waiting for its checkout to be paid"
        if self.cancel_at_period_end and not self.status.ended:
            state += ", set to cancel at the end of its period"
        if self.pause_behavior is not None:
            state += f", collection paused ({self.pause_behavior.value})"
        return state

    def abandoned(self, now: datetime) -> bool:
        """A checkout whose session we never recorded, closed at Stripe long enough ago to be let go.

        One whose session we know is never let go on time alone: Stripe is asked
        first (it may have been paid just before it closed).
        """
        if not self.awaiting_checkout or self.checkout_session_id is not None or self.pending_until is None:
            return False
        return self.pending_until + ABANDONED_AFTER <= now

    def expire_checkout(self, now: datetime) -> None:
        self.status = Status.INCOMPLETE_EXPIRED
        self.ended_at = now
        self.updated_at = now


def subscription_id_for(caller: str, key: str) -> str:
    """Our subscription id for a create call: the same for every retry of that call."""
    return "sub_" + hashlib.sha256(f"{caller}\0{key}".encode()).hexdigest()[:32]


def apply_snapshot(
    sub: Subscription, snap: Snapshot, price: PriceInfo | None, read_at: datetime, now: datetime
) -> bool:
    """Fold a Stripe reading into the record, unless it is older than what we hold; True if it changed.

    `read_at` versions the reading: for a read on an event, when it was asked
    for; for Stripe's answer to our own change, when the answer arrived (so a
    read asked for before it, perhaps served before the change, never
    overwrites it). Every change at Stripe is followed by an event whose
    handling reads again, after the change: the newest reading wins, so the
    record only moves forward. An ended subscription never comes back.
    """
    if sub.synced_at is not None and read_at < sub.synced_at:
        return False
    if sub.status.ended and not snap.status.ended:
        return False
    before = dataclasses.replace(sub)
    sub.stripe_subscription_id = snap.stripe_subscription_id
    sub.stripe_customer_id = snap.stripe_customer_id
    sub.status = snap.status
    sub.stripe_item_id = snap.stripe_item_id or sub.stripe_item_id
    if price is not None:
        sub.stripe_price_id = price.stripe_price_id
        sub.plan_id = price.plan_id
        sub.currency = price.currency
        sub.interval = price.interval
    sub.quantity = snap.quantity
    sub.current_period_start = snap.current_period_start
    sub.current_period_end = snap.current_period_end
    sub.trial_end = snap.trial_end
    sub.cancel_at_period_end = snap.cancel_at_period_end
    sub.cancel_at = snap.cancel_at
    sub.canceled_at = snap.canceled_at
    sub.ended_at = snap.ended_at
    sub.pause_behavior = snap.pause_behavior
    sub.pause_resumes_at = snap.pause_resumes_at
    sub.pending_until = None
    sub.synced_at = read_at
    mark_started(sub, snap, read_at)
    changed = dataclasses.astuple(before) != dataclasses.astuple(sub)
    if changed:
        sub.updated_at = now
    return changed


def mark_started(sub: Subscription, snap: Snapshot, read_at: datetime) -> None:
    """Note when the subscription began, the first time a reading shows it live; never moved afterwards."""
    if sub.started_at is None and sub.status in STARTED:
        sub.started_at = snap.current_period_start or read_at


def is_unexpected(before: Status, after: Status) -> bool:
    """A move Stripe does not make; recorded anyway (Stripe is the truth) and logged."""
    return before != after and after not in TRANSITIONS[before]


# --- what each call may do -----------------------------------------------------------------

CHANGEABLE = frozenset({Status.ACTIVE, Status.TRIALING, Status.PAST_DUE})


def check_change(sub: Subscription) -> None:
    if sub.awaiting_checkout or sub.status not in CHANGEABLE:
        raise StateNotAllowed(sub, "change the plan or quantity")


def check_cancel(sub: Subscription, at_period_end: bool) -> None:
    if sub.status.ended:
        raise StateNotAllowed(sub, "cancel")
    if sub.awaiting_checkout:
        raise StateNotAllowed(sub, "cancel", "nothing to cancel until the checkout is paid; it expires by itself")
    if at_period_end:
        if sub.status not in CHANGEABLE:
            raise StateNotAllowed(sub, "cancel at period end", "cancel it now instead")
        if sub.cancel_at_period_end:
            raise StateNotAllowed(sub, "cancel at period end", "it already is")


def check_reactivate(sub: Subscription) -> None:
    if sub.status.ended or not sub.cancel_at_period_end:
        raise StateNotAllowed(sub, "reactivate", "only a pending cancellation can be withdrawn")


def check_pause(sub: Subscription) -> None:
    if sub.awaiting_checkout or sub.status not in (Status.ACTIVE, Status.TRIALING):
        raise StateNotAllowed(sub, "pause")
    if sub.pause_behavior is not None:
        raise StateNotAllowed(sub, "pause", "it already is")


def check_resume(sub: Subscription) -> None:
    if sub.status.ended or (sub.pause_behavior is None and sub.status is not Status.PAUSED):
        raise StateNotAllowed(sub, "resume", "it is not paused")


# --- credits per invoice -------------------------------------------------------------------

PERIOD_REASONS = frozenset({"subscription_create", "subscription_cycle"})


@dataclass(frozen=True)
class PaidInvoice:
    """What a paid Stripe invoice says, as far as credits go."""

    stripe_invoice_id: str
    stripe_subscription_id: str
    billing_reason: str
    amount_paid: int
    stripe_price_id: str | None
    quantity: int
    period_start: datetime
    period_end: datetime
    currency: str = ""
    # When Stripe marked it paid (None: not said; the event's handling time is used).
    paid_at: datetime | None = None


@dataclass(frozen=True)
class GrantDue:
    credits: int
    kind: str  # "period" or "trial"


def credits_for(invoice: PaidInvoice, price: PriceInfo, trial_end: datetime | None) -> GrantDue | None:
    """The credits a paid invoice grants: a period's (or a trial's), times the quantity; None for others.

    Only the invoices that open a period grant: the first one and each renewal.
    An invoice for a mid-period change (prorations) grants nothing: the new
    plan's credits come with the next period.
    """
    if invoice.billing_reason not in PERIOD_REASONS:
        return None
    quantity = max(invoice.quantity, 1)
    in_trial = invoice.amount_paid == 0 and trial_end is not None and invoice.period_end <= trial_end
    if in_trial:
        credits = price.trial_credits * quantity
        return GrantDue(credits, "trial") if credits > 0 else None
    credits = price.credits_per_period * quantity
    return GrantDue(credits, "period") if credits > 0 else None


# --- commands --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscribe:
    user_id: str
    plan_id: str
    currency: str
    interval: str
    quantity: int
    success_url: str = ""
    cancel_url: str = ""

    def validate(self, *, checkout: bool) -> None:
        v = Violations()
        if not ID_PATTERN.match(self.user_id):
            v.add("user_id", "required: 1 to 128 characters, letters, digits and _-.:@")
        if not PLAN_ID_PATTERN.match(self.plan_id):
            v.add("plan_id", "required: a plan id")
        if self.currency and (len(self.currency) != 3 or not self.currency.isalpha() or not self.currency.islower()):
            v.add("currency", "a lower-case ISO 4217 code")
        if self.interval and self.interval not in INTERVALS:
            v.add("interval", f"one of {', '.join(INTERVALS)}")
        if not 1 <= self.quantity <= MAX_QUANTITY:
            v.add("quantity", f"1 to {MAX_QUANTITY}")
        if checkout:
            v.check_url("success_url", self.success_url)
            v.check_url("cancel_url", self.cancel_url)
        v.raise_if_any()


@dataclass(frozen=True)
class ChangePlan:
    plan_id: str
    quantity: int
    proration: ProrationBehavior

    def validate(self) -> None:
        v = Violations()
        if self.plan_id and not PLAN_ID_PATTERN.match(self.plan_id):
            v.add("plan_id", "a plan id")
        if self.quantity and not 1 <= self.quantity <= MAX_QUANTITY:
            v.add("quantity", f"1 to {MAX_QUANTITY}")
        if not self.plan_id and not self.quantity:
            v.add("plan_id", "name a plan, a quantity, or both")
        v.raise_if_any()


@dataclass(frozen=True)
class Cancel:
    at_period_end: bool
    reason: str

    def validate(self) -> None:
        v = Violations()
        if len(self.reason) > MAX_REASON_LENGTH:
            v.add("reason", f"at most {MAX_REASON_LENGTH} characters")
        v.raise_if_any()


@dataclass(frozen=True)
class Pause:
    behavior: PauseBehavior | None
    resumes_at: datetime | None

    def validate(self, now: datetime) -> None:
        v = Violations()
        if self.behavior is None:
            v.add("behavior", "required: void, keep_as_draft or mark_uncollectible")
        if self.resumes_at is not None and self.resumes_at <= now:
            v.add("resumes_at", "must be in the future")
        v.raise_if_any()


def check_return_url(url: str) -> None:
    v = Violations()
    v.check_url("return_url", url)
    v.raise_if_any()


# --- metrics ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricsRange:
    """[since, until): both required, since before until."""

    since: datetime | None
    until: datetime | None

    def validate(self) -> tuple[datetime, datetime]:
        v = Violations()
        if self.since is None:
            v.add("since", "required")
        if self.until is None:
            v.add("until", "required")
        if self.since is not None and self.until is not None and self.since >= self.until:
            v.add("until", "must be after since")
        v.raise_if_any()
        assert self.since is not None
        assert self.until is not None
        return self.since, self.until


@dataclass(frozen=True)
class PriceUnits:
    """The units billed on one price by the subscriptions that count in recurring revenue."""

    currency: str
    interval: str
    amount_minor: int
    units: int


@dataclass(frozen=True)
class RecurringRevenue:
    currency: str
    mrr_minor: int

    @property
    def arr_minor(self) -> int:
        return 12 * self.mrr_minor


@dataclass(frozen=True)
class InvoiceRevenue:
    """Subscription invoices paid in a range, in one currency (per day when `day` is set)."""

    currency: str
    paid_minor: int
    invoices: int
    day: str = ""


@dataclass(frozen=True)
class SubscriptionMetrics:
    recurring: list[RecurringRevenue]
    by_status: list[tuple[Status, int]]
    new_subscriptions: int
    churned_subscriptions: int
    invoice_revenue: list[InvoiceRevenue] = dataclasses.field(default_factory=list)
    daily_invoice_revenue: list[InvoiceRevenue] = dataclasses.field(default_factory=list)


def counts_in_revenue(status: Status, pause_behavior: PauseBehavior | None) -> bool:
    return status in BILLING and pause_behavior is None


def monthly_amount(amount_minor: int, interval: str) -> int:
    """A price's amount per month: a yearly price divided by 12, rounded down."""
    return amount_minor // 12 if interval == "year" else amount_minor


def recurring_revenue(prices: list[PriceUnits]) -> list[RecurringRevenue]:
    """MRR per currency (sorted by currency) from the units billed on each price."""
    totals: dict[str, int] = {}
    for price in prices:
        totals[price.currency] = (
            totals.get(price.currency, 0) + monthly_amount(price.amount_minor, price.interval) * price.units
        )
    return [RecurringRevenue(currency, totals[currency]) for currency in sorted(totals)]


def subscription_metrics(
    prices: list[PriceUnits],
    by_status: dict[Status, int],
    new: int,
    churned: int,
    daily_invoices: list[InvoiceRevenue] | None = None,
) -> SubscriptionMetrics:
    """`daily_invoices`: paid subscription invoices per day and currency; totalled per currency here."""
    daily = sorted(daily_invoices or [], key=lambda d: (d.day, d.currency))
    totals: dict[str, InvoiceRevenue] = {}
    for d in daily:
        seen = totals.get(d.currency, InvoiceRevenue(d.currency, 0, 0))
        totals[d.currency] = InvoiceRevenue(d.currency, seen.paid_minor + d.paid_minor, seen.invoices + d.invoices)
    return SubscriptionMetrics(
        recurring=recurring_revenue(prices),
        by_status=[(status, by_status[status]) for status in Status if by_status.get(status)],
        new_subscriptions=new,
        churned_subscriptions=churned,
        invoice_revenue=[totals[c] for c in sorted(totals)],
        daily_invoice_revenue=daily,
    )
