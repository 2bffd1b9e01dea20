"""The Credits database: accounts, transfers, ledger entries, idempotency records.

The schema enforces the ledger's invariants on its own, whatever the code does:
- a wallet's balance is never below zero (CHECK);
- system accounts keep no stored balance: theirs is the sum of their entries, so
  no system account becomes a row every transfer must lock;
- a transfer moves a positive amount between two distinct accounts, and its
  reference is unique;
- a reversal never exceeds what was transferred (CHECK on reversed_amount);
- ledger entries can be neither updated nor deleted (triggers, in the migration).

Beside the ledger: the hourly totals the rollup maintains (credits_svc.rollup) with
the one row that says how far it got, the audit log of admin actions, and the
hash chains' seals over transfers and audit records with their watermarks
(credits_svc.sealing, svckit.chain; seals are insert-only, triggers in the migration).
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from svckit.audit import audit_table
from svckit.audit_chain import audit_seals_table
from svckit.chain import chain_state_table, seal_table
from svckit.db import NAMING_CONVENTION, UtcDateTime
from svckit.idempotency import idempotency_table

TRANSFER_KINDS = "'grant', 'spend', 'reversal', 'expiry', 'hold', 'capture', 'release'"

# SQLite makes only INTEGER PRIMARY KEY an auto-incrementing rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Account(Base):
    __tablename__ = "accounts"

    # "user:<user id>" for wallets, "system:<name>" for the ledger's own accounts.
    code: Mapped[str] = mapped_column(String(140), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    balance: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        CheckConstraint("kind IN ('wallet', 'system')", name="kind"),
        CheckConstraint(
            "(kind = 'wallet' AND balance IS NOT NULL AND balance >= 0) OR (kind = 'system' AND balance IS NULL)",
            name="balance",
        ),
    )


class Transfer(Base):
    __tablename__ = "transfers"

    id: Mapped[str] = mapped_column(String(35), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[str] = mapped_column(String(128))
    from_account: Mapped[str] = mapped_column(ForeignKey("accounts.code"))
    to_account: Mapped[str] = mapped_column(ForeignKey("accounts.code"))
    source: Mapped[str | None] = mapped_column(String(16))
    reference: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(String(500))
    reverses_transfer_id: Mapped[str | None] = mapped_column(ForeignKey("transfers.id"), index=True)
    reversed_amount: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(140))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        CheckConstraint(f"kind IN ({TRANSFER_KINDS})", name="kind"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("from_account <> to_account", name="distinct_accounts"),
        CheckConstraint("reversed_amount >= 0 AND reversed_amount <= amount", name="reversed_within_amount"),
        CheckConstraint("(kind = 'reversal') = (reverses_transfer_id IS NOT NULL)", name="reversal_has_original"),
        Index(None, "user_id", "created_at"),
        # Newest-first listing, and the live edges of a totals range.
        Index(None, "created_at", "id"),
    )


class LedgerEntry(Base):
    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    transfer_id: Mapped[str] = mapped_column(ForeignKey("transfers.id"))
    account: Mapped[str] = mapped_column(ForeignKey("accounts.code"))
    # Signed: positive into the account, negative out of it.
    amount: Mapped[int] = mapped_column(BigInteger)
    # The wallet's balance right after this entry; NULL for system accounts.
    balance_after: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_nonzero"),
        CheckConstraint("balance_after IS NULL OR balance_after >= 0", name="balance_after_not_negative"),
        UniqueConstraint("transfer_id", "account"),
        Index(None, "account", "id"),
    )


class CreditLot(Base):
    """The credits one grant put into a wallet, and what is left of them (credits_svc.lots)."""

    __tablename__ = "credit_lots"

    # The grant's transfer id (or, for credits held before lots existed, an opening lot's id).
    id: Mapped[str] = mapped_column(String(35), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128))
    category: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    value_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    expired_amount: Mapped[int] = mapped_column(BigInteger)
    expired_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        CheckConstraint("category IN ('paid', 'subscription', 'promotional')", name="category"),
        CheckConstraint("priority BETWEEN 0 AND 100", name="priority"),
        CheckConstraint("amount > 0 AND remaining >= 0 AND remaining <= amount", name="remaining_within_amount"),
        CheckConstraint("expired_amount >= 0 AND expired_amount <= amount", name="expired_within_amount"),
        CheckConstraint("value_minor >= 0", name="value_not_negative"),
        # A wallet's lots that still hold credits, in consumption order: what every spend and hold reads.
        Index(
            "ix_credit_lots_open",
            "user_id",
            "priority",
            "expires_at",
            "created_at",
            "id",
            postgresql_where="remaining > 0",
            sqlite_where="remaining > 0",
        ),
        # A wallet's lots that expire: what each sweep and each balance reads.
        Index(
            "ix_credit_lots_expiring",
            "user_id",
            "expires_at",
            postgresql_where="remaining > 0 AND expires_at IS NOT NULL",
            sqlite_where="remaining > 0 AND expires_at IS NOT NULL",
        ),
        # The expiry job's queue: lots past their expiry that still hold credits.
        Index("ix_credit_lots_due", "expires_at", postgresql_where="remaining > 0", sqlite_where="remaining > 0"),
        Index(None, "expired_at"),
    )


class LotMovement(Base):
    """A transfer's change to one lot's remaining credits: negative takes, positive gives back."""

    __tablename__ = "lot_movements"

    transfer_id: Mapped[str] = mapped_column(ForeignKey("transfers.id"), primary_key=True)
    lot_id: Mapped[str] = mapped_column(ForeignKey("credit_lots.id"), primary_key=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    # Order of drawing within the transfer (a partial capture or reversal follows it).
    position: Mapped[int] = mapped_column(Integer)

    __table_args__ = (CheckConstraint("amount <> 0", name="amount_nonzero"), Index(None, "lot_id"))


class CreditHold(Base):
    """Credits reserved by `Hold`, until captured, released, or released at their timeout."""

    __tablename__ = "credit_holds"

    id: Mapped[str] = mapped_column(String(35), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128))
    amount: Mapped[int] = mapped_column(BigInteger)
    captured: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(String(500))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    hold_transfer_id: Mapped[str] = mapped_column(ForeignKey("transfers.id"))
    capture_transfer_id: Mapped[str | None] = mapped_column(ForeignKey("transfers.id"))
    release_transfer_id: Mapped[str | None] = mapped_column(ForeignKey("transfers.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    settled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        CheckConstraint("status IN ('open', 'captured', 'released', 'expired')", name="status"),
        CheckConstraint("amount > 0 AND captured >= 0 AND captured <= amount", name="captured_within_amount"),
        CheckConstraint("(status = 'open') = (settled_at IS NULL)", name="settled_when_not_open"),
        Index(None, "user_id", "status"),
        # The expiry job's queue of holds to release at their timeout.
        Index("ix_credit_holds_due", "expires_at", postgresql_where="status = 'open'", sqlite_where="status = 'open'"),
    )


class HourlyTotal(Base):
    """Credits moved by the transfers of one UTC hour, per kind and grant source, as far as the rollup got."""

    __tablename__ = "ledger_hourly_totals"

    hour: Mapped[datetime] = mapped_column(UtcDateTime(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    # The grant source, '' for none (spends, reversals of spends).
    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (CheckConstraint("amount >= 0 AND count >= 0", name="not_negative"),)


class RollupState(Base):
    """How far the rollup got: every transfer whose credit entry id is at most last_entry_id is counted."""

    __tablename__ = "ledger_rollup_state"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_entry_id: Mapped[int] = mapped_column(BigInteger)
    # Credits those transfers put into wallets, net: what wallets held once they were all applied.
    wallet_net: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


metadata = Base.metadata
idempotency_records = idempotency_table(metadata)
accounts = cast(Table, Account.__table__)
transfers = cast(Table, Transfer.__table__)
ledger_entries = cast(Table, LedgerEntry.__table__)
hourly_totals = cast(Table, HourlyTotal.__table__)
rollup_state = cast(Table, RollupState.__table__)
audit_records = audit_table(metadata)
credit_lots = cast(Table, CreditLot.__table__)
lot_movements = cast(Table, LotMovement.__table__)
credit_holds = cast(Table, CreditHold.__table__)
chain_state = chain_state_table(metadata)
transfer_seals = seal_table(metadata, "transfer_seals", "transfer_id", String(35), "transfers.id")
audit_seals = audit_seals_table(metadata)
