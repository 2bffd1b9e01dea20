"""Reads and writes of the Payments tables, in the caller's transaction."""

from __future__ import annotations

import builtins
import functools
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    bindparam,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    update,
)

from payments_svc import domain
from payments_svc.models import (
    PAID_PREDICATE,
    credit_shortfalls,
    customers,
    outbox_messages,
    payment_status_changes,
    payments,
    refunds,
    stripe_events,
)
from svckit.db import dialect_insert_for
from svckit.inbox import REJECTED, StoredEvent
from svckit.outbox import PENDING

# Refunds Stripe reports as never paid out do not count against revenue.
UNPAID_REFUND_STATUSES = ("failed", "canceled")

PAYMENT_COLUMNS = (
    "user_id",
    "package_id",
    "credits",
    "amount_minor",
    "currency",
    "stripe_checkout_session_id",
    "stripe_payment_intent_id",
    "stripe_charge_id",
    "receipt_url",
    "amount_refunded_minor",
    "credits_granted",
    "credits_reversed",
    "credit_shortfall",
    "created_at",
    "updated_at",
)


def _payment(row: Any, history: list[domain.StatusChange]) -> domain.Payment:
    return domain.Payment(
        id=row.id,
        flow=domain.PaymentFlow(row.flow),
        status=domain.PaymentStatus(row.status),
        history=history,
        **{name: getattr(row, name) for name in PAYMENT_COLUMNS},
    )


class _Statements:
    """The statements of the event path and the relay, built once per dialect (building costs more than sending)."""

    def __init__(self, dialect: str) -> None:
        p, h = payments, payment_status_changes
        self.add_payment = (
            dialect_insert_for(dialect, p).on_conflict_do_nothing(index_elements=["id"]).returning(p.c.id)
        )
        self.by_id = select(p).where(p.c.id == bindparam("pid"))
        self.by_id_locked = self.by_id.with_for_update(key_share=True)
        self.by_any_locked = (
            select(p)
            .where(
                or_(
                    p.c.id == bindparam("pid"),
                    p.c.stripe_checkout_session_id == bindparam("sid"),
                    p.c.stripe_payment_intent_id == bindparam("iid"),
                )
            )
            .with_for_update(key_share=True)
        )
        self.history = (
            select(h.c.status, h.c.source, h.c.created_at).where(h.c.payment_id == bindparam("pid")).order_by(h.c.id)
        )
        self.add_history = insert(h)
        self.mark_granted = update(p).where(p.c.id == bindparam("pid")).values(credits_granted=True)
        self.save = (
            update(p)
            .where(p.c.id == bindparam("pid"))
            .values({name: bindparam(f"new_{name}") for name in (*PAYMENT_COLUMNS, "status") if name != "created_at"})
        )


@functools.cache
def statements(dialect: str) -> _Statements:
    return _Statements(dialect)


class PaymentsRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.sql = statements(conn.dialect.name)

    # --- customers --------------------------------------------------------------------

    def customer(self, user_id: str) -> str | None:
        found = self.conn.execute(
            select(customers.c.stripe_customer_id).where(customers.c.user_id == user_id)
        ).scalar_one_or_none()
        return None if found is None else str(found)

    def add_customer(self, user_id: str, stripe_customer_id: str, now: datetime) -> str:
        """Record the user's Stripe customer, unless one is recorded already; the one that stays."""
        self.conn.execute(
            dialect_insert_for(self.conn.dialect.name, customers)
            .values(user_id=user_id, stripe_customer_id=stripe_customer_id, created_at=now)
            .on_conflict_do_nothing(index_elements=["user_id"])
        )
        found = self.customer(user_id)
        assert found is not None
        return found

    # --- payments ---------------------------------------------------------------------

    def add_payment(self, payment: domain.Payment) -> bool:
        """Record a new payment; False if one with its id exists (an event recorded it first)."""
        values = {name: getattr(payment, name) for name in PAYMENT_COLUMNS}
        row = {"id": payment.id, "flow": payment.flow.value, "status": payment.status.value, **values}
        inserted = self.conn.execute(self.sql.add_payment, row).first()
        if inserted is not None:
            self._add_history(payment.id, payment.history)
        return inserted is not None

    def get(self, payment_id: str, *, lock: bool = False, history: bool = True) -> domain.Payment | None:
        """A payment; `lock` holds it until the transaction ends. Without `history`, only new changes are kept."""
        row = self.conn.execute(self.sql.by_id_locked if lock else self.sql.by_id, {"pid": payment_id}).first()
        if row is None:
            return None
        return _payment(row, self._history(row.id) if history else [])

    def find(
        self, *, payment_id: str | None, checkout_session_id: str | None, payment_intent_id: str | None
    ) -> domain.Payment | None:
        """The payment an event is about (by id, else session, else intent), locked, without its history."""
        rows = self.conn.execute(
            self.sql.by_any_locked, {"pid": payment_id, "sid": checkout_session_id, "iid": payment_intent_id}
        ).all()
        keys = (
            ("id", payment_id),
            ("stripe_checkout_session_id", checkout_session_id),
            ("stripe_payment_intent_id", payment_intent_id),
        )
        for column, value in keys:
            for row in rows:
                if value and getattr(row, column) == value:
                    return _payment(row, [])
        return None

    def knows_intent(self, payment_intent_id: str) -> bool:
        found = self.conn.execute(
            select(payments.c.id).where(payments.c.stripe_payment_intent_id == payment_intent_id)
        ).first()
        return found is not None

    def _history(self, payment_id: str) -> list[domain.StatusChange]:
        rows = self.conn.execute(self.sql.history, {"pid": payment_id})
        return [domain.StatusChange(domain.PaymentStatus(r.status), r.source, r.created_at) for r in rows]

    def _add_history(self, payment_id: str, changes: list[domain.StatusChange]) -> None:
        if changes:
            self.conn.execute(
                self.sql.add_history,
                [
                    {"payment_id": payment_id, "status": c.status.value, "source": c.source, "created_at": c.at}
                    for c in changes
                ],
            )

    def save(self, payment: domain.Payment, history_before: int) -> None:
        """Write back a locked payment, and the history entries added since position `history_before`."""
        values = {f"new_{name}": getattr(payment, name) for name in PAYMENT_COLUMNS if name != "created_at"}
        self.conn.execute(self.sql.save, {"pid": payment.id, "new_status": payment.status.value, **values})
        self._add_history(payment.id, payment.history[history_before:])

    def list(
        self,
        *,
        user_id: str | None,
        status: domain.PaymentStatus | None,
        before: tuple[datetime, str] | None,
        limit: int,
    ) -> list[domain.Payment]:
        stmt = select(payments).order_by(payments.c.created_at.desc(), payments.c.id.desc()).limit(limit)
        if user_id:
            stmt = stmt.where(payments.c.user_id == user_id)
        if status is not None:
            stmt = stmt.where(payments.c.status == status.value)
        if before is not None:
            created, ident = before
            stmt = stmt.where(
                (payments.c.created_at < created) | ((payments.c.created_at == created) & (payments.c.id < ident))
            )
        return [_payment(row, self._history(row.id)) for row in self.conn.execute(stmt)]

    def mark_granted(self, payment_id: str) -> None:
        self.conn.execute(self.sql.mark_granted, {"pid": payment_id})

    # --- refunds and shortfalls -------------------------------------------------------

    def add_refund(
        self,
        *,
        stripe_refund_id: str,
        payment_id: str,
        amount_minor: int,
        currency: str,
        status: str,
        reason: str,
        actor: str,
        now: datetime,
    ) -> bool:
        """Record a refund made through this service; False if it was recorded before."""
        inserted = self.conn.execute(
            dialect_insert_for(self.conn.dialect.name, refunds)
            .values(
                stripe_refund_id=stripe_refund_id,
                payment_id=payment_id,
                amount_minor=amount_minor,
                currency=currency,
                status=status,
                reason=reason,
                actor=actor,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["stripe_refund_id"])
            .returning(refunds.c.stripe_refund_id)
        ).first()
        return inserted is not None

    def record_shortfall(
        self, *, reference: str, payment_id: str, user_id: str, requested: int, reversed_: int, now: datetime
    ) -> None:
        """A reversal that came up short: kept for admins, added to the payment's total."""
        shortfall = requested - reversed_
        inserted = self.conn.execute(
            dialect_insert_for(self.conn.dialect.name, credit_shortfalls)
            .values(
                reference=reference,
                payment_id=payment_id,
                user_id=user_id,
                requested=requested,
                reversed=reversed_,
                shortfall=shortfall,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["reference"])
            .returning(credit_shortfalls.c.reference)
        ).first()
        if inserted is not None and shortfall:
            self.conn.execute(
                update(payments)
                .where(payments.c.id == payment_id)
                .values(credit_shortfall=payments.c.credit_shortfall + shortfall)
            )

    def total_shortfall(self) -> int:
        return int(self.conn.execute(select(func.coalesce(func.sum(credit_shortfalls.c.shortfall), 0))).scalar_one())

    # --- admin reads ------------------------------------------------------------------

    def revenue_by_day(
        self, since: datetime, until: datetime
    ) -> tuple[builtins.list[domain.DayFigures], builtins.list[domain.DayFigures]]:
        """Paid payments and refunds created in [since, until), summed per UTC day and currency."""
        p, r = payments, refunds
        paid_day = utc_day(self.conn.dialect.name, p.c.created_at)
        paid = (
            select(paid_day, p.c.currency, func.sum(p.c.amount_minor), func.count())
            # Written as the revenue index's predicate, literally, so that PostgreSQL always uses that index.
            .where(text(PAID_PREDICATE), p.c.created_at >= since, p.c.created_at < until)
            .group_by(paid_day, p.c.currency)
        )
        refund_day = utc_day(self.conn.dialect.name, r.c.created_at)
        refunded = (
            select(refund_day, r.c.currency, func.sum(r.c.amount_minor), func.count())
            .where(r.c.created_at >= since, r.c.created_at < until, r.c.status.not_in(UNPAID_REFUND_STATUSES))
            .group_by(refund_day, r.c.currency)
        )
        return self._day_figures(paid), self._day_figures(refunded)

    def _day_figures(self, statement: Select[Any]) -> builtins.list[domain.DayFigures]:
        return [
            domain.DayFigures(day_text(day), str(currency), int(amount), int(count))
            for day, currency, amount, count in self.conn.execute(statement)
        ]

    def transactions(
        self,
        kind: domain.TransactionKind,
        *,
        user_id: str | None,
        since: datetime | None,
        until: datetime | None,
        after: domain.TransactionPosition | None,
        limit: int,
    ) -> builtins.list[domain.Transaction]:
        """Payments or refunds, newest first, after the position `after` of the merged order."""
        p, r = payments, refunds
        if kind is domain.TransactionKind.PAYMENT:
            at, ident = p.c.created_at, p.c.id
            statement = select(
                p.c.id,
                p.c.user_id,
                p.c.id.label("payment_id"),
                p.c.amount_minor,
                p.c.currency,
                p.c.status,
                p.c.created_at,
                literal_column("''").label("actor"),
                p.c.receipt_url,
            )
        else:
            at, ident = r.c.created_at, r.c.stripe_refund_id
            statement = select(
                r.c.stripe_refund_id.label("id"),
                p.c.user_id,
                r.c.payment_id,
                r.c.amount_minor,
                r.c.currency,
                r.c.status,
                r.c.created_at,
                r.c.actor,
                p.c.receipt_url,
            ).select_from(r.join(p, p.c.id == r.c.payment_id))
        if user_id:
            statement = statement.where(p.c.user_id == user_id)
        if since is not None:
            statement = statement.where(at >= since)
        if until is not None:
            statement = statement.where(at < until)
        if after is not None:
            statement = statement.where(_after(at, ident, kind, after))
        statement = statement.order_by(at.desc(), ident.desc()).limit(limit)
        return [
            domain.Transaction(
                id=row.id,
                kind=kind,
                user_id=row.user_id,
                payment_id=row.payment_id,
                amount_minor=row.amount_minor,
                currency=row.currency,
                status=row.status,
                created_at=row.created_at,
                actor=row.actor or "",
                receipt_url=row.receipt_url or "",
            )
            for row in self.conn.execute(statement)
        ]

    # --- reconciliation reads ---------------------------------------------------------

    def created_between(
        self, since: datetime, until: datetime, *, after: tuple[datetime, str] | None, limit: int
    ) -> builtins.list[domain.Payment]:
        """Payments created in [since, until), oldest first, after the (time, id) position `after`; no history."""
        p = payments
        statement = select(p).where(p.c.created_at >= since, p.c.created_at < until)
        if after is not None:
            at, ident = after
            statement = statement.where(or_(p.c.created_at > at, and_(p.c.created_at == at, p.c.id > ident)))
        rows = self.conn.execute(statement.order_by(p.c.created_at, p.c.id).limit(limit))
        return [_payment(row, []) for row in rows]

    def payments_matching(
        self, *, ids: builtins.list[str], intent_ids: builtins.list[str]
    ) -> builtins.list[domain.Payment]:
        """The payments with these ids or Stripe PaymentIntent ids; no history."""
        if not ids and not intent_ids:
            return []
        p = payments
        rows = self.conn.execute(
            select(p).where(or_(p.c.id.in_(ids), p.c.stripe_payment_intent_id.in_(intent_ids))).order_by(p.c.id)
        )
        return [_payment(row, []) for row in rows]

    def refunds_for(
        self, payment_ids: builtins.list[str], since: datetime, until: datetime
    ) -> builtins.list[dict[str, Any]]:
        """The refunds of these payments, and every refund recorded in [since, until)."""
        r = refunds
        statement = select(r.c.stripe_refund_id, r.c.payment_id, r.c.amount_minor, r.c.currency, r.c.status).where(
            or_(r.c.payment_id.in_(payment_ids), and_(r.c.created_at >= since, r.c.created_at < until))
        )
        return [dict(row._mapping) for row in self.conn.execute(statement.order_by(r.c.stripe_refund_id))]

    def rejected_events(self, since: datetime, until: datetime) -> builtins.list[StoredEvent]:
        """Stripe events received in [since, until) that were rejected, oldest first."""
        e = stripe_events
        statement = (
            select(e)
            .where(e.c.status == REJECTED, e.c.received_at >= since, e.c.received_at < until)
            .order_by(e.c.received_at, e.c.event_id)
        )
        return [StoredEvent(**row._mapping) for row in self.conn.execute(statement)]

    def aggregates_pending(self) -> set[str]:
        """The payments whose outbox still holds a message for Credits (not sent, not dead)."""
        o = outbox_messages
        return {str(a) for a in self.conn.execute(select(o.c.aggregate).where(o.c.state == PENDING).distinct())}

    def locked_event(self, event_id: str) -> StoredEvent | None:
        """The inbox entry of an event, locked until the transaction ends (a re-drive holds it)."""
        row = self.conn.execute(
            select(stripe_events).where(stripe_events.c.event_id == event_id).with_for_update()
        ).first()
        return StoredEvent(**row._mapping) if row else None


