"""Payments' rules: the catalog, a payment's life, and what it owes in credits. Pure Python, no I/O.

A payment only moves forward. Stripe sends events at least once and in no
fixed order, so every event is applied as "this is now known about the
payment", and a late, older event can never undo a newer fact: a succeeded
payment never goes back to processing or failed; a refund total never shrinks.

Credits follow the money: the first time a payment is known to be paid, its
package's credits are owed, once. When money is refunded, the credits of the
refunded share (rounded down) are owed back.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from svckit.actors import ID_PATTERN
from svckit.errors import FailedPrecondition, NotFound, Reason, Violations

CURRENCY_PATTERN = re.compile(r"^[a-z]{3}$")
PACKAGE_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
PAYMENT_ID_PATTERN = re.compile(r"^pay_[0-9a-f]{32}$")
# Stripe's largest amount for most currencies (eight digits of minor units).
MAX_AMOUNT_MINOR = 99_999_999
REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})


class PaymentStatus(enum.Enum):
    PENDING = "pending"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELED = "canceled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


class PaymentFlow(enum.Enum):
    CHECKOUT = "checkout"
    PAYMENT_INTENT = "payment_intent"


PAID = frozenset({PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED})
# What each status may become when Stripe reports something new. Paid is a fact
# that always wins over "not paid yet"; nothing leads back from paid.
ALLOWED: Mapping[PaymentStatus, frozenset[PaymentStatus]] = {
    PaymentStatus.PENDING: frozenset(
        {
            PaymentStatus.PROCESSING,
            PaymentStatus.SUCCEEDED,
            PaymentStatus.FAILED,
            PaymentStatus.EXPIRED,
            PaymentStatus.CANCELED,
        }
    ),
    PaymentStatus.PROCESSING: frozenset({PaymentStatus.SUCCEEDED, PaymentStatus.FAILED}),
    PaymentStatus.FAILED: frozenset({PaymentStatus.PROCESSING, PaymentStatus.SUCCEEDED, PaymentStatus.EXPIRED}),
    PaymentStatus.EXPIRED: frozenset({PaymentStatus.SUCCEEDED}),
    PaymentStatus.CANCELED: frozenset({PaymentStatus.SUCCEEDED}),
    PaymentStatus.SUCCEEDED: frozenset({PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED}),
    PaymentStatus.PARTIALLY_REFUNDED: frozenset({PaymentStatus.REFUNDED}),
    PaymentStatus.REFUNDED: frozenset(),
}


def next_status(current: PaymentStatus, reported: PaymentStatus) -> PaymentStatus:
    """The status after Stripe reports `reported`: it, if that moves the payment forward; else unchanged."""
    return reported if reported in ALLOWED[current] else current


# --- the catalog ------------------------------------------------------------------------


@dataclass(frozen=True)
class CreditPackage:
    package_id: str
    name: str
    credits: int
    # Currency -> amount in minor units.
    prices: Mapping[str, int]


@dataclass(frozen=True)
class Catalog:
    packages: Sequence[CreditPackage]
    default_currency: str

    def package(self, package_id: str) -> CreditPackage | None:
        return next((p for p in self.packages if p.package_id == package_id), None)

    def price(self, package_id: str, currency: str) -> tuple[CreditPackage, str, int]:
        """The package, the currency and the amount to charge; INVALID_ARGUMENT naming the bad field."""
        v = Violations()
        package = self.package(package_id)
        chosen = currency or self.default_currency
        if package is None:
            v.add("package_id", f"unknown package; one of: {', '.join(p.package_id for p in self.packages)}")
        elif chosen not in package.prices:
            v.add("currency", f"the package is sold in: {', '.join(sorted(package.prices))}")
        v.raise_if_any()
        assert package is not None
        return package, chosen, package.prices[chosen]


def validate_catalog(packages: Sequence[CreditPackage], default_currency: str) -> list[str]:
    """Every problem with a catalog, as sentences; empty when it is valid."""
    problems = []
    if not packages:
        problems.append("the catalog has no packages")
    seen: set[str] = set()
    for package in packages:
        where = f"package {package.package_id!r}"
        if not PACKAGE_ID_PATTERN.match(package.package_id):
            problems.append(f"{where}: id must be lower-case letters, digits, '-' and '_'")
        if package.package_id in seen:
            problems.append(f"{where}: listed twice")
        seen.add(package.package_id)
        if not package.name.strip():
            problems.append(f"{where}: name is empty")
        if not 1 <= package.credits <= 1_000_000_000_000:
            problems.append(f"{where}: credits must be between 1 and 10^12")
        if not package.prices:
            problems.append(f"{where}: no prices")
        for currency, amount in package.prices.items():
            if not CURRENCY_PATTERN.match(currency):
                problems.append(f"{where}: currency {currency!r} is not a lower-case ISO 4217 code")
            if not 1 <= amount <= MAX_AMOUNT_MINOR:
                problems.append(f"{where}: price in {currency} must be between 1 and {MAX_AMOUNT_MINOR} minor units")
        if default_currency not in package.prices:
            problems.append(f"{where}: no price in the default currency {default_currency!r}")
    return problems


# --- payments ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusChange:
    status: PaymentStatus
    source: str
    at: datetime


@dataclass
class Payment:
    id: str
    user_id: str
    package_id: str
    credits: int
    amount_minor: int
    currency: str
    flow: PaymentFlow
    status: PaymentStatus
    created_at: datetime
    updated_at: datetime
    stripe_checkout_session_id: str | None = None
    stripe_payment_intent_id: str | None = None
    stripe_charge_id: str | None = None
    receipt_url: str | None = None
    amount_refunded_minor: int = 0
    credits_granted: bool = False
    credits_reversed: int = 0
    credit_shortfall: int = 0
    history: list[StatusChange] = field(default_factory=list)

    @classmethod
    def new(
        cls,
        *,
        id: str,
        user_id: str,
        package_id: str,
        credits: int,
        amount_minor: int,
        currency: str,
        flow: PaymentFlow,
        source: str,
        at: datetime,
        stripe_checkout_session_id: str | None = None,
        stripe_payment_intent_id: str | None = None,
    ) -> Payment:
        """A payment not paid yet, its history starting with `source` ("api" or the event that revealed it)."""
        return cls(
            id=id,
            user_id=user_id,
            package_id=package_id,
            credits=credits,
            amount_minor=amount_minor,
            currency=currency,
            flow=flow,
            status=PaymentStatus.PENDING,
            created_at=at,
            updated_at=at,
            stripe_checkout_session_id=stripe_checkout_session_id,
            stripe_payment_intent_id=stripe_payment_intent_id,
            history=[StatusChange(PaymentStatus.PENDING, source, at)],
        )

    @property
    def refundable_minor(self) -> int:
        return self.amount_minor - self.amount_refunded_minor

    def credits_owed_back(self, refunded_minor: int) -> int:
        """Credits of the refunded share, rounded down: never more than the refund paid for."""
        return self.credits * min(refunded_minor, self.amount_minor) // self.amount_minor


def payment_id_for(caller: str, idempotency_key: str) -> str:
    """The payment id of a create call: the same for every retry of that call."""
    return "pay_" + hashlib.sha256(f"{caller}\0{idempotency_key}".encode()).hexdigest()[:32]


def grant_reference(payment_id: str) -> str:
    """The Credits business reference of a payment's grant: one grant per payment."""
    return f"payment:{payment_id}"


