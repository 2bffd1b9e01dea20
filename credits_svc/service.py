"""The Credits use cases. Each runs in one transaction; mutations run at most once per idempotency key."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Connection, Engine

from credits_svc import domain
from credits_svc.models import audit_records
from credits_svc.repository import LedgerRepository
from credits_svc.sealing import check_ledger
from svckit.actors import Actor
from svckit.audit import AuditFilter, AuditLog, AuditRecord, is_audited
from svckit.clock import utc_now
from svckit.db import run_transaction
from svckit.errors import Aborted, InvalidArgument
from svckit.idempotency import IdempotencyStore, IdempotentCall, Outcome
from svckit.pagination import clamp_page_size, take_page

R = TypeVar("R")


def new_transfer_id() -> str:
    return "tr_" + uuid.uuid4().hex


def _record(repo: LedgerRepository, transfer: domain.Transfer, balance: int) -> domain.TransferResult:
    """Write the transfer and its entries; a reference already used aborts the whole transaction."""
    if not repo.add_transfer(transfer, balance):
        raise domain.DuplicateReference(transfer.reference)
    return domain.TransferResult(transfer, balance)


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
        return self._read(lambda repo: repo.balance(user_id))

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
        if transfer_id:
            found = self._read(lambda repo: repo.get_transfer(transfer_id))
        else:
            found = self._read(lambda repo: repo.find_transfer(reference))
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

    # --- mutations --------------------------------------------------------------------

    def grant(
        self,
        actor: Actor,
        cmd: domain.GrantCredits,
        call: IdempotentCall,
        encode: Callable[[domain.TransferResult], bytes],
    ) -> Outcome:
        cmd.validate()
        actor.require_privileged("grant credits")
        source = cmd.source
        assert source is not None  # validated

        def effect(conn: Connection) -> domain.TransferResult:
            repo, now = LedgerRepository(conn), self.clock()
            balance = repo.credit_wallet(cmd.user_id, cmd.amount, now)
            transfer = domain.Transfer(
                id=self.new_id(),
                kind=domain.TransferKind.GRANT,
                amount=cmd.amount,
                user_id=cmd.user_id,
                from_account=domain.GRANT_ACCOUNTS[source],
                to_account=domain.wallet_account(cmd.user_id),
                source=source,
                reference=cmd.reference,
                description=cmd.description,
                actor=str(actor),
                created_at=now,
            )
            result = _record(repo, transfer, balance)
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
            repo, now = LedgerRepository(conn), self.clock()
            balance = repo.debit_wallet(cmd.user_id, cmd.amount, now)
            if balance is None:
                raise domain.InsufficientCredits(cmd.user_id, cmd.amount)
            transfer = domain.Transfer(
                id=self.new_id(),
                kind=domain.TransferKind.SPEND,
                amount=cmd.amount,
                user_id=cmd.user_id,
                from_account=domain.wallet_account(cmd.user_id),
                to_account=domain.SystemAccount.SPEND,
                reference=cmd.reference,
                description=cmd.description,
                actor=str(actor),
                created_at=now,
            )
            return _record(repo, transfer, balance)

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
            repo, now = LedgerRepository(conn), self.clock()
            original = repo.get_transfer(cmd.transfer_id, lock=True)
            if original is None:
                raise domain.TransferNotFound(cmd.transfer_id)
            takes_from_wallet = original.wallet_is_debited_on_reversal
            wallet_balance = repo.lock_wallet_balance(original.user_id) if takes_from_wallet else None
            plan = domain.plan_reversal(original, cmd.amount, wallet_balance, cmd.policy)
            if plan.amount == 0:
                return domain.ReversalResult(None, wallet_balance or 0, plan.shortfall, original.remaining)
            if not repo.add_reversed(original.id, plan.amount):
                raise Aborted("the transfer was reversed concurrently; retry")
            if takes_from_wallet:
                balance = repo.debit_wallet(original.user_id, plan.amount, now)
                if balance is None:
                    raise domain.InsufficientCredits(original.user_id, plan.amount)
            else:
                balance = repo.credit_wallet(original.user_id, plan.amount, now)
            transfer = domain.Transfer(
                id=self.new_id(),
                kind=domain.TransferKind.REVERSAL,
                amount=plan.amount,
                user_id=original.user_id,
                from_account=original.to_account,
                to_account=original.from_account,
                source=original.source,
                reference=cmd.reference,
                description=cmd.reason,
                reverses_transfer_id=original.id,
                actor=str(actor),
                created_at=now,
            )
            _record(repo, transfer, balance)
            if is_audited(actor):
                self.audit.record(
                    conn,
                    actor=actor,
                    action="credits.reverse",
                    target=f"transfer:{original.id}",
                    detail=f"reversed {plan.amount} credits"
                    + (f" (shortfall {plan.shortfall})" if plan.shortfall else "")
                    + f", reason {cmd.reason!r}",
                )
            return domain.ReversalResult(transfer, balance, plan.shortfall, original.remaining - plan.amount)

        return self.idempotency.execute_once(self.engine, call, effect, encode)

    def _read(self, query: Callable[[LedgerRepository], R]) -> R:
        return run_transaction(self.engine, lambda conn: query(LedgerRepository(conn)), read_only=True)
