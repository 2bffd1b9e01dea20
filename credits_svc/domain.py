"""The credit ledger's rules: accounts, transfers, and what may move where.

Pure Python, no I/O. The persistence layer enforces the same invariants a second
time (CHECK constraints, triggers, guarded updates), so that a bug here cannot
corrupt the ledger; the rules here give callers precise errors.

Invariants:
- every transfer moves a positive whole number of credits between two distinct accounts;
- a wallet never holds fewer than zero credits;
- the sum of all balances is zero;
- a business reference names at most one transfer;
- a reversal never moves back more than is left of the transfer it reverses.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime

from svckit.actors import ID_PATTERN
from svckit.chain import ChainReport
from svckit.errors import AlreadyExists, FailedPrecondition, NotFound, Reason, Violations

MAX_AMOUNT = 1_000_000_000_000
MAX_DESCRIPTION = 500
REFERENCE_PATTERN = re.compile(r"^[\x20-\x7e]{1,255}$")
TRANSFER_ID_PATTERN = re.compile(r"^tr_[0-9a-f]{32}$")
WALLET_PREFIX = "user:"


class TransferKind(enum.Enum):
    GRANT = "grant"
    SPEND = "spend"
    REVERSAL = "reversal"
    # A lot's remainder, moved to the expiry account once the lot expired.
    EXPIRY = "expiry"
    # Credits reserved by a hold, moved to the held account.
    HOLD = "hold"
    # The captured part of a hold, from the held account to the spend account.
    CAPTURE = "capture"
    # What a hold gives back to the wallet when released (or captured in part).
    RELEASE = "release"


# What Reverse may move back: grants, spends, and captures (which are spends of held credits).
REVERSIBLE_KINDS = frozenset({"grant", "spend", "capture"})


class GrantSource(enum.Enum):
    PURCHASE = "purchase"
    SUBSCRIPTION = "subscription"
    PROMOTION = "promotion"
    ADJUSTMENT = "adjustment"


class ShortfallPolicy(enum.Enum):
    REJECT = "reject"
    REVERSE_AVAILABLE = "reverse_available"


class SystemAccount(enum.StrEnum):
    """The ledger's own accounts; their balances are the negation of what left or entered wallets."""

    PURCHASE = "system:purchase"
    SUBSCRIPTION = "system:subscription"
    PROMOTION = "system:promotion"
    ADJUSTMENT = "system:adjustment"
    SPEND = "system:spend"
    # Credits that expired unused (breakage).
    EXPIRED = "system:expired"
    # Credits reserved by open holds.
    HELD = "system:held"


GRANT_ACCOUNTS: dict[GrantSource, SystemAccount] = {
    GrantSource.PURCHASE: SystemAccount.PURCHASE,
    GrantSource.SUBSCRIPTION: SystemAccount.SUBSCRIPTION,
    GrantSource.PROMOTION: SystemAccount.PROMOTION,
    GrantSource.ADJUSTMENT: SystemAccount.ADJUSTMENT,
}


def wallet_account(user_id: str) -> str:
    return WALLET_PREFIX + user_id


def is_wallet(account: str) -> bool:
    return account.startswith(WALLET_PREFIX)


# --- errors: each names the rule that broke -------------------------------------------


class InsufficientCredits(FailedPrecondition):
    reason = Reason.INSUFFICIENT_CREDITS

    def __init__(self, user_id: str, needed: int) -> None:
        super().__init__(
            f"wallet of {user_id} holds fewer than {needed} credits",
            metadata={"user_id": user_id, "needed": str(needed)},
        )


class DuplicateReference(AlreadyExists):
    reason = Reason.DUPLICATE_REFERENCE

    def __init__(self, reference: str) -> None:
        super().__init__(f"a transfer with reference {reference!r} already exists", metadata={"reference": reference})


class TransferNotFound(NotFound):
    def __init__(self, lookup: str) -> None:
        super().__init__(f"no transfer {lookup}", metadata={"transfer": lookup})


class NotReversible(FailedPrecondition):
    reason = Reason.NOT_REVERSIBLE


class ReversalExceedsRemaining(FailedPrecondition):
    reason = Reason.REVERSAL_EXCEEDS_REMAINING

    def __init__(self, requested: int, remaining: int) -> None:
        super().__init__(
            f"asked to reverse {requested} credits but only {remaining} are left to reverse",
            metadata={"requested": str(requested), "remaining": str(remaining)},
        )


# --- commands ---------------------------------------------------------------------------


def _check_user_id(v: Violations, user_id: str) -> None:
    if not ID_PATTERN.match(user_id):
        v.add("user_id", "required: 1 to 128 characters, letters, digits and _-.:@")


