"""The emails a subscriber receives: payment failed, trial ending, upcoming renewal. No I/O.

Each notice is keyed by what it is about (the invoice and attempt, the trial's
end, the renewal date), so however often Stripe reports it, it is sent once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class NoticeKind(enum.StrEnum):
    PAYMENT_FAILED = "payment_failed"
    TRIAL_ENDING = "trial_ending"
    UPCOMING_RENEWAL = "upcoming_renewal"


@dataclass(frozen=True)
class Notice:
    kind: NoticeKind
    # What makes it one notice: the outbox key (and the email's message id).
    key: str
    stripe_customer_id: str
    email: str | None
    when: datetime | None = None
    amount_minor: int | None = None
    currency: str | None = None
    link: str | None = None


def money(amount_minor: int | None, currency: str | None) -> str:
    if amount_minor is None or not currency:
        return "the amount due"
    return f"{amount_minor / 100:.2f} {currency.upper()}"


def _day(moment: datetime | None) -> str:
    return moment.strftime("%d %B %Y") if moment else "soon"


def compose(notice: Notice, plan_name: str) -> tuple[str, str]:
    """Subject and text of the notice's email."""
    if notice.kind is NoticeKind.PAYMENT_FAILED:
        subject = f"Your payment for {plan_name} failed"
        text = (
            f"We could not collect {money(notice.amount_minor, notice.currency)} for your {plan_name} subscription.\n"
            f"We will try again {_day(notice.when) if notice.when else 'in a few days'}; to avoid an interruption, "
            "update your payment method"
            + (f" or pay the invoice here: {notice.link}" if notice.link else " in the customer portal")
            + ".\nNo credits are granted for the period until the payment succeeds.\n"
        )
        return subject, text
    if notice.kind is NoticeKind.TRIAL_ENDING:
        subject = f"Your {plan_name} trial ends on {_day(notice.when)}"
        text = (
            f"Your free trial of {plan_name} ends on {_day(notice.when)}. After that your subscription "
            "continues and your payment method is charged, unless you cancel before then.\n"
        )
        return subject, text
    subject = f"Your {plan_name} subscription renews on {_day(notice.when)}"
    text = (
        f"Your {plan_name} subscription renews on {_day(notice.when)} for "
        f"{money(notice.amount_minor, notice.currency)}, with a new period of credits.\n"
    )
    return subject, text
