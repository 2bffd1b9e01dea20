"""The JSON bodies the gateway reads and writes, as pydantic models.

The OpenAPI document derives its schemas from these models, so the
documentation cannot drift from what is validated and sent. Conventions:
snake_case names, whole numbers of credits as JSON integers, timestamps as
ISO-8601 strings in UTC (`2025-01-31T12:00:00.123456Z`), absent values as null.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal, cast

from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import BaseModel, ConfigDict, Field

from billing.common.v1 import admin_pb2
from billing.credits.v1 import credits_pb2 as pb
from svckit.actors import ID_PATTERN

MAX_CREDITS = 1_000_000_000_000
MAX_DESCRIPTION = 500
MAX_PAGE_SIZE = 200
REFERENCE_PATTERN = r"^[\x20-\x7e]{1,255}$"

UserId = Annotated[
    str,
    Field(
        pattern=ID_PATTERN.pattern,
        description="1 to 128 characters: letters, digits and `_-.:@`.",
        examples=["user-42"],
    ),
]
UtcTime = Annotated[datetime, Field(description="ISO-8601, UTC.")]
TransferKind = Literal["grant", "spend", "reversal", "expiry", "hold", "capture", "release"]
GrantSource = Literal["purchase", "subscription", "promotion", "adjustment"]

KIND_NAMES: dict[pb.TransferKind.ValueType, TransferKind] = {
    pb.TRANSFER_KIND_GRANT: "grant",
    pb.TRANSFER_KIND_SPEND: "spend",
    pb.TRANSFER_KIND_REVERSAL: "reversal",
    pb.TRANSFER_KIND_EXPIRY: "expiry",
    pb.TRANSFER_KIND_HOLD: "hold",
    pb.TRANSFER_KIND_CAPTURE: "capture",
    pb.TRANSFER_KIND_RELEASE: "release",
}
SOURCE_NAMES: dict[pb.GrantSource.ValueType, GrantSource] = {
    pb.GRANT_SOURCE_PURCHASE: "purchase",
    pb.GRANT_SOURCE_SUBSCRIPTION: "subscription",
    pb.GRANT_SOURCE_PROMOTION: "promotion",
    pb.GRANT_SOURCE_ADJUSTMENT: "adjustment",
}
SOURCE_VALUES: dict[GrantSource, pb.GrantSource.ValueType] = {
    "purchase": pb.GRANT_SOURCE_PURCHASE,
    "subscription": pb.GRANT_SOURCE_SUBSCRIPTION,
    "promotion": pb.GRANT_SOURCE_PROMOTION,
    "adjustment": pb.GRANT_SOURCE_ADJUSTMENT,
}


def _utc(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


class Body(BaseModel):
    """A response body: every field always present, nothing else."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- requests ---------------------------------------------------------------------------


class GrantCreditsRequest(BaseModel):
    """Credits for a user's wallet, from the promotion or the adjustment account."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    user_id: UserId
    amount: int = Field(ge=1, le=MAX_CREDITS, description="Whole credits, a JSON integer.", examples=[100])
    source: Literal["promotion", "adjustment"] = Field(
        default="adjustment", description="The system account the credits come from."
    )
    reference: Annotated[str, Field(pattern=REFERENCE_PATTERN)] | None = Field(
        default=None,
        description=(
            "The business fact the grant records, unique across all transfers: 1 to 255 printable ASCII "
            'characters. Defaults to "admin-grant:<Idempotency-Key>".'
        ),
    )
    description: str = Field(default="", max_length=MAX_DESCRIPTION, description="Shown in the ledger.")


class WalletQuery(BaseModel):
    """Query parameters naming the wallet read."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    user_id: UserId | None = Field(
        default=None, description="Whose wallet; only admins may name another user's. Default: the caller's."
    )


class LedgerQuery(WalletQuery):
    page_size: int | None = Field(
        default=None, ge=1, le=MAX_PAGE_SIZE, description="Entries per page, 1 to 200; default 50."
    )
    page_token: str | None = Field(
        default=None, max_length=1024, description="`next_page_token` of the previous page; absent for the first."
    )