@dataclass(frozen=True)
class Reported:
    """What one Stripe event says about a payment."""

    status: PaymentStatus | None = None
    checkout_session_id: str | None = None
    payment_intent_id: str | None = None
    charge_id: str | None = None
    receipt_url: str | None = None
    amount_refunded_minor: int | None = None


@dataclass(frozen=True)
class Effects:
    """What applying a report changed, and what the payment now owes in credits."""

    status_changed: bool
    grant_credits: bool
    # Credits to take back: (asked back before, asked back now, cumulative); None: nothing new.
    reverse: tuple[int, int] | None


def apply_report(payment: Payment, report: Reported, source: str, at: datetime) -> Effects:
    """Fold one event's facts into the payment, forward only."""
    was_paid = payment.status in PAID
    status_changed = False
    if report.status is not None:
        new = next_status(payment.status, report.status)
        if new is not payment.status:
            payment.status = new
            payment.history.append(StatusChange(new, source, at))
            status_changed = True
    payment.stripe_checkout_session_id = payment.stripe_checkout_session_id or report.checkout_session_id
    payment.stripe_payment_intent_id = payment.stripe_payment_intent_id or report.payment_intent_id
    payment.stripe_charge_id = payment.stripe_charge_id or report.charge_id
    payment.receipt_url = report.receipt_url or payment.receipt_url
    reverse = None
    if report.amount_refunded_minor is not None and report.amount_refunded_minor > payment.amount_refunded_minor:
        payment.amount_refunded_minor = min(report.amount_refunded_minor, payment.amount_minor)
        refunded = (
            PaymentStatus.REFUNDED
            if payment.amount_refunded_minor >= payment.amount_minor
            else PaymentStatus.PARTIALLY_REFUNDED
        )
        # A refund proves the payment was paid, whatever events are still on their way.
        if payment.status not in PAID:
            payment.status = PaymentStatus.SUCCEEDED
            payment.history.append(StatusChange(PaymentStatus.SUCCEEDED, source, at))
        new = next_status(payment.status, refunded)
        if new is not payment.status:
            payment.status = new
            payment.history.append(StatusChange(new, source, at))
            status_changed = True
        owed_back = payment.credits_owed_back(payment.amount_refunded_minor)
        if owed_back > payment.credits_reversed:
            reverse = (payment.credits_reversed, owed_back)
            payment.credits_reversed = owed_back
    payment.updated_at = at
    return Effects(
        status_changed=status_changed,
        grant_credits=not was_paid and payment.status in PAID,
        reverse=reverse,
    )


