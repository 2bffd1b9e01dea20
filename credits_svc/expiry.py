"""The expiry job: expired lots' remainders to the expiry account, holds past their timeout released.

Safe to run twice and on every replica at once. Each wallet is swept in a
transaction of its own that locks the wallet's row, then its lots, and moves
each expired remainder in the same transaction that sets it to zero, with the
reference `expiry:<lot id>:<its expired total>` (unique): a second run, concurrent or later, finds
nothing left to move. A hold is released under its own row lock, only while it
is still open.

A spend, a hold or a reversal sweeps its own wallet first too, so an expired lot
is never spent even when the job is late; the job makes sure expired credits
leave wallets nobody touches.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine

from credits_svc.hold_service import EXPIRY_ACTOR, HoldService
from credits_svc.lot_store import LotRepository
from credits_svc.wallet import Wallet
from svckit.clock import utc_now
from svckit.db import run_transaction

log = logging.getLogger(__name__)

# Wallets (and holds) read per batch.
BATCH = 500


@dataclass(frozen=True)
class ExpiryRun:
    lots_expired: int
    credits_expired: int
    holds_released: int


def run_expiry(
    engine: Engine,
    holds: HoldService,
    new_transfer_id: Callable[[], str],
    *,
    clock: Callable[[], datetime] = utc_now,
    batch: int = BATCH,
) -> ExpiryRun:
    """Expire every lot past its expiry and release every hold past its timeout, as of now."""
    now = clock()
    lots_expired = credits_expired = holds_released = 0
    seen: set[str] = set()
    while True:
        users = run_transaction(
            engine, lambda conn: LotRepository(conn).users_with_expired_lots(now, batch), read_only=True
        )
        # A wallet another replica is sweeping may still show up; each is tried once per run.
        fresh = [user for user in users if user not in seen]
        if not fresh:
            break
        for user_id in fresh:
            seen.add(user_id)

            def sweep(conn: Connection, user_id: str = user_id) -> tuple[int, int]:
                swept = Wallet(conn, user_id, now, new_transfer_id, EXPIRY_ACTOR).sweep_expired()
                return len(swept), sum(t.amount for t in swept)

            count, amount = run_transaction(engine, sweep)
            lots_expired += count
            credits_expired += amount
    tried: set[str] = set()
    while True:
        due = run_transaction(engine, lambda conn: LotRepository(conn).due_holds(now, batch), read_only=True)
        fresh = [hold_id for hold_id in due if hold_id not in tried]
        if not fresh:
            break
        for hold_id in fresh:
            tried.add(hold_id)
            holds_released += holds.release_expired(hold_id)
    if lots_expired or holds_released:
        log.info(
            "expired credits and released holds",
            extra={"lots": lots_expired, "credits": credits_expired, "holds": holds_released},
        )
    return ExpiryRun(lots_expired, credits_expired, holds_released)
