"""Reads and writes of credit lots, their movements and holds, in the caller's transaction.

Locking order, everywhere: a transfer or hold row first (when the use case has
one), then the wallet's account row, then the wallet's lots. A lot's remaining
credits change only while its wallet's row is locked, so two transactions never
draw on the same lot from stale reads.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Numeric, cast, func, insert, or_, select, update

from credits_svc import domain
from credits_svc import lots as rules
from credits_svc.models import accounts, credit_holds, credit_lots, ledger_entries, lot_movements, transfers


def _lot(row: Any) -> rules.Lot:
    return rules.Lot(
        id=row.id,
        user_id=row.user_id,
        category=rules.LotCategory(row.category),
        priority=row.priority,
        amount=row.amount,
        remaining=row.remaining,
        expires_at=row.expires_at,
        created_at=row.created_at,
        value_minor=row.value_minor,
        currency=row.currency,
        expired_amount=row.expired_amount,
        expired_at=row.expired_at,
    )


def _hold(row: Any) -> rules.Hold:
    return rules.Hold(
        id=row.id,
        user_id=row.user_id,
        amount=row.amount,
        captured=row.captured,
        status=rules.HoldStatus(row.status),
        reference=row.reference,
        description=row.description,
        expires_at=row.expires_at,
        created_at=row.created_at,
        hold_transfer_id=row.hold_transfer_id,
        settled_at=row.settled_at,
        capture_transfer_id=row.capture_transfer_id,
        release_transfer_id=row.release_transfer_id,
    )


@dataclass(frozen=True)
class CategoryLiability:
    category: rules.LotCategory
    credits: int
    held: int
    # Money value of those credits (held included) per currency, minor units.
    value_minor: dict[str, int]


@dataclass(frozen=True)
class MonthlyBreakage:
    month: str  # YYYY-MM
    category: rules.LotCategory
    credits: int
    value_minor: dict[str, int]


@dataclass(frozen=True)
class Liability:
    by_category: list[CategoryLiability]
    breakage: list[MonthlyBreakage]
    # Paid credits not spent yet (held included), as money per currency: revenue not earned yet.
    deferred_revenue_minor: dict[str, int]


class LotRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # --- lots -------------------------------------------------------------------------

    def open_lot(self, lot: rules.Lot) -> None:
        self.conn.execute(
            insert(credit_lots),
            {
                "id": lot.id,
                "user_id": lot.user_id,
                "category": lot.category.value,
                "priority": lot.priority,
                "amount": lot.amount,
                "remaining": lot.remaining,
                "expires_at": lot.expires_at,
                "value_minor": lot.value_minor,
                "currency": lot.currency,
                "expired_amount": 0,
                "expired_at": None,
                "created_at": lot.created_at,
            },
        )

    def lock_expired_lots(self, user_id: str, now: datetime, limit: int) -> list[rules.Lot]:
        """Up to `limit` of the wallet's lots past their expiry that still hold credits, locked
        (the wallet's row must be locked already; index ix_credit_lots_expiring)."""
        c = credit_lots.c
        stmt = (
            select(credit_lots)
            .where(c.user_id == user_id, c.remaining > 0, c.expires_at.is_not(None), c.expires_at <= now)
            .order_by(c.expires_at, c.id)
            .limit(limit)
            .with_for_update()
        )
        return [_lot(row) for row in self.conn.execute(stmt)]

    def lock_spendable_lots(self, user_id: str, now: datetime, limit: int | None) -> list[rules.Lot]:
        """The wallet's first `limit` spendable lots in consumption order (credits_svc.lots.consumption_key:
        priority, soonest expiry, never-expiring last, oldest), locked; read in the order of the index
        ix_credit_lots_open, so a wallet with many lots costs no more."""
        c = credit_lots.c
        stmt = (
            select(credit_lots)
            .where(c.user_id == user_id, c.remaining > 0, or_(c.expires_at.is_(None), c.expires_at > now))
            .order_by(c.priority, c.expires_at.asc().nulls_last(), c.created_at, c.id)
            .limit(limit)
            .with_for_update()
        )
        return [_lot(row) for row in self.conn.execute(stmt)]

    def lock_lot(self, lot_id: str) -> rules.Lot | None:
        row = self.conn.execute(select(credit_lots).where(credit_lots.c.id == lot_id).with_for_update()).first()
        return None if row is None else _lot(row)

    def list_lots(self, user_id: str, *, with_empty: bool) -> list[rules.Lot]:
        c = credit_lots.c
        stmt = select(credit_lots).where(c.user_id == user_id)
        if not with_empty:
            stmt = stmt.where(c.remaining > 0)
        return [_lot(row) for row in self.conn.execute(stmt.order_by(c.created_at, c.id))]

    def move(self, transfer_id: str, draws: Sequence[domain.Draw], sign: int) -> None:
        """Take (sign -1) or give back (sign +1) credits of lots, recording the transfer's movement of each."""
        if not draws:
            return
        c = credit_lots.c
        for draw in draws:
            changed = self.conn.execute(
                update(credit_lots)
                .where(c.id == draw.lot_id, c.remaining + sign * draw.amount >= 0)
                .values(remaining=c.remaining + sign * draw.amount)
            ).rowcount
            if changed != 1:
                raise RuntimeError(f"lot {draw.lot_id} cannot move {sign * draw.amount} credits")
        self._record_movements(transfer_id, draws, sign)

    def _record_movements(self, transfer_id: str, draws: Sequence[domain.Draw], sign: int) -> None:
        self.conn.execute(
            insert(lot_movements),
            [
                {"transfer_id": transfer_id, "lot_id": d.lot_id, "amount": sign * d.amount, "position": n}
                for n, d in enumerate(draws)
            ],
        )

    def expire(self, transfer_id: str, lot: rules.Lot, now: datetime) -> None:
        """Move the lot's whole remainder out (one statement) and record it as the transfer's movement."""
        c = credit_lots.c
        changed = self.conn.execute(
            update(credit_lots)
            .where(c.id == lot.id, c.remaining == lot.remaining)
            .values(remaining=0, expired_amount=c.expired_amount + lot.remaining, expired_at=now)
        ).rowcount
        if changed != 1:
            raise RuntimeError(f"lot {lot.id} changed while locked")
        self._record_movements(transfer_id, [domain.Draw(lot.id, lot.remaining)], -1)

    def movements(self, transfer_id: str) -> list[domain.Draw]:
        """The transfer's movements, in drawing order, signed as stored."""
        m = lot_movements.c
        stmt = select(m.lot_id, m.amount).where(m.transfer_id == transfer_id).order_by(m.position)
        return [domain.Draw(row.lot_id, int(row.amount)) for row in self.conn.execute(stmt)]

    def returned_by_reversals(self, original_id: str) -> dict[str, int]:
        """Credits earlier reversals of a spend gave back, per lot."""
        m, t = lot_movements.c, transfers.c
        stmt = (
            select(m.lot_id, func.sum(m.amount).label("amount"))
            .join(transfers, t.id == m.transfer_id)
            .where(t.reverses_transfer_id == original_id, m.amount > 0)
            .group_by(m.lot_id)
        )
        return {row.lot_id: int(row.amount) for row in self.conn.execute(stmt)}

    def expired_unswept(self, user_id: str, now: datetime) -> int:
        """Credits of the wallet's lots past their expiry that have not moved to the expiry account yet."""
        c = credit_lots.c
        stmt = select(func.coalesce(func.sum(c.remaining), 0)).where(
            c.user_id == user_id, c.remaining > 0, c.expires_at <= now
        )
        return int(self.conn.execute(stmt).scalar_one())

    def users_with_expired_lots(self, now: datetime, limit: int) -> list[str]:
        c = credit_lots.c
        stmt = (
            select(c.user_id)
            .where(c.remaining > 0, c.expires_at <= now)
            .group_by(c.user_id)
            .order_by(func.min(c.expires_at))
            .limit(limit)
        )
        return [row.user_id for row in self.conn.execute(stmt)]

    # --- holds ------------------------------------------------------------------------

    def add_hold(self, hold: rules.Hold) -> bool:
        """Record a new hold; False when its reference names another hold."""
        exists = self.conn.execute(select(credit_holds.c.id).where(credit_holds.c.reference == hold.reference)).first()
        if exists is not None:
            return False
        self.conn.execute(
            insert(credit_holds),
            {
                "id": hold.id,
                "user_id": hold.user_id,
                "amount": hold.amount,
                "captured": 0,
                "status": hold.status.value,
                "reference": hold.reference,
                "description": hold.description,
                "expires_at": hold.expires_at,
                "hold_transfer_id": hold.hold_transfer_id,
                "capture_transfer_id": None,
                "release_transfer_id": None,
                "created_at": hold.created_at,
                "settled_at": None,
            },
        )
        return True

    def get_hold(self, hold_id: str, *, lock: bool = False) -> rules.Hold | None:
        stmt = select(credit_holds).where(credit_holds.c.id == hold_id)
        if lock:
            stmt = stmt.with_for_update()
        row = self.conn.execute(stmt).first()
        return None if row is None else _hold(row)

    def hold_of_capture(self, capture_transfer_id: str) -> rules.Hold:
        row = self.conn.execute(
            select(credit_holds).where(credit_holds.c.capture_transfer_id == capture_transfer_id)
        ).first()
        if row is None:
            raise RuntimeError(f"capture {capture_transfer_id} has no hold")
        return _hold(row)

    def settle_hold(self, hold: rules.Hold) -> None:
        h = credit_holds.c
        changed = self.conn.execute(
            update(credit_holds)
            .where(h.id == hold.id, h.status == rules.HoldStatus.OPEN.value)
            .values(
                status=hold.status.value,
                captured=hold.captured,
                settled_at=hold.settled_at,
                capture_transfer_id=hold.capture_transfer_id,
                release_transfer_id=hold.release_transfer_id,
            )
        ).rowcount
        if changed != 1:
            raise RuntimeError(f"hold {hold.id} was settled concurrently")

    def held(self, user_id: str) -> int:
        h = credit_holds.c
        stmt = select(func.coalesce(func.sum(h.amount), 0)).where(
            h.user_id == user_id, h.status == rules.HoldStatus.OPEN.value
        )
        return int(self.conn.execute(stmt).scalar_one())

    def due_holds(self, now: datetime, limit: int) -> list[str]:
        h = credit_holds.c
        stmt = (
            select(h.id)
            .where(h.status == rules.HoldStatus.OPEN.value, h.expires_at <= now)
            .order_by(h.expires_at)
            .limit(limit)
        )
        return [row.id for row in self.conn.execute(stmt)]

    # --- liability --------------------------------------------------------------------

    def liability(self, breakage_since: datetime) -> Liability:
        """Outstanding credits by category with their value, breakage per month, and deferred revenue."""
        lot, hold, m = credit_lots.c, credit_holds.c, lot_movements.c
        # Credits held by open holds, per lot: what each hold took out of its lots.
        held_per_lot = (
            select(m.lot_id, (-func.sum(m.amount)).label("held"))
            .join(credit_holds, hold.hold_transfer_id == m.transfer_id)
            .where(hold.status == rules.HoldStatus.OPEN.value)
            .group_by(m.lot_id)
            .subquery()
        )
        held = func.coalesce(held_per_lot.c.held, 0)
        unspent = lot.remaining + held
        value = func.sum(cast(lot.value_minor, Numeric(38, 0)) * unspent / lot.amount)
        stmt = (
            select(
                lot.category,
                lot.currency,
                func.sum(lot.remaining).label("credits"),
                func.sum(held).label("held"),
                value.label("value"),
            )
            .select_from(credit_lots.outerjoin(held_per_lot, held_per_lot.c.lot_id == lot.id))
            .where(unspent > 0)
            .group_by(lot.category, lot.currency)
        )
        credits: dict[rules.LotCategory, int] = defaultdict(int)
        held_by: dict[rules.LotCategory, int] = defaultdict(int)
        values: dict[rules.LotCategory, dict[str, int]] = defaultdict(dict)
        for row in self.conn.execute(stmt):
            category = rules.LotCategory(row.category)
            credits[category] += int(row.credits)
            held_by[category] += int(row.held)
            if row.currency:
                values[category][row.currency] = values[category].get(row.currency, 0) + _minor(row.value)
        by_category = [
            CategoryLiability(category, credits[category], held_by[category], dict(values[category]))
            for category in rules.LotCategory
        ]
        deferred = dict(values[rules.LotCategory.PAID])
        return Liability(by_category, self._breakage(breakage_since), deferred)

    def _breakage(self, since: datetime) -> list[MonthlyBreakage]:
        lot = credit_lots.c
        if self.conn.dialect.name == "postgresql":
            month = func.to_char(lot.expired_at, "YYYY-MM")
        else:
            month = func.strftime("%Y-%m", lot.expired_at)
        value = func.sum(cast(lot.value_minor, Numeric(38, 0)) * lot.expired_amount / lot.amount)
        stmt = (
            select(
                month.label("month"),
                lot.category,
                lot.currency,
                func.sum(lot.expired_amount).label("credits"),
                value.label("value"),
            )
            .where(lot.expired_at >= since, lot.expired_amount > 0)
            .group_by(month, lot.category, lot.currency)
        )
        merged: dict[tuple[str, rules.LotCategory], tuple[int, dict[str, int]]] = {}
        for row in self.conn.execute(stmt):
            key = (row.month, rules.LotCategory(row.category))
            total, values = merged.get(key, (0, {}))
            if row.currency:
                values[row.currency] = values.get(row.currency, 0) + _minor(row.value)
            merged[key] = (total + int(row.credits), values)
        return [
            MonthlyBreakage(month, category, total, values)
            for (month, category), (total, values) in sorted(
                merged.items(), key=lambda item: (item[0][0], item[0][1].value)
            )
        ]

    # --- the ledger check -------------------------------------------------------------

    def check(self) -> list[str]:
        """Every rule tying lots and holds to the ledger; each broken one as a sentence naming the rows."""
        problems: list[str] = []
        lot, m, a, e, hold = credit_lots.c, lot_movements.c, accounts.c, ledger_entries.c, credit_holds.c
        sums = select(m.lot_id, func.sum(m.amount).label("moved")).group_by(m.lot_id).subquery()
        for row in self.conn.execute(
            select(lot.id, lot.amount, lot.remaining, func.coalesce(sums.c.moved, 0).label("moved"))
            .outerjoin(sums, sums.c.lot_id == lot.id)
            .where(lot.amount + func.coalesce(sums.c.moved, 0) != lot.remaining)
            .order_by(lot.id)
        ):
            problems.append(
                f"lot {row.id}: remaining {row.remaining} but amount {row.amount} and movements {int(row.moved)}"
            )
        per_user = select(lot.user_id, func.sum(lot.remaining).label("in_lots")).group_by(lot.user_id).subquery()
        for wallet in self.conn.execute(
            select(a.code, a.balance, func.coalesce(per_user.c.in_lots, 0).label("in_lots"))
            .outerjoin(per_user, a.code == domain.WALLET_PREFIX + per_user.c.user_id)
            .where(a.kind == "wallet", a.balance != func.coalesce(per_user.c.in_lots, 0))
            .order_by(a.code)
        ):
            problems.append(f"wallet {wallet.code}: balance {wallet.balance} but its lots hold {int(wallet.in_lots)}")
        held_entries = self.conn.execute(
            select(func.coalesce(func.sum(e.amount), 0)).where(e.account == domain.SystemAccount.HELD)
        ).scalar_one()
        open_holds = self.conn.execute(
            select(func.coalesce(func.sum(hold.amount), 0)).where(hold.status == rules.HoldStatus.OPEN.value)
        ).scalar_one()
        if int(held_entries) != int(open_holds):
            problems.append(
                f"account {domain.SystemAccount.HELD}: entries sum to {int(held_entries)} "
                f"but open holds reserve {int(open_holds)}"
            )
        return problems


def _minor(value: Any) -> int:
    """A summed money value (Decimal on PostgreSQL, float on SQLite) as whole minor units, rounded down."""
    return int(Decimal(str(value))) if value is not None else 0
