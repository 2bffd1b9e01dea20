"""The hold use cases: Hold, Capture, Release, and the release of holds past their timeout.

Each runs in one transaction, mutations at most once per idempotency key. The hold's
row is locked before the wallet (credits_svc.lot_store's locking order), so a
capture and a release of the same hold, or the expiry job, settle it exactly once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine

from credits_svc import domain, lots
from credits_svc.lot_store import LotRepository
from credits_svc.wallet import Wallet
from svckit.actors import Actor
from svckit.clock import utc_now
from svckit.db import run_transaction
from svckit.errors import Violations
from svckit.idempotency import IdempotencyStore, IdempotentCall, Outcome

# Who the expiry job acts as in the transfers it writes.
EXPIRY_ACTOR = "service:credits-expiry"


def new_hold_id() -> str:
    return "hl_" + uuid.uuid4().hex


@dataclass(frozen=True)
class HoldResult:
    hold: lots.Hold
    draws: list[domain.Draw]
    # The wallet's spendable balance and what its open holds reserve, right after.
    balance: int
    held: int


class HoldService:
    def __init__(
        self,
        engine: Engine,
        idempotency: IdempotencyStore,
        new_transfer_id: Callable[[], str],
        *,
        clock: Callable[[], datetime] = utc_now,
        new_id: Callable[[], str] = new_hold_id,
    ) -> None:
        self.engine = engine
        self.idempotency = idempotency
        self.new_transfer_id = new_transfer_id
        self.clock = clock
        self.new_id = new_id

    def place(
        self, actor: Actor, cmd: lots.PlaceHold, call: IdempotentCall, encode: Callable[[HoldResult], bytes]
    ) -> Outcome:
        cmd.validate()
        actor.require_access_to_user(cmd.user_id)

        def effect(conn: Connection) -> HoldResult:
            wallet = Wallet(conn, cmd.user_id, self.clock(), self.new_transfer_id, str(actor))
            hold = wallet.place_hold(self.new_id(), cmd)
            return self._result(wallet, hold)

        return self.idempotency.execute_once(self.engine, call, effect, encode)

    def capture(
        self, actor: Actor, cmd: lots.CaptureHold, call: IdempotentCall, encode: Callable[[HoldResult], bytes]
    ) -> Outcome:
        cmd.validate()

        def effect(conn: Connection) -> HoldResult:
            now = self.clock()
            hold = self._locked(conn, actor, cmd.hold_id)
            hold.require_open()
            if hold.expires_at <= now:
                raise lots.HoldSettled(hold.id, lots.HoldStatus.EXPIRED)
            captured = hold.amount if cmd.amount is None else cmd.amount
            if captured > hold.amount:
                raise lots.CaptureExceedsHold(captured, hold.amount)
            wallet = Wallet(conn, hold.user_id, now, self.new_transfer_id, str(actor))
            return self._result(wallet, wallet.settle_hold(hold, captured, lots.HoldStatus.CAPTURED))

        return self.idempotency.execute_once(self.engine, call, effect, encode)

    def release(
        self, actor: Actor, hold_id: str, call: IdempotentCall, encode: Callable[[HoldResult], bytes]
    ) -> Outcome:
        _check_hold_id(hold_id)

        def effect(conn: Connection) -> HoldResult:
            now = self.clock()
            hold = self._locked(conn, actor, hold_id)
            hold.require_open()
            status = lots.HoldStatus.EXPIRED if hold.expires_at <= now else lots.HoldStatus.RELEASED
            wallet = Wallet(conn, hold.user_id, now, self.new_transfer_id, str(actor))
            return self._result(wallet, wallet.settle_hold(hold, 0, status))

        return self.idempotency.execute_once(self.engine, call, effect, encode)

    def get(self, actor: Actor, hold_id: str) -> tuple[lots.Hold, list[domain.Draw]]:
        _check_hold_id(hold_id)

        def read(conn: Connection) -> tuple[lots.Hold, list[domain.Draw]]:
            store = LotRepository(conn)
            hold = store.get_hold(hold_id)
            if hold is None:
                raise lots.HoldNotFound(hold_id)
            actor.require_access_to_user(hold.user_id)
            return hold, _draws(store, hold)

        return run_transaction(self.engine, read, read_only=True)

    def release_expired(self, hold_id: str) -> bool:
        """Release one hold past its timeout (the expiry job); False when it was settled meanwhile."""

        def effect(conn: Connection) -> bool:
            now = self.clock()
            hold = LotRepository(conn).get_hold(hold_id, lock=True)
            if hold is None or hold.status is not lots.HoldStatus.OPEN or hold.expires_at > now:
                return False
            wallet = Wallet(conn, hold.user_id, now, self.new_transfer_id, EXPIRY_ACTOR)
            wallet.settle_hold(hold, 0, lots.HoldStatus.EXPIRED)
            return True

        return run_transaction(self.engine, effect)

    def _locked(self, conn: Connection, actor: Actor, hold_id: str) -> lots.Hold:
        hold = LotRepository(conn).get_hold(hold_id, lock=True)
        if hold is None:
            raise lots.HoldNotFound(hold_id)
        actor.require_access_to_user(hold.user_id)
        return hold

    @staticmethod
    def _result(wallet: Wallet, hold: lots.Hold) -> HoldResult:
        return HoldResult(
            hold=hold,
            draws=_draws(wallet.lots, hold),
            balance=wallet.balance,
            held=wallet.lots.held(wallet.user_id),
        )


def _draws(store: LotRepository, hold: lots.Hold) -> list[domain.Draw]:
    """The lots the hold reserved credits from, in drawing order."""
    return [domain.Draw(d.lot_id, -d.amount) for d in store.movements(hold.hold_transfer_id)]


def _check_hold_id(hold_id: str) -> None:
    v = Violations()
    lots.check_hold_id(v, hold_id)
    v.raise_if_any()
