"""The Credits use cases. Each runs in one transaction; mutations run at most once per idempotency key."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Connection, Engine

from credits_svc import domain, lots
from credits_svc.lot_store import Liability, LotRepository
from credits_svc.models import audit_records
from credits_svc.repository import LedgerRepository
from credits_svc.sealing import check_ledger
from credits_svc.wallet import Wallet
from svckit.actors import Actor
from svckit.audit import AuditFilter, AuditLog, AuditRecord, is_audited
from svckit.clock import utc_now
from svckit.db import run_transaction
from svckit.errors import Aborted, FieldViolation, InvalidArgument
from svckit.idempotency import IdempotencyStore, IdempotentCall, Outcome
from svckit.pagination import clamp_page_size, take_page

R = TypeVar("R")
MAX_BREAKAGE_MONTHS = 120


def first_of_month(now: datetime, months: int) -> datetime:
    """Midnight UTC on the first day of the month `months - 1` months before now's (the current month counts)."""
    index = now.year * 12 + now.month - 1 - (months - 1)
    return now.replace(year=index // 12, month=index % 12 + 1, day=1, hour=0, minute=0, second=0, microsecond=0)


def new_transfer_id() -> str:
    return "tr_" + uuid.uuid4().hex


class CreditsService:
    def __init__(
        self,
        engine: Engine,
        idempotency: IdempotencyStore,
        *,
        clock: Callable[[], datetime] = utc_now,
        new_id: Callable[[], str] = new_transfer_id,
        audit: AuditLog | None = None,
    ) -> None:
        self.engine = engine
        self.idempotency = idempotency
        self.clock = clock
        self.new_id = new_id
        self.audit = audit or AuditLog(audit_records)

    # --- reads ------------------------------------------------------------------------

    def get_balance(self, actor: Actor, user_id: str) -> domain.Balance:
        domain.check_user_id(user_id)
        actor.require_access_to_user(user_id)
        now = self.clock()

        def read(conn: Connection) -> domain.Balance:
            stored, store = LedgerRepository(conn).balance(user_id), LotRepository(conn)
            spendable = stored.balance - store.expired_unswept(user_id, now)
            return replace(stored, balance=spendable, held=store.held(user_id))

        return run_transaction(self.engine, read, read_only=True, snapshot=True)

    def list_entries(self, actor: Actor, user_id: str, page_size: int, before_id: int | None) -> domain.EntriesPage:
        domain.check_user_id(user_id)
        actor.require_access_to_user(user_id)
        limit = clamp_page_size(page_size)
        # One extra row tells whether another page follows.
        page, last = take_page(self._read(lambda repo: repo.list_entries(user_id, before_id, limit + 1)), limit)
        return domain.EntriesPage(entries=page, next_before_id=last.id if last else None)

    def get_transfer(self, actor: Actor, *, transfer_id: str = "", reference: str = "") -> domain.Transfer:
        if bool(transfer_id) == bool(reference):
            raise InvalidArgument("give exactly one of transfer_id and reference")

        def read(conn: Connection) -> domain.Transfer | None:
            repo = LedgerRepository(conn)
            found = repo.get_transfer(transfer_id) if transfer_id else repo.find_transfer(reference)
            if found is None:
                return None
            moved = LotRepository(conn).movements(found.id)
            return replace(found, draws=tuple(domain.Draw(d.lot_id, -d.amount) for d in moved))

        found = run_transaction(self.engine, read, read_only=True)
        if found is None:
            raise domain.TransferNotFound(transfer_id or f"with reference {reference!r}")
        actor.require_access_to_user(found.user_id)
        return found

    def check_ledger(self, actor: Actor) -> domain.LedgerReport:
        actor.require_privileged("check the ledger")
        return check_ledger(self.engine)

    # --- admin reads ------------------------------------------------------------------

    def credit_totals(self, actor: Actor, since: datetime | None, until: datetime | None) -> domain.CreditTotals:
        actor.require_privileged("read credit totals")
        domain.check_time_range(since, until, required=True)
        assert since is not None  # checked
        assert until is not None
        # One snapshot: the rollup's rows and the transfers read live agree with each other.
        return run_transaction(
            self.engine,
            lambda conn: LedgerRepository(conn).credit_totals(since, until),
            read_only=True,
            snapshot=True,
        )

    def list_transfers(
        self,
        actor: Actor,
        where: domain.TransferFilter,
        page_size: int,
        before: tuple[datetime, str] | None,
    ) -> domain.TransfersPage:
        actor.require_privileged("list transfers")
        where.validate()
        limit = clamp_page_size(page_size)
        rows = self._read(lambda repo: repo.list_transfers(where, before, limit + 1))
        page, last = take_page(rows, limit)
        return domain.TransfersPage(page, (last.created_at, last.id) if last else None)

    def list_audit_records(
        self,
        actor: Actor,
        where: AuditFilter,
        page_size: int,
        before: tuple[datetime, str] | None,
    ) -> tuple[list[AuditRecord], tuple[datetime, str] | None]:
        """A page of audit records, newest first, and where the next page starts (None: no more)."""
        actor.require_privileged("list audit records")
        domain.check_time_range(where.since, where.until, required=False)
        limit = clamp_page_size(page_size)
        rows = run_transaction(
            self.engine, lambda conn: self.audit.list(conn, where, before=before, limit=limit + 1), read_only=True
        )
        page, last = take_page(rows, limit)
        return page, (last.created_at, last.id) if last else None

    def list_lots(self, actor: Actor, user_id: str) -> list[lots.Lot]:
        """The wallet's lots that still hold credits, in the order a spend consumes them."""
        domain.check_user_id(user_id)
        actor.require_access_to_user(user_id)
        now = self.clock()
        found = run_transaction(
            self.engine, lambda conn: LotRepository(conn).list_lots(user_id, with_empty=False), read_only=True
        )
        return sorted(found, key=lambda lot: (lot.is_expired(now), lots.consumption_key(lot)))

    def liability(self, actor: Actor, breakage_months: int) -> Liability:
        """Outstanding credits by category with their value, breakage per month, deferred revenue."""
        actor.require_privileged("read the credit liability")
        if not 0 <= breakage_months <= MAX_BREAKAGE_MONTHS:
            raise InvalidArgument.from_violations(
                [FieldViolation("breakage_months", f"must be between 0 and {MAX_BREAKAGE_MONTHS}; 0 means 12")]
            )
        since = first_of_month(self.clock(), breakage_months or 12)
        return run_transaction(
            self.engine, lambda conn: LotRepository(conn).liability(since), read_only=True, snapshot=True
        )

    # --- mutations --------------------------------------------------------------------

    def grant(
        self,
        actor: Actor,
        cmd: domain.GrantCredits,
        call: IdempotentCall,
        encode: Callable[[domain.TransferResult], bytes],
    ) -> Outcome:
        cmd.validate(self.clock())
        actor.require_privileged("grant credits")
        source = cmd.source
        assert source is not None  # validated

        def effect(conn: Connection) -> domain.TransferResult:
            result = self._wallet(conn, cmd.user_id, actor).grant(cmd)
            if is_audited(actor):
                self.audit.record(
                    conn,
                    actor=actor,
                    action="credits.grant",
                    target=f"user:{cmd.user_id}",
                    detail=f"granted {cmd.amount} credits ({source.value}), reference {cmd.reference!r}",
                )
            return result

        return self.idempotency.execute_once(self.engine, call, effect, encode)

    def spend(
        self,
        actor: Actor,
        cmd: domain.SpendCredits,
        call: IdempotentCall,
        encode: Callable[[domain.TransferResult], bytes],
    ) -> Outcome:
        cmd.validate()
        actor.require_access_to_user(cmd.user_id)

        def effect(conn: Connection) -> domain.TransferResult:
            wallet = self._wallet(conn, cmd.user_id, actor)
            transfer, draws = wallet.take(
                domain.TransferKind.SPEND, cmd.amount, domain.SystemAccount.SPEND, cmd.reference, cmd.description
            )
            return domain.TransferResult(replace(transfer, draws=tuple(draws)), wallet.balance)

        return self.idempotency.execute_once(self.engine, call, effect, encode)

    def reverse(
        self,
        actor: Actor,
        cmd: domain.ReverseTransfer,
        call: IdempotentCall,
        encode: Callable[[domain.ReversalResult], bytes],
    ) -> Outcome:
        cmd.validate()
        actor.require_privileged("reverse a transfer")

        def effect(conn: Connection) -> domain.ReversalResult:
            original = LedgerRepository(conn).get_transfer(cmd.transfer_id, lock=True)
            if original is None:
                raise domain.TransferNotFound(cmd.transfer_id)
            wallet = self._wallet(conn, original.user_id, actor)
            if original.wallet_is_debited_on_reversal:
                result = wallet.take_back_grant(original, cmd.amount, cmd.reference, cmd.reason, cmd.policy)
            else:
                plan = domain.plan_reversal(original, cmd.amount, None, cmd.policy)
                if not wallet.ledger.add_reversed(original.id, plan.amount):
                    raise Aborted("the transfer was reversed concurrently; retry")
                transfer = wallet.return_spend(
                    original, self._drawn_by(wallet, original), plan.amount, cmd.reference, cmd.reason
                )
                result = domain.ReversalResult(transfer, wallet.balance, 0, original.remaining - plan.amount)
            if is_audited(actor) and result.transfer is not None:
                self.audit.record(
                    conn,
                    actor=actor,
                    action="credits.reverse",
                    target=f"transfer:{original.id}",
                    detail=f"reversed {result.transfer.amount} credits"
                    + (f" (shortfall {result.shortfall})" if result.shortfall else "")
                    + f", reason {cmd.reason!r}",
                )
            return result

        return self.idempotency.execute_once(self.engine, call, effect, encode)

    @staticmethod
    def _drawn_by(wallet: Wallet, original: domain.Transfer) -> list[domain.Draw]:
        """The lots a spend (or a capture, through its hold) drew from, in drawing order."""
        if original.kind is domain.TransferKind.CAPTURE:
            hold = wallet.lots.hold_of_capture(original.id)
            drawn = [domain.Draw(d.lot_id, -d.amount) for d in wallet.lots.movements(hold.hold_transfer_id)]
            captured, _ = lots.split_capture(drawn, hold.captured)
            return captured
        return [domain.Draw(d.lot_id, -d.amount) for d in wallet.lots.movements(original.id)]

    def _wallet(self, conn: Connection, user_id: str, actor: Actor | str) -> Wallet:
        return Wallet(conn, user_id, self.clock(), self.new_id, str(actor))

    def _read(self, query: Callable[[LedgerRepository], R]) -> R:
        return run_transaction(self.engine, lambda conn: query(LedgerRepository(conn)), read_only=True)
