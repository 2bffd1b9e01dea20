"""The Payments database: customers, payments with their status history, refunds,
credit shortfalls, the Stripe event inbox, the outbox, idempotency records, the audit log.

Only Stripe ids, amounts in minor units, currencies and statuses are kept; never
card data.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from svckit.audit import audit_table
from svckit.audit_chain import AuditChain, audit_seals_table
from svckit.chain import chain_state_table
from svckit.db import NAMING_CONVENTION, UtcDateTime
from svckit.idempotency import idempotency_table
from svckit.inbox import inbox_table
from svckit.outbox import outbox_table

BigId = BigInteger().with_variant(Integer(), "sqlite")
STATUSES = "'pending', 'processing', 'succeeded', 'failed', 'expired', 'canceled', 'partially_refunded', 'refunded'"
# The statuses of a payment that was paid (domain.PAID): what revenue counts.
PAID_STATUSES = "'succeeded', 'partially_refunded', 'refunded'"
PAID_PREDICATE = f"status IN ({PAID_STATUSES})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Customer(Base):
    """The Stripe customer of each user: created once, on the user's first purchase."""

    __tablename__ = "customers"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    stripe_customer_id: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Payment(Base):
    __tablename__ = "payments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128))
    package_id: Mapped[str] = mapped_column(String(64))
    credits: Mapped[int] = mapped_column(BigInteger)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    flow: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(24))
    stripe_checkout_session_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_charge_id: Mapped[str | None] = mapped_column(String(255))
    receipt_url: Mapped[str | None] = mapped_column(String(2048))
    amount_refunded_minor: Mapped[int] = mapped_column(BigInteger)
    credits_granted: Mapped[bool] = mapped_column(Boolean)
    credits_reversed: Mapped[int] = mapped_column(BigInteger)
    credit_shortfall: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        CheckConstraint(f"status IN ({STATUSES})", name="status"),
        CheckConstraint("flow IN ('checkout', 'payment_intent')", name="flow"),
        CheckConstraint("credits > 0 AND amount_minor > 0", name="positive"),
        CheckConstraint("amount_refunded_minor >= 0 AND amount_refunded_minor <= amount_minor", name="refunded"),
        CheckConstraint("credits_reversed >= 0 AND credits_reversed <= credits", name="reversed"),
        CheckConstraint("credit_shortfall >= 0 AND credit_shortfall <= credits_reversed", name="shortfall"),
        Index(None, "user_id", "created_at"),
        Index(None, "status", "created_at"),
        # Everyone's payments newest first (transactions, admin listings).
        Index(None, "created_at", "id"),
        # Revenue: paid payments by time, carrying what the sums need (an index-only scan on PostgreSQL).
        Index(
            "ix_payments_paid_created_at",
            "created_at",
            postgresql_where=text(PAID_PREDICATE),
            postgresql_include=["currency", "amount_minor"],
            sqlite_where=text(PAID_PREDICATE),
        ),
    )


class PaymentStatusChange(Base):
    __tablename__ = "payment_status_changes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"))
    status: Mapped[str] = mapped_column(String(24))
    # A Stripe event id, or "api".
    source: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (Index(None, "payment_id", "id"),)


class Refund(Base):
    __tablename__ = "refunds"

    stripe_refund_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    # The payment's currency, kept with the refund so that revenue sums refunds without reading payments.
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(140))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    # Revenue and transactions read refunds by time.
    __table_args__ = (Index(None, "created_at", "stripe_refund_id"),)


class CreditShortfall(Base):
    """Credits a refund should have taken back but the user had spent: for admin review."""

    __tablename__ = "credit_shortfalls"

    # The Credits reversal reference that came up short.
    reference: Mapped[str] = mapped_column(String(255), primary_key=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), index=True)
    user_id: Mapped[str] = mapped_column(String(128))
    requested: Mapped[int] = mapped_column(BigInteger)
    reversed: Mapped[int] = mapped_column(BigInteger)
    shortfall: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


metadata = Base.metadata
idempotency_records = idempotency_table(metadata)
stripe_events = inbox_table(metadata)
outbox_messages = outbox_table(metadata)
audit_records = audit_table(metadata)
chain_state = chain_state_table(metadata)
audit_seals = audit_seals_table(metadata)
# The hash chain over the audit log (svckit.audit_chain).
AUDIT_CHAIN = AuditChain(audit_records, audit_seals, chain_state)
customers = cast(Table, Customer.__table__)
payments = cast(Table, Payment.__table__)
payment_status_changes = cast(Table, PaymentStatusChange.__table__)
refunds = cast(Table, Refund.__table__)
credit_shortfalls = cast(Table, CreditShortfall.__table__)
