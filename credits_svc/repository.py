"""Reads and writes of the ledger tables, in the caller's transaction.

Every balance change is one guarded statement, so concurrent transactions can
never take a wallet below zero: they queue on the wallet's row and the guard
re-checks against the committed balance.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Select, and_, bindparam, case, func, insert, literal, or_, select, update

from credits_svc import domain
from credits_svc.lot_store import LotRepository
from credits_svc.models import accounts, hourly_totals, ledger_entries, rollup_state, transfers
from svckit.db import dialect_insert_for

ROLLUP_STATE = "totals"
HOUR = timedelta(hours=1)
# Amounts moved per (kind, grant source) in a range.
Amounts = Counter[tuple[domain.TransferKind, domain.GrantSource | None]]


def _transfer(row: Any) -> domain.Transfer:
    return domain.Transfer(
        id=row.id,
        kind=domain.TransferKind(row.kind),
        amount=row.amount,
        user_id=row.user_id,
        from_account=row.from_account,
        to_account=row.to_account,
        source=domain.GrantSource(row.source) if row.source else None,
        reference=row.reference,
        description=row.description,
        reverses_transfer_id=row.reverses_transfer_id,
        reversed_amount=row.reversed_amount,
        actor=row.actor,
        created_at=row.created_at,
    )


class _Statements:
    """The hot-path statements, built once per dialect and executed with parameters.

    Building a SQLAlchemy statement costs more than sending it; these are built
    once, so each call pays only for execution.
    """

    def __init__(self, dialect: str) -> None:
        a, t, e = accounts, transfers, ledger_entries
        upsert = dialect_insert_for(dialect, a)
        self.credit_wallet = upsert.on_conflict_do_update(
            index_elements=["code"],
            set_={"balance": a.c.balance + upsert.excluded.balance, "updated_at": upsert.excluded.updated_at},
        ).returning(a.c.balance)
        self.debit_wallet = (
            update(a)
            .where(a.c.code == bindparam("wallet"), a.c.balance - bindparam("debit") >= 0)
            .values(balance=a.c.balance - bindparam("debit"), updated_at=bindparam("now"))
            .returning(a.c.balance)
        )
        self.wallet_balance = select(a.c.balance, a.c.updated_at).where(a.c.code == bindparam("wallet"))
        # FOR NO KEY UPDATE: the foreign-key checks of concurrent entry inserts don't wait on it.
        self.lock_wallet = select(a.c.balance).where(a.c.code == bindparam("wallet")).with_for_update(key_share=True)
        self.add_transfer = (
            dialect_insert_for(dialect, t).on_conflict_do_nothing(index_elements=["reference"]).returning(t.c.id)
        )
        self.add_entries = insert(e)
        self.transfer_by_id = select(t).where(t.c.id == bindparam("transfer_id"))
        self.lock_transfer = self.transfer_by_id.with_for_update(key_share=True)
        self.transfer_by_reference = select(t).where(t.c.reference == bindparam("ref"))
        self.add_reversed = (
            update(t)
            .where(t.c.id == bindparam("transfer_id"), t.c.reversed_amount + bindparam("more") <= t.c.amount)
            .values(reversed_amount=t.c.reversed_amount + bindparam("more"))
        )


@dataclass(frozen=True)
class RollupWatermark:
    last_entry_id: int
    wallet_net: int


@dataclass(frozen=True)
class RolledTransfer:
    """What the rollup needs of a transfer."""

    kind: str
    source: str | None
    amount: int
    created_at: datetime
    # What it changed in wallets: +amount into one, -amount out of one, 0 between system accounts.
    wallet_delta: int


def floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    floor = floor_hour(moment)
    return floor if floor == moment else floor + HOUR


def _key(kind: str, source: str | None) -> tuple[domain.TransferKind, domain.GrantSource | None]:
    return domain.TransferKind(kind), domain.GrantSource(source) if source else None


def _wallet_delta() -> Any:
    """A transfer's change to the credits in wallets (holds and captures move none between wallets and back)."""
    t = transfers.c
    wallet = domain.WALLET_PREFIX + "%"
    return case((t.to_account.like(wallet), t.amount), (t.from_account.like(wallet), -t.amount), else_=0)


@functools.cache
def statements(dialect: str) -> _Statements:
    return _Statements(dialect)


class LedgerRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.sql = statements(conn.dialect.name)

    # --- wallets ----------------------------------------------------------------------

    def credit_wallet(self, user_id: str, amount: int, now: datetime) -> int:
        """Add credits, opening the wallet if needed; the new balance."""
        row = {"code": domain.wallet_account(user_id), "kind": "wallet", "balance": amount}
        return int(
            self.conn.execute(self.sql.credit_wallet, {**row, "created_at": now, "updated_at": now}).scalar_one()
        )

    def debit_wallet(self, user_id: str, amount: int, now: datetime) -> int | None:
        """Take credits if the wallet holds enough; the new balance, or None and nothing changed."""
        params = {"wallet": domain.wallet_account(user_id), "debit": amount, "now": now}
        balance = self.conn.execute(self.sql.debit_wallet, params).scalar_one_or_none()
        return None if balance is None else int(balance)

    def lock_wallet_balance(self, user_id: str) -> int:
        """The wallet's balance, locked until the transaction ends (0 for no wallet)."""
        balance = self.conn.execute(self.sql.lock_wallet, {"wallet": domain.wallet_account(user_id)}).scalar()
        return int(balance or 0)

    def balance(self, user_id: str) -> domain.Balance:
        row = self.conn.execute(self.sql.wallet_balance, {"wallet": domain.wallet_account(user_id)}).first()
        if row is None:
            return domain.Balance(user_id=user_id, balance=0, updated_at=None)
        return domain.Balance(user_id=user_id, balance=row.balance, updated_at=row.updated_at)

    # --- transfers --------------------------------------------------------------------

    def add_transfer(self, transfer: domain.Transfer, wallet_balance_after: int) -> bool:
        """Record a transfer and its two entries; False (and nothing written) if its reference exists."""
        row = {
            "id": transfer.id,
            "kind": transfer.kind.value,
            "amount": transfer.amount,
            "user_id": transfer.user_id,
            "from_account": transfer.from_account,
            "to_account": transfer.to_account,
            "source": transfer.source.value if transfer.source else None,
            "reference": transfer.reference,
            "description": transfer.description,
            "reverses_transfer_id": transfer.reverses_transfer_id,
            "reversed_amount": transfer.reversed_amount,
            "actor": transfer.actor,
            "created_at": transfer.created_at,
        }
        if self.conn.execute(self.sql.add_transfer, row).first() is None:
            return False

        def entry(account: str, amount: int) -> dict[str, Any]:
            after = wallet_balance_after if domain.is_wallet(account) else None
            return {
                "transfer_id": transfer.id,
                "account": account,
                "amount": amount,
                "balance_after": after,
                "created_at": transfer.created_at,
            }

        self.conn.execute(
            self.sql.add_entries,
            [entry(transfer.from_account, -transfer.amount), entry(transfer.to_account, transfer.amount)],
        )
        return True

    def get_transfer(self, transfer_id: str, *, lock: bool = False) -> domain.Transfer | None:
        stmt = self.sql.lock_transfer if lock else self.sql.transfer_by_id
        row = self.conn.execute(stmt, {"transfer_id": transfer_id}).first()
        return None if row is None else _transfer(row)

    def find_transfer(self, reference: str) -> domain.Transfer | None:
        row = self.conn.execute(self.sql.transfer_by_reference, {"ref": reference}).first()
        return None if row is None else _transfer(row)

    def add_reversed(self, transfer_id: str, amount: int) -> bool:
        """Count `amount` more as reversed, unless that would exceed the transfer."""
        result = self.conn.execute(self.sql.add_reversed, {"transfer_id": transfer_id, "more": amount})
        return result.rowcount == 1

    # --- reading the ledger -----------------------------------------------------------

    def list_entries(self, user_id: str, before_id: int | None, limit: int) -> list[domain.LedgerEntry]:
        e, t = ledger_entries, transfers
        stmt = (
            select(
                e.c.id,
                e.c.transfer_id,
                t.c.kind,
                e.c.amount,
                e.c.balance_after,
                t.c.reference,
                t.c.description,
                e.c.created_at,
            )
            .join(t, t.c.id == e.c.transfer_id)
            .where(e.c.account == domain.wallet_account(user_id))
            .order_by(e.c.id.desc())
            .limit(limit)
        )
        if before_id is not None:
            stmt = stmt.where(e.c.id < before_id)
        return [
            domain.LedgerEntry(
                id=row.id,
                transfer_id=row.transfer_id,
                kind=domain.TransferKind(row.kind),
                amount=row.amount,
                balance_after=row.balance_after,
                reference=row.reference,
                description=row.description,
                created_at=row.created_at,
            )
            for row in self.conn.execute(stmt)
        ]

    def list_transfers(
        self, where: domain.TransferFilter, before: tuple[datetime, str] | None, limit: int
    ) -> list[domain.Transfer]:
        """Newest first; `before` is the (created_at, id) of the last transfer of the previous page."""
        t = transfers
        stmt = select(t)
        if where.user_id:
            stmt = stmt.where(t.c.user_id == where.user_id)
        if where.kind is not None:
            stmt = stmt.where(t.c.kind == where.kind.value)
        if where.since is not None:
            stmt = stmt.where(t.c.created_at >= where.since)
        if where.until is not None:
            stmt = stmt.where(t.c.created_at < where.until)
        if before is not None:
            at, ident = before
            stmt = stmt.where(or_(t.c.created_at < at, and_(t.c.created_at == at, t.c.id < ident)))
        stmt = stmt.order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit)
        return [_transfer(row) for row in self.conn.execute(stmt)]

    # --- totals -----------------------------------------------------------------------
    #
    # A transfer is represented by its credit entry (the positive one): its id orders
    # transfers for the rollup. The rollup has counted exactly the transfers whose
    # credit entry id is at most the watermark; the rest (the tail) are read live.

    def credit_totals(self, since: datetime, until: datetime) -> domain.CreditTotals:
        """Exact totals for [since, until), read in the caller's snapshot.

        Whole hours inside the range come from the hourly rollup plus the tail;
        the partial hours at its edges are read live from the transfers.
        """
        mark = self.rollup_watermark()
        amounts: Amounts = Counter()
        full_from, full_to = ceil_hour(since), floor_hour(until)
        if full_from < full_to:
            amounts.update(self._live_amounts(since, full_from))
            amounts.update(self._rolled_amounts(full_from, full_to))
            amounts.update(self._live_amounts(full_to, until))
        else:
            amounts.update(self._live_amounts(since, until))
            full_from = full_to = since  # no whole hour: the tail adds nothing to the range
        tail, tail_net = self._tail(mark.last_entry_id, full_from, full_to)
        amounts.update(tail)
        return domain.credit_totals(dict(amounts), mark.wallet_net + tail_net)

    def rollup_watermark(self) -> RollupWatermark:
        """How far the rollup got, as this transaction sees it."""
        row = self.conn.execute(self._watermark()).first()
        if row is None:
            raise RuntimeError("ledger_rollup_state has no row: the migration creates it")
        return RollupWatermark(int(row.last_entry_id), int(row.wallet_net))

    def claim_rollup_watermark(self) -> RollupWatermark | None:
        """The watermark, locked until this transaction ends; None while another transaction holds it."""
        row = self.conn.execute(self._watermark().with_for_update(skip_locked=True)).first()
        return None if row is None else RollupWatermark(int(row.last_entry_id), int(row.wallet_net))

    @staticmethod
    def _watermark() -> Select[Any]:
        s = rollup_state
        return select(s.c.last_entry_id, s.c.wallet_net).where(s.c.name == ROLLUP_STATE)

    def _live_amounts(self, since: datetime, until: datetime) -> Amounts:
        if since >= until:
            return Counter()
        t = transfers
        stmt = (
            select(t.c.kind, t.c.source, func.sum(t.c.amount).label("amount"))
            .where(t.c.created_at >= since, t.c.created_at < until)
            .group_by(t.c.kind, t.c.source)
        )
        return Counter({_key(row.kind, row.source): int(row.amount) for row in self.conn.execute(stmt)})

    def _rolled_amounts(self, since: datetime, until: datetime) -> Amounts:
        h = hourly_totals
        stmt = (
            select(h.c.kind, h.c.source, func.sum(h.c.amount).label("amount"))
            .where(h.c.hour >= since, h.c.hour < until)
            .group_by(h.c.kind, h.c.source)
        )
        return Counter({_key(row.kind, row.source): int(row.amount) for row in self.conn.execute(stmt)})

    def _tail(self, after_entry_id: int, since: datetime, until: datetime) -> tuple[Amounts, int]:
        """Transfers not rolled up yet: amounts of those created in [since, until), and the wallets' net of all."""
        e, t = ledger_entries, transfers
        in_range = and_(t.c.created_at >= since, t.c.created_at < until)
        stmt = (
            select(
                t.c.kind,
                t.c.source,
                func.sum(case((in_range, t.c.amount), else_=0)).label("amount"),
                func.sum(_wallet_delta()).label("net"),
            )
            .select_from(e.join(t, t.c.id == e.c.transfer_id))
            .where(e.c.id > after_entry_id, e.c.amount > 0)
            .group_by(t.c.kind, t.c.source)
        )
        amounts: Amounts = Counter()
        net = 0
        for row in self.conn.execute(stmt):
            amounts[_key(row.kind, row.source)] += int(row.amount)
            net += int(row.net)
        return amounts, net

    # --- the rollup's writes ----------------------------------------------------------

    def last_entry_id(self) -> int:
        """The highest ledger entry id committed (SQLite: writers are serialised, so none is in flight)."""
        return int(self.conn.execute(select(func.coalesce(func.max(ledger_entries.c.id), 0))).scalar_one())

    def transfers_to_roll_up(self, after_entry_id: int, upto_entry_id: int) -> list[RolledTransfer]:
        e, t = ledger_entries, transfers
        stmt = (
            select(t.c.kind, t.c.source, t.c.amount, t.c.created_at, _wallet_delta().label("wallet_delta"))
            .select_from(e.join(t, t.c.id == e.c.transfer_id))
            .where(e.c.id > after_entry_id, e.c.id <= upto_entry_id, e.c.amount > 0)
        )
        return [
            RolledTransfer(row.kind, row.source, row.amount, row.created_at, int(row.wallet_delta))
            for row in self.conn.execute(stmt)
        ]

    def add_hourly_totals(self, rows: Iterable[dict[str, Any]]) -> None:
        """Add amounts and counts to hourly rows, creating them as needed."""
        batch = list(rows)
        if not batch:
            return
        h = hourly_totals
        upsert = dialect_insert_for(self.conn.dialect.name, h)
        stmt = upsert.on_conflict_do_update(
            index_elements=["hour", "kind", "source"],
            set_={"amount": h.c.amount + upsert.excluded.amount, "count": h.c.count + upsert.excluded.count},
        )
        self.conn.execute(stmt, batch)

    def advance_rollup(self, mark: RollupWatermark, now: datetime) -> None:
        s = rollup_state
        self.conn.execute(
            update(s)
            .where(s.c.name == ROLLUP_STATE)
            .values(last_entry_id=mark.last_entry_id, wallet_net=mark.wallet_net, updated_at=now)
        )

    def check(self) -> domain.LedgerReport:
        """Every invariant of the ledger, from one consistent snapshot."""
        a, e, t = accounts, ledger_entries, transfers
        sums = select(e.c.account, func.sum(e.c.amount).label("total")).group_by(e.c.account).subquery()
        rows: Sequence[Any] = self.conn.execute(
            select(a.c.code, a.c.kind, a.c.balance, func.coalesce(sums.c.total, 0).label("entries_sum")).outerjoin(
                sums, sums.c.account == a.c.code
            )
        ).all()
        mismatches, negative, total = [], [], 0
        for row in rows:
            entries_sum = int(row.entries_sum)
            if row.kind == "wallet":
                total += row.balance
                if row.balance != entries_sum:
                    mismatches.append(domain.AccountMismatch(row.code, row.balance, entries_sum))
                if row.balance < 0:
                    negative.append(row.code)
            else:
                total += entries_sum
        # A transfer is balanced when it has exactly its two entries: -amount out of
        # from_account and +amount into to_account.
        out_ok = and_(e.c.account == t.c.from_account, e.c.amount == -t.c.amount)
        in_ok = and_(e.c.account == t.c.to_account, e.c.amount == t.c.amount)
        good_entries = select(func.count()).where(e.c.transfer_id == t.c.id, or_(out_ok, in_ok)).scalar_subquery()
        all_entries = select(func.count()).where(e.c.transfer_id == t.c.id).scalar_subquery()
        unbalanced = [
            row.id
            for row in self.conn.execute(
                select(t.c.id).where(or_(good_entries != literal(2), all_entries != literal(2))).order_by(t.c.id)
            )
        ]
        transfers_checked = int(self.conn.execute(select(func.count()).select_from(t)).scalar_one())
        return domain.LedgerReport(
            lot_problems=LotRepository(self.conn).check(),
            accounts_checked=len(rows),
            transfers_checked=transfers_checked,
            total_balance=total,
            mismatches=mismatches,
            unbalanced_transfer_ids=unbalanced,
            negative_accounts=negative,
        )