def check_amount(v: Violations, amount: int, field: str = "amount") -> None:
    if not 1 <= amount <= MAX_AMOUNT:
        v.add(field, f"must be between 1 and {MAX_AMOUNT:,}")


def _check_reference(v: Violations, reference: str) -> None:
    if not REFERENCE_PATTERN.match(reference):
        v.add("reference", "required: 1 to 255 printable ASCII characters")


def _check_text(v: Violations, field: str, text: str) -> None:
    if len(text) > MAX_DESCRIPTION:
        v.add(field, f"at most {MAX_DESCRIPTION} characters")


def check_movement(v: Violations, user_id: str, amount: int, reference: str, description: str) -> None:
    """The rules every movement out of a wallet shares (Spend, Hold)."""
    _check_user_id(v, user_id)
    check_amount(v, amount)
    _check_reference(v, reference)
    _check_text(v, "description", description)


def check_user_id(user_id: str) -> None:
    v = Violations()
    _check_user_id(v, user_id)
    v.raise_if_any()


MIN_PRIORITY, MAX_PRIORITY = 0, 100


@dataclass(frozen=True)
class LotTerms:
    """What a grant says about the lot it opens (credits_svc.lots)."""

    # 0 to 100, lower spent first; None: the category's default.
    priority: int | None = None
    expires_at: datetime | None = None
    # What was paid for the whole lot, in minor units of `currency`.
    value_minor: int = 0
    currency: str | None = None

    def check(self, v: Violations, now: datetime) -> None:
        if self.priority is not None and not MIN_PRIORITY <= self.priority <= MAX_PRIORITY:
            v.add("priority", f"must be between {MIN_PRIORITY} and {MAX_PRIORITY}; lower is spent first")
        if self.expires_at is not None and self.expires_at <= now:
            v.add("expire_time", "must be in the future")
        if self.value_minor < 0:
            v.add("value_minor", "must not be negative")
        currency = self.currency or ""
        if self.value_minor and not (
            len(currency) == 3 and currency.isascii() and currency.isalpha() and currency.islower()
        ):
            v.add("currency", "required with value_minor: a three-letter lowercase ISO 4217 code")


@dataclass(frozen=True)
class GrantCredits:
    user_id: str
    amount: int
    source: GrantSource | None
    reference: str
    description: str = ""
    terms: LotTerms = LotTerms()

    def validate(self, now: datetime) -> None:
        v = Violations()
        _check_user_id(v, self.user_id)
        check_amount(v, self.amount)
        if self.source is None:
            v.add("source", "required: purchase, subscription, promotion or adjustment")
        _check_reference(v, self.reference)
        _check_text(v, "description", self.description)
        self.terms.check(v, now)
        v.raise_if_any()


@dataclass(frozen=True)
class SpendCredits:
    user_id: str
    amount: int
    reference: str
    description: str = ""

    def validate(self) -> None:
        v = Violations()
        check_movement(v, self.user_id, self.amount, self.reference, self.description)
        v.raise_if_any()


@dataclass(frozen=True)
class ReverseTransfer:
    transfer_id: str
    amount: int | None  # None: all that is left
    reference: str
    reason: str = ""
    policy: ShortfallPolicy = ShortfallPolicy.REJECT

    def validate(self) -> None:
        v = Violations()
        if not TRANSFER_ID_PATTERN.match(self.transfer_id):
            v.add("transfer_id", "required: a transfer id (tr_ and 32 hex digits)")
        if self.amount is not None:
            check_amount(v, self.amount)
        _check_reference(v, self.reference)
        _check_text(v, "reason", self.reason)
        v.raise_if_any()


# --- entities ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Draw:
    """Credits a transfer took from (or, negative, gave back to) one lot."""

    lot_id: str
    amount: int


@dataclass(frozen=True)
class Transfer:
    id: str
    kind: TransferKind
    amount: int
    user_id: str
    from_account: str
    to_account: str
    reference: str
    description: str
    actor: str
    created_at: datetime
    source: GrantSource | None = None
    reverses_transfer_id: str | None = None
    reversed_amount: int = 0
    # The lots it took credits from (positive) or gave back to (negative), when read with them.
    draws: tuple[Draw, ...] = ()

    @property
    def remaining(self) -> int:
        """Credits of this transfer not yet moved back."""
        return self.amount - self.reversed_amount

    @property
    def wallet_is_debited_on_reversal(self) -> bool:
        """Reversing a grant takes credits out of the wallet; reversing a spend puts them back."""
        return is_wallet(self.to_account)


@dataclass(frozen=True)
class LedgerEntry:
    id: int
    transfer_id: str
    kind: TransferKind
    amount: int
    balance_after: int
    reference: str
    description: str
    created_at: datetime


@dataclass(frozen=True)
class Balance:
    user_id: str
    # Spendable now: the wallet's lots that have not expired.
    balance: int
    updated_at: datetime | None
    # Reserved by open holds: neither spendable nor gone yet.
    held: int = 0


