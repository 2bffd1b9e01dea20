"""Credit lots and holds: the rules, pure Python, no I/O.

Every grant opens a lot: its credits, a category, a priority and an optional
expiry. A wallet's balance is always the sum of its lots' remaining credits (the
ledger check proves it). Credits leave a wallet lot by lot, in consumption order:

1. priority, lowest number first (0 to 100, like Stripe's credit grants);
2. then the soonest expiry (a lot that never expires comes last);
3. then the oldest lot.

A lot past its expiry can no longer be spent: its remainder moves to the expiry
account, by the expiry job or by the next movement of the wallet, whichever comes
first, and exactly once (the lot's row is locked and its remainder set to zero in
the same transaction as the expiry transfer).

A hold takes credits out of the wallet's lots into the held account, in the same
order as a spend, so they cannot be spent twice. Capturing settles it: the part
captured becomes a spend, the rest goes back to the lots it came from. Releasing
returns everything. A hold not settled by its timeout is released by the expiry job.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from credits_svc.domain import Draw, GrantSource, LotTerms, check_amount, check_movement
from svckit.errors import FailedPrecondition, NotFound, Reason, Violations

# The longest a hold may stay open before the expiry job releases it.
MAX_HOLD_SECONDS = 7 * 24 * 3600
DEFAULT_HOLD_SECONDS = 15 * 60


class LotCategory(enum.Enum):
    PAID = "paid"
    SUBSCRIPTION = "subscription"
    PROMOTIONAL = "promotional"


CATEGORY_OF_SOURCE: dict[GrantSource, LotCategory] = {
    GrantSource.PURCHASE: LotCategory.PAID,
    GrantSource.SUBSCRIPTION: LotCategory.SUBSCRIPTION,
    GrantSource.PROMOTION: LotCategory.PROMOTIONAL,
    GrantSource.ADJUSTMENT: LotCategory.PROMOTIONAL,
}

# Without a priority of its own, a lot is spent before paid credits when it was given
# away, and subscription credits (which usually expire) before credits bought.
DEFAULT_PRIORITY: dict[LotCategory, int] = {
    LotCategory.PROMOTIONAL: 10,
    LotCategory.SUBSCRIPTION: 20,
    LotCategory.PAID: 50,
}


class HoldStatus(enum.Enum):
    OPEN = "open"
    CAPTURED = "captured"
    RELEASED = "released"
    # Released by the expiry job because it was not settled in time.
    EXPIRED = "expired"


# --- errors -------------------------------------------------------------------------------


class HoldNotFound(NotFound):
    def __init__(self, hold_id: str) -> None:
        super().__init__(f"no hold {hold_id}", metadata={"hold": hold_id})


class HoldSettled(FailedPrecondition):
    reason = Reason.HOLD_SETTLED

    def __init__(self, hold_id: str, status: HoldStatus) -> None:
        super().__init__(
            f"hold {hold_id} is already {status.value}", metadata={"hold": hold_id, "status": status.value}
        )


class CaptureExceedsHold(FailedPrecondition):
    reason = Reason.CAPTURE_EXCEEDS_HOLD

    def __init__(self, requested: int, held: int) -> None:
        super().__init__(
            f"asked to capture {requested} credits but the hold reserves {held}",
            metadata={"requested": str(requested), "held": str(held)},
        )


# --- entities -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Lot:
    id: str
    user_id: str
    category: LotCategory
    priority: int
    amount: int
    remaining: int
    expires_at: datetime | None
    created_at: datetime
    # What was paid for the whole lot, in minor units of `currency` (0 and None when nothing).
    value_minor: int = 0
    currency: str | None = None
    expired_amount: int = 0
    expired_at: datetime | None = None

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True)
class Hold:
    id: str
    user_id: str
    amount: int
    captured: int
    status: HoldStatus
    reference: str
    description: str
    expires_at: datetime
    created_at: datetime
    hold_transfer_id: str
    settled_at: datetime | None = None
    capture_transfer_id: str | None = None
    release_transfer_id: str | None = None

    def require_open(self) -> None:
        if self.status is not HoldStatus.OPEN:
            raise HoldSettled(self.id, self.status)


# --- commands -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PlaceHold:
    user_id: str
    amount: int
    reference: str
    timeout: timedelta
    description: str = ""

    def validate(self) -> None:
        v = Violations()
        check_movement(v, self.user_id, self.amount, self.reference, self.description)
        if not 1 <= self.timeout.total_seconds() <= MAX_HOLD_SECONDS:
            v.add("timeout_seconds", f"must be between 1 and {MAX_HOLD_SECONDS:,}")
        v.raise_if_any()


@dataclass(frozen=True)
class CaptureHold:
    hold_id: str
    amount: int | None  # None: all of it

    def validate(self) -> None:
        v = Violations()
        check_hold_id(v, self.hold_id)
        if self.amount is not None:
            check_amount(v, self.amount)
        v.raise_if_any()


def check_hold_id(v: Violations, hold_id: str) -> None:
    if not (hold_id.startswith("hl_") and len(hold_id) == 35 and all(c in "0123456789abcdef" for c in hold_id[3:])):
        v.add("hold_id", "required: a hold id (hl_ and 32 hex digits)")


# --- rules --------------------------------------------------------------------------------


def priority_for(terms: LotTerms, category: LotCategory) -> int:
    return DEFAULT_PRIORITY[category] if terms.priority is None else terms.priority


def consumption_key(lot: Lot) -> tuple[int, bool, datetime, datetime, str]:
    """Lots sort in the order a spend consumes them."""
    never = lot.expires_at is None
    return (lot.priority, never, lot.expires_at or lot.created_at, lot.created_at, lot.id)


def spendable(lots: Iterable[Lot], now: datetime) -> list[Lot]:
    """The lots credits may be taken from now, in consumption order."""
    return sorted((lot for lot in lots if lot.remaining > 0 and not lot.is_expired(now)), key=consumption_key)


def allocate(lots: Sequence[Lot], amount: int, now: datetime) -> list[Draw] | None:
    """Which lots `amount` credits come from, in consumption order; None when they hold too few."""
    draws: list[Draw] = []
    left = amount
    for lot in spendable(lots, now):
        if left == 0:
            break
        take = min(lot.remaining, left)
        draws.append(Draw(lot.id, take))
        left -= take
    return None if left else draws


def split_capture(draws: Sequence[Draw], captured: int) -> tuple[list[Draw], list[Draw]]:
    """A hold's draws split into the part captured (in drawing order) and the part to give back."""
    taken: list[Draw] = []
    back: list[Draw] = []
    left = captured
    for draw in draws:
        take = min(draw.amount, left)
        left -= take
        if take:
            taken.append(Draw(draw.lot_id, take))
        if draw.amount - take:
            back.append(Draw(draw.lot_id, draw.amount - take))
    return taken, back


def give_back(draws: Sequence[Draw], already_back: dict[str, int], amount: int) -> list[Draw]:
    """Return `amount` credits to the lots a spend drew from, the last drawn first.

    `already_back` is what earlier reversals of the same spend returned per lot.
    """
    back: list[Draw] = []
    left = amount
    for draw in reversed(draws):
        room = draw.amount - already_back.get(draw.lot_id, 0)
        take = min(room, left)
        if take > 0:
            back.append(Draw(draw.lot_id, take))
            left -= take
        if left == 0:
            break
    if left:
        raise ValueError(f"the spend's draws leave room for {amount - left} credits, not {amount}")
    return back
