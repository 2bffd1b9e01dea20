"""Settling a sequence: the highest id below which no transaction can still commit a row.

Jobs that process rows incrementally in the order of an id from a sequence (the
hourly rollup, the sealers of the hash chains) keep a watermark: every row with an
id at most the watermark is done. They must never move it past an id whose
transaction is still running: that row would commit later, below the watermark,
and never be processed.

Ids are handed out when a transaction inserts, not when it commits. So, on
PostgreSQL, a job reads the sequence's last value L first (`last_issued`), then
claims its watermark row, which gives its transaction an id X, and waits until
every transaction with an id below X has ended as a new snapshot sees it
(`wait_for_earlier_writers`; not pg_xact_status: a transaction is marked committed
a moment before snapshots see it). An id at most L was handed out before L was
read, to a transaction that already had its transaction id (writers make sure of
that: they write a row before they take an id from the sequence), so that id is
below X: once the wait is over, every id at most L is settled, committed and
visible to the statements that follow, or never to be. The sequence must hand out
ids one at a time (CACHE 1, the default).

On SQLite writers are serialised: a job's write transaction excludes every other
writer, so the highest id committed is settled and no wait is needed.
"""

from __future__ import annotations

import time

from sqlalchemy import Connection, text

_LAST_ISSUED = text(
    "SELECT last_value FROM pg_sequences WHERE schemaname = current_schema() AND sequencename = :sequence"
)
_MY_XID = text("SELECT CAST(pg_current_xact_id() AS text)")
# Every transaction id below :xid has ended, as this statement's snapshot sees it.
_ALL_ENDED_BEFORE = text(
    "SELECT pg_snapshot_xmax(s) >= CAST(:xid AS xid8)"
    " AND NOT EXISTS (SELECT 1 FROM pg_snapshot_xip(s) AS running(xid) WHERE running.xid < CAST(:xid AS xid8))"
    " FROM pg_current_snapshot() AS s"
)
# Assigns this transaction its id now, if it has none yet (see `take_transaction_id`).
_TAKE_XID = text("SELECT pg_current_xact_id()")


def last_issued(conn: Connection, sequence: str) -> int:
    """PostgreSQL: the last id the sequence handed out (0 for none). Read it BEFORE claiming the watermark."""
    return int(conn.execute(_LAST_ISSUED, {"sequence": sequence}).scalar() or 0)


def wait_for_earlier_writers(conn: Connection, wait_seconds: float) -> bool:
    """Wait until every transaction that began writing before this one has ended; False if it took too long.

    Call it once this transaction holds its watermark row (which gave it its transaction id).
    """
    mine = conn.execute(_MY_XID).scalar_one()
    deadline = time.monotonic() + wait_seconds
    while not conn.execute(_ALL_ENDED_BEFORE, {"xid": mine}).scalar_one():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def take_transaction_id(conn: Connection) -> None:
    """PostgreSQL: give the writer's transaction its id before it takes one from a settled sequence.

    A writer whose first write draws the id (a column defaulting to nextval) would
    take the id a moment before its transaction id; a job reading the sequence in
    between would not wait for it. Writers that wrote a row before need not call this.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(_TAKE_XID)