# --- responses --------------------------------------------------------------------------


class FieldError(Body):
    field: str = Field(description='The offending field, dotted for nested ones (e.g. "amount").')
    message: str


class ProblemDetails(Body):
    """An error (RFC 9457), served as application/problem+json."""

    type: str = Field(description='"urn:billing:problem:<reason in kebab-case>", or "about:blank".')
    title: str
    status: int = Field(description="The HTTP status code.")
    detail: str
    reason: str = Field(description="Stable UPPER_SNAKE name of what went wrong.", examples=["INSUFFICIENT_CREDITS"])
    request_id: str = Field(description="Quote it when reporting the problem.")
    errors: list[FieldError] = Field(description="Each invalid field; empty when the problem is not about fields.")


class Balance(Body):
    user_id: str
    balance: int = Field(description="Whole credits spendable now (credits past their expiry are not).")
    held: int = Field(description="Whole credits reserved by open holds: not spendable, not spent yet.")
    updated_at: UtcTime | None = Field(description="Last movement; null when the wallet never moved.")

    @classmethod
    def from_pb(cls, response: pb.GetBalanceResponse) -> Balance:
        return cls(
            user_id=response.user_id,
            balance=response.balance,
            held=response.held,
            updated_at=_utc(response.update_time) if response.HasField("update_time") else None,
        )


class LedgerEntry(Body):
    id: int = Field(description="Increases with time.")
    transfer_id: str
    kind: TransferKind
    amount: int = Field(description="Signed change to the wallet: positive in, negative out.")
    balance_after: int
    reference: str
    description: str
    created_at: UtcTime

    @classmethod
    def from_pb(cls, entry: pb.LedgerEntry) -> LedgerEntry:
        return cls(
            id=entry.id,
            transfer_id=entry.transfer_id,
            kind=KIND_NAMES[entry.kind],
            amount=entry.amount,
            balance_after=entry.balance_after,
            reference=entry.reference,
            description=entry.description,
            created_at=_utc(entry.create_time),
        )


class LedgerPage(Body):
    """Ledger entries, newest first."""

    user_id: str
    entries: list[LedgerEntry]
    next_page_token: str | None = Field(description="Pass it as page_token for the next page; null on the last.")


class Transfer(Body):
    id: str
    kind: TransferKind
    amount: int = Field(description="Credits moved; always positive.")
    user_id: str
    from_account: str
    to_account: str
    source: GrantSource | None = Field(description="For grants and their reversals: where the credits came from.")
    reference: str
    description: str
    reverses_transfer_id: str | None
    reversed_amount: int
    actor: str = Field(description='Who asked for it, e.g. "admin:alice".')
    created_at: UtcTime

    @classmethod
    def from_pb(cls, transfer: pb.Transfer) -> Transfer:
        return cls(
            id=transfer.id,
            kind=KIND_NAMES[transfer.kind],
            amount=transfer.amount,
            user_id=transfer.user_id,
            from_account=transfer.from_account,
            to_account=transfer.to_account,
            source=SOURCE_NAMES.get(transfer.source),
            reference=transfer.reference,
            description=transfer.description,
            reverses_transfer_id=transfer.reverses_transfer_id or None,
            reversed_amount=transfer.reversed_amount,
            actor=transfer.actor,
            created_at=_utc(transfer.create_time),
        )


class GrantCreated(Body):
    transfer: Transfer
    balance: int = Field(description="The wallet's balance right after the grant.")

    @classmethod
    def from_pb(cls, response: pb.GrantResponse) -> GrantCreated:
        return cls(transfer=Transfer.from_pb(response.transfer), balance=response.balance)


class AccountMismatch(Body):
    account: str
    stored_balance: int
    entries_sum: int


ChainBreakReason = Literal["row_changed", "row_missing", "seal_missing", "link_broken"]


