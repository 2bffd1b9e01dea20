"""The hourly totals rollup: counts each transfer once into `ledger_hourly_totals`, incrementally.

Transfers are taken in the order of their credit entry's id (`ledger_entries.id`,
from a sequence). The watermark row `ledger_rollup_state` says how far the rollup
got: it has counted exactly the transfers whose credit entry id is at most
`last_entry_id`. A step moves the watermark and adds the counts in ONE
transaction, so a transfer is counted once whatever fails or runs twice.

Replicas: a step claims the watermark row with `FOR UPDATE SKIP LOCKED`; while
one replica holds it, the others skip their turn (on SQLite, where writers are
serialised, the step's write transaction is exclusive anyway).

The one subtlety: entry ids are handed out when a transaction inserts, not when it
commits, so a step must never move the watermark past an id whose transaction is
still running. On PostgreSQL a step reads the sequence's last value before it
claims the watermark row, then waits for the transactions that began writing
before it (svckit.settle explains why that is enough; each writer inserts its
idempotency record and transfer before its entries, so it has its transaction id
before it takes an entry id). A writer that holds on longer than
SETTLE_WAIT_SECONDS makes the step give up its turn: totals stay exact, the live
tail just grows.

Readers (`LedgerRepository.credit_totals`) add the rows above the watermark
live, in the same snapshot as the rollup rows, so totals are exact at any time;
the rollup only keeps that live part small.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine

from credits_svc.repository import LedgerRepository, RollupWatermark, floor_hour
from svckit.clock import utc_now
from svckit.db import run_transaction
from svckit.settle import last_issued, wait_for_earlier_writers

log = logging.getLogger(__name__)

# Entry ids per step: two entries a transfer, so about half as many transfers.
STEP_ENTRY_IDS = 100_000
# How long a step waits for transactions in flight to end before giving up its turn.
SETTLE_WAIT_SECONDS = 5.0

ENTRY_SEQUENCE = "ledger_entries_id_seq"


@dataclass(frozen=True)
class RollupRun:
    transfers: int
    last_entry_id: int
    # True when another replica held the watermark, or transactions in flight did not end in time.
    skipped: bool


@dataclass(frozen=True)
class _Step:
    transfers: int
    last_entry_id: int
    skipped: bool = False
    caught_up: bool = False


def _step(conn: Connection, step_entry_ids: int, wait_seconds: float) -> _Step:
    """One bounded batch, in a READ COMMITTED transaction (each statement sees a new snapshot)."""
    repo = LedgerRepository(conn)
    postgres = conn.dialect.name == "postgresql"
    # PostgreSQL: read before the claim below (see the module's docstring). SQLite: this
    # write transaction excludes every other writer, so the highest id is settled.
    settled = last_issued(conn, ENTRY_SEQUENCE) if postgres else repo.last_entry_id()
    mark = repo.claim_rollup_watermark()
    if mark is None:
        return _Step(0, 0, skipped=True)
    if postgres and not wait_for_earlier_writers(conn, wait_seconds):
        log.warning("rollup: transactions in flight did not end in time; next turn")
        return _Step(0, mark.last_entry_id, skipped=True)
    upto = min(settled, mark.last_entry_id + step_entry_ids)
    if upto <= mark.last_entry_id:
        return _Step(0, mark.last_entry_id, caught_up=True)
    amounts: Counter[tuple[datetime, str, str]] = Counter()
    counts: Counter[tuple[datetime, str, str]] = Counter()
    net = 0
    rolled = repo.transfers_to_roll_up(mark.last_entry_id, upto)
    for transfer in rolled:
        key = (floor_hour(transfer.created_at), transfer.kind, transfer.source or "")
        amounts[key] += transfer.amount
        counts[key] += 1
        net += transfer.wallet_delta
    repo.add_hourly_totals(
        {"hour": hour, "kind": kind, "source": source, "amount": amount, "count": counts[hour, kind, source]}
        for (hour, kind, source), amount in sorted(amounts.items())
    )
    repo.advance_rollup(RollupWatermark(upto, mark.wallet_net + net), utc_now())
    return _Step(len(rolled), upto, caught_up=upto == settled)


def roll_up(
    engine: Engine, *, step_entry_ids: int = STEP_ENTRY_IDS, wait_seconds: float = SETTLE_WAIT_SECONDS
) -> RollupRun:
    """Count every settled transfer not counted yet, one bounded transaction per step."""
    transfers, last = 0, 0
    while True:
        step = run_transaction(engine, lambda conn: _step(conn, step_entry_ids, wait_seconds))
        transfers += step.transfers
        last = step.last_entry_id or last
        if step.skipped or step.caught_up:
            if transfers:
                log.info("rolled up ledger totals", extra={"transfers": transfers, "last_entry_id": last})
            return RollupRun(transfers=transfers, last_entry_id=last, skipped=step.skipped)