def utc_day(dialect: str, column: Any) -> ColumnElement[Any]:
    """The UTC day of a timestamp column, for GROUP BY (no bound parameters: it must read the same twice)."""
    if dialect == "postgresql":
        return func.date_trunc(literal_column("'day'"), column.op("AT TIME ZONE")(literal_column("'UTC'")))
    # SQLite keeps UTC times as text, "YYYY-MM-DD HH:MM:SS[.ffffff]".
    return func.substr(column, 1, 10)


def day_text(value: Any) -> str:
    """'YYYY-MM-DD' from what `utc_day` returned: a naive UTC timestamp (PostgreSQL) or text (SQLite)."""
    return value.date().isoformat() if isinstance(value, datetime) else str(value)[:10]


def _after(
    at: Any, ident: Any, kind: domain.TransactionKind, position: domain.TransactionPosition
) -> ColumnElement[bool]:
    """Rows of `kind` that come after `position` in the newest-first order of (time, kind, id)."""
    if kind.value < position.kind.value:
        # At the position's instant, every row of this kind comes after the other kind's rows.
        return at <= position.created_at  # type: ignore[no-any-return]
    if kind.value > position.kind.value:
        return at < position.created_at  # type: ignore[no-any-return]
    return or_(at < position.created_at, and_(at == position.created_at, ident < position.id))