@dataclass(frozen=True)
class TransferResult:
    transfer: Transfer
    balance: int


@dataclass(frozen=True)
class ReversalPlan:
    amount: int
    shortfall: int


@dataclass(frozen=True)
class ReversalResult:
    transfer: Transfer | None
    balance: int
    shortfall: int
    remaining: int


@dataclass(frozen=True)
class EntriesPage:
    entries: list[LedgerEntry]
    next_before_id: int | None


@dataclass(frozen=True)
class AccountMismatch:
    account: str
    stored_balance: int
    entries_sum: int


@dataclass(frozen=True)
class LedgerReport:
    accounts_checked: int
    transfers_checked: int
    total_balance: int
    mismatches: list[AccountMismatch]
    unbalanced_transfer_ids: list[str]
    negative_accounts: list[str]
    # Lots or holds that disagree with the ledger (credits_svc.lot_store.LotRepository.check).
    lot_problems: list[str] = field(default_factory=list)
    # The hash chains (credits_svc.sealing); None when the check did not verify them.
    transfer_chain: ChainReport | None = None
    audit_chain: ChainReport | None = None

    @property
    def chains_intact(self) -> bool:
        return all(chain is None or chain.intact for chain in (self.transfer_chain, self.audit_chain))

    @property
    def balanced(self) -> bool:
        return (
            self.total_balance == 0
            and not self.mismatches
            and not self.unbalanced_transfer_ids
            and not self.negative_accounts
            and not self.lot_problems
            and self.chains_intact
        )


# --- rules ------------------------------------------------------------------------------


def plan_reversal(
    original: Transfer,
    requested: int | None,
    wallet_balance: int | None,
    policy: ShortfallPolicy,
) -> ReversalPlan:
    """How much of `original` to move back.

    `wallet_balance` is what the reversal can take back (the remainder of the grant's
    lot), or None when it puts credits back into a wallet (reversing a spend).
    """
    if original.kind is TransferKind.REVERSAL:
        raise NotReversible(f"transfer {original.id} is a reversal; grant or spend again instead")
    if original.kind.value not in REVERSIBLE_KINDS:
        raise NotReversible(
            f"transfer {original.id} is a {original.kind.value}; only grants, spends and captures reverse"
        )
    remaining = original.remaining
    if requested is None and remaining == 0:
        raise NotReversible(f"transfer {original.id} has been reversed in full")
    wanted = remaining if requested is None else requested
    if wanted > remaining:
        raise ReversalExceedsRemaining(wanted, remaining)
    if wallet_balance is None or wallet_balance >= wanted:
        return ReversalPlan(amount=wanted, shortfall=0)
    if policy is ShortfallPolicy.REJECT:
        raise InsufficientCredits(original.user_id, wanted)
    return ReversalPlan(amount=wallet_balance, shortfall=wanted - wallet_balance)


# --- admin reads --------------------------------------------------------------------------


def check_time_range(since: datetime | None, until: datetime | None, *, required: bool) -> None:
    """[since, until): both given when `required`, and since before until when both are."""
    v = Violations()
    v.check_range(since, until, required=required)
    v.raise_if_any()


@dataclass(frozen=True)
class TransferFilter:
    user_id: str = ""
    kind: TransferKind | None = None
    since: datetime | None = None
    until: datetime | None = None

    def validate(self) -> None:
        if self.user_id:
            check_user_id(self.user_id)
        check_time_range(self.since, self.until, required=False)


@dataclass(frozen=True)
class TransfersPage:
    transfers: list[Transfer]
    # (created_at, id) of the last transfer of this page when another page follows.
    next_before: tuple[datetime, str] | None


@dataclass(frozen=True)
class CreditTotals:
    granted: int
    spent: int
    reversed: int
    expired: int
    # In all wallets now, whatever the range.
    outstanding: int
    granted_by_source: dict[GrantSource, int]


def credit_totals(amounts: dict[tuple[TransferKind, GrantSource | None], int], outstanding: int) -> CreditTotals:
    """Totals from the amounts moved per (kind, source) in a range."""
    by_source = {source: amounts.get((TransferKind.GRANT, source), 0) for source in GrantSource}
    return CreditTotals(
        granted=sum(by_source.values()),
        spent=sum(
            amount for (kind, _), amount in amounts.items() if kind in (TransferKind.SPEND, TransferKind.CAPTURE)
        ),
        reversed=sum(amount for (kind, _), amount in amounts.items() if kind is TransferKind.REVERSAL),
        expired=sum(amount for (kind, _), amount in amounts.items() if kind is TransferKind.EXPIRY),
        outstanding=outstanding,
        granted_by_source=by_source,
    )