# --- errors and commands ----------------------------------------------------------------


class PaymentNotFound(NotFound):
    def __init__(self, payment_id: str) -> None:
        super().__init__(f"no payment {payment_id}", metadata={"payment_id": payment_id})


class PaymentNotRefundable(FailedPrecondition):
    reason = Reason.PAYMENT_NOT_REFUNDABLE


class RefundExceedsRemaining(FailedPrecondition):
    reason = Reason.REFUND_EXCEEDS_REMAINING

    def __init__(self, requested: int, remaining: int) -> None:
        super().__init__(
            f"asked to refund {requested} but only {remaining} is left to refund",
            metadata={"requested": str(requested), "remaining": str(remaining)},
        )


@dataclass(frozen=True)
class BuyPackage:
    user_id: str
    package_id: str
    currency: str
    # Checkout only.
    success_url: str = ""
    cancel_url: str = ""

    def validate(self, *, checkout: bool) -> None:
        v = Violations()
        if not ID_PATTERN.match(self.user_id):
            v.add("user_id", "required: 1 to 128 characters, letters, digits and _-.:@")
        if not self.package_id:
            v.add("package_id", "required")
        if self.currency and not CURRENCY_PATTERN.match(self.currency):
            v.add("currency", "a lower-case ISO 4217 code, e.g. usd")
        if checkout:
            v.check_url("success_url", self.success_url)
            v.check_url("cancel_url", self.cancel_url)
        v.raise_if_any()