class ChainBreak(Body):
    seq: int = Field(description="The broken link's position in the chain, from 1.")
    row_id: str = Field(description='The transfer or audit record it seals ("" when unknown).')
    reason: ChainBreakReason = Field(
        description="row_changed: the row's contents no longer give the sealed hash; row_missing: the sealed row "
        "is gone; seal_missing: a row below the sealer's watermark has no seal; link_broken: the seal's previous "
        "hash is not the hash of the link before it."
    )
    computed_hash: str = Field(description='SHA-256 of the row as it is now ("" when there is no row).')
    sealed_hash: str = Field(description='The hash the seal recorded ("" when there is no seal).')


class ChainCheck(Body):
    intact: bool = Field(description="True when every sealed link verifies.")
    sealed: int = Field(description="Links that verified, from the first.")
    unsealed: int = Field(description="Rows not sealed yet (above the sealer's watermark): not a break.")
    head_hash: str = Field(description="The hash of the last link that verified (64 zeros for none).")
    first_break: ChainBreak | None = Field(description="The first broken link; null when intact.")

    @classmethod
    def from_pb(cls, check: admin_pb2.ChainCheck) -> ChainCheck:
        first = check.first_break if check.HasField("first_break") else None
        return cls(
            intact=check.intact,
            sealed=check.sealed,
            unsealed=check.unsealed,
            head_hash=check.head_hash,
            first_break=None
            if first is None
            else ChainBreak(
                seq=first.seq,
                row_id=first.row_id,
                reason=cast(ChainBreakReason, first.reason),
                computed_hash=first.computed_hash,
                sealed_hash=first.sealed_hash,
            ),
        )


class LedgerCheck(Body):
    balanced: bool = Field(description="True when every rule holds and both hash chains are intact.")
    accounts_checked: int
    transfers_checked: int
    total_balance: int = Field(description="Sum of every account's balance; zero when balanced.")
    mismatches: list[AccountMismatch]
    unbalanced_transfer_ids: list[str]
    negative_accounts: list[str]
    lot_problems: list[str] = Field(
        description="Lots or holds that disagree with the ledger (a wallet that is not the sum of its lots, a lot "
        "that is not its amount plus its movements, held credits that are not the open holds'); empty when none."
    )
    transfer_chain: ChainCheck | None = Field(
        description="The hash chain over transfers and their entries; null when the service did not verify it."
    )
    audit_chain: ChainCheck | None = Field(
        description="The hash chain over the Credits audit log; null when the service did not verify it."
    )

    @classmethod
    def from_pb(cls, response: pb.CheckLedgerResponse) -> LedgerCheck:
        return cls(
            balanced=response.balanced,
            accounts_checked=response.accounts_checked,
            transfers_checked=response.transfers_checked,
            total_balance=response.total_balance,
            mismatches=[
                AccountMismatch(account=m.account, stored_balance=m.stored_balance, entries_sum=m.entries_sum)
                for m in response.mismatches
            ],
            unbalanced_transfer_ids=list(response.unbalanced_transfer_ids),
            negative_accounts=list(response.negative_accounts),
            lot_problems=list(response.lot_problems),
            transfer_chain=ChainCheck.from_pb(response.transfer_chain) if response.HasField("transfer_chain") else None,
            audit_chain=ChainCheck.from_pb(response.audit_chain) if response.HasField("audit_chain") else None,
        )


class Liveness(Body):
    status: Literal["ok"]


ServingStatus = Literal["SERVING", "NOT_SERVING", "UNKNOWN", "SERVICE_UNKNOWN", "UNREACHABLE"]


class ServiceHealth(Body):
    target: str = Field(description="host:port of the service.")
    status: ServingStatus = Field(description="The gRPC health status, or UNREACHABLE when the check failed.")
    error: str | None = Field(description="The gRPC status code of a failed check; null otherwise.")


class ServicesHealth(Body):
    credits: ServiceHealth
    payments: ServiceHealth
    subscriptions: ServiceHealth


class Readiness(Body):
    status: Literal["ready", "not_ready"] = Field(description="ready when every service is SERVING.")
    services: ServicesHealth