@dataclass(frozen=True)
class RefundPayment:
    payment_id: str
    amount_minor: int | None
    reason: str = ""

    def validate(self) -> None:
        v = Violations()
        if not PAYMENT_ID_PATTERN.match(self.payment_id):
            v.add("payment_id", "required: a payment id (pay_ and 32 hex digits)")
        if self.amount_minor is not None and not 1 <= self.amount_minor <= MAX_AMOUNT_MINOR:
            v.add("amount_minor", f"must be between 1 and {MAX_AMOUNT_MINOR}")
        if self.reason and self.reason not in REFUND_REASONS:
            v.add("reason", f"one of: {', '.join(sorted(REFUND_REASONS))}")
        v.raise_if_any()

    def amount_for(self, payment: Payment) -> int:
        """What to refund now; refuses a payment that is not paid or a refund past what is left."""
        if payment.status not in PAID or payment.refundable_minor == 0:
            raise PaymentNotRefundable(f"payment {payment.id} is {payment.status.value}; nothing to refund")
        amount = payment.refundable_minor if self.amount_minor is None else self.amount_minor
        if amount > payment.refundable_minor:
            raise RefundExceedsRemaining(amount, payment.refundable_minor)
        return amount


# --- admin reads ------------------------------------------------------------------------


def check_range(since: datetime | None, until: datetime | None, *, required: bool) -> None:
    """A time range [since, until): INVALID_ARGUMENT naming the field that is missing or out of order."""
    v = Violations()
    v.check_range(since, until, required=required)
    v.raise_if_any()


@dataclass(frozen=True)
class DayFigures:
    """One currency's sums on one UTC day, as the database grouped them."""

    day: str  # YYYY-MM-DD
    currency: str
    amount_minor: int
    count: int


@dataclass(frozen=True)
class CurrencyRevenue:
    currency: str
    gross_minor: int
    refunds_minor: int
    payments: int
    refund_count: int

    @property
    def net_minor(self) -> int:
        return self.gross_minor - self.refunds_minor


@dataclass(frozen=True)
class DailyRevenue:
    day: str
    currency: str
    gross_minor: int
    refunds_minor: int


@dataclass(frozen=True)
class RevenueSummary:
    totals: list[CurrencyRevenue]
    daily: list[DailyRevenue]


def summarize_revenue(paid: Sequence[DayFigures], refunded: Sequence[DayFigures]) -> RevenueSummary:
    """Totals per currency and figures per (day, currency), days with activity only, oldest first."""
    days: dict[tuple[str, str], list[int]] = {}
    totals: dict[str, list[int]] = {}
    for figures, column in ((paid, 0), (refunded, 1)):
        for f in figures:
            days.setdefault((f.day, f.currency), [0, 0])[column] += f.amount_minor
            total = totals.setdefault(f.currency, [0, 0, 0, 0])
            total[column] += f.amount_minor
            total[column + 2] += f.count
    return RevenueSummary(
        totals=[CurrencyRevenue(c, t[0], t[1], t[2], t[3]) for c, t in sorted(totals.items())],
        daily=[DailyRevenue(day, c, amounts[0], amounts[1]) for (day, c), amounts in sorted(days.items())],
    )


class TransactionKind(enum.Enum):
    # The value orders a payment and a refund made at the same instant: the refund comes first (newest first).
    PAYMENT = 0
    REFUND = 1


@dataclass(frozen=True)
class Transaction:
    id: str
    kind: TransactionKind
    user_id: str
    payment_id: str
    amount_minor: int
    currency: str
    status: str
    created_at: datetime
    actor: str = ""
    receipt_url: str = ""


@dataclass(frozen=True)
class TransactionPosition:
    """Where a page of transactions ends: the last one's time, kind and id.

    Ids are only ever compared with ids of the same kind, by the database that
    ordered them, so the merged order never depends on how ids of two tables collate.
    """

    created_at: datetime
    kind: TransactionKind
    id: str

    @classmethod
    def of(cls, t: Transaction) -> TransactionPosition:
        return cls(t.created_at, t.kind, t.id)
