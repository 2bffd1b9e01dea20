"""The idempotency-key contract, implemented once for every service.

A mutating call carries `idempotency-key` metadata. Its record lives in the
service's own database and is written in the same transaction as the call's
effect, so the effect and the record commit or vanish together:

- a new key is claimed by inserting its record; a concurrent duplicate's insert
  waits on that row until the first transaction ends, then finds the stored
  response, so at most one of them applies the effect;
- a replay (same caller, key, method and request bytes) returns the stored
  response bytes;
- the same key with another request is refused: INVALID_ARGUMENT,
  reason IDEMPOTENCY_KEY_REUSED, and nothing is written;
- a key whose record is still in flight (a two-step call that reaches an
  external system between two transactions) answers ABORTED,
  reason IDEMPOTENCY_KEY_IN_FLIGHT: retry with the same key.

A call that fails writes nothing, its key included: a retry runs it afresh.
Records are kept for `retention` (at least 24 h) and then purged.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    select,
    update,
)

from svckit.db import UtcDateTime, dialect_insert_for, run_transaction
from svckit.errors import Aborted, InvalidArgument, Reason

R = TypeVar("R")

KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")
IN_FLIGHT = "in_flight"
COMPLETED = "completed"


def idempotency_table(metadata: MetaData) -> Table:
    """The idempotency record table, added to a service's metadata."""
    return Table(
        "idempotency_records",
        metadata,
        Column("caller", String(64), primary_key=True),
        Column("key", String(255), primary_key=True),
        Column("method", String(128), nullable=False),
        Column("fingerprint", String(64), nullable=False),
        Column("state", String(16), nullable=False),
        Column("response", LargeBinary, nullable=True),
        Column("created_at", UtcDateTime(), nullable=False),
        Column("completed_at", UtcDateTime(), nullable=True),
        Index("ix_idempotency_records_created_at", "created_at"),
    )


@dataclass(frozen=True)
class IdempotentCall:
    """One mutating call under an idempotency key."""

    caller: str
    key: str
    method: str
    fingerprint: str

    @classmethod
    def for_request(cls, caller: str, key: str | None, method: str, request: bytes) -> IdempotentCall:
        if not key:
            raise InvalidArgument(
                f"{method} requires the idempotency-key metadata",
                reason=Reason.IDEMPOTENCY_KEY_REQUIRED,
            )
        if not KEY_PATTERN.match(key):
            raise InvalidArgument(
                "idempotency-key must be 1 to 255 printable ASCII characters without spaces",
                reason=Reason.IDEMPOTENCY_KEY_REQUIRED,
            )
        digest = hashlib.sha256(method.encode() + b"\0" + request).hexdigest()
        return cls(caller=caller, key=key, method=method, fingerprint=digest)


@dataclass(frozen=True)
class Outcome:
    """A call's response bytes, and whether they were replayed from an earlier call."""

    response: bytes
    replayed: bool


class IdempotencyStore:
    def __init__(self, table: Table) -> None:
        self.table = table
        t = table
        self._find = select(t.c.method, t.c.fingerprint, t.c.state, t.c.response, t.c.created_at).where(
            t.c.caller == bindparam("by"), t.c.key == bindparam("idem_key")
        )
        self._take_over = (
            update(t)
            .where(
                t.c.caller == bindparam("by"),
                t.c.key == bindparam("idem_key"),
                t.c.state == IN_FLIGHT,
                t.c.created_at == bindparam("seen"),
            )
            .values(created_at=bindparam("at"))
        )
        self._complete = (
            update(t)
            .where(t.c.caller == bindparam("by"), t.c.key == bindparam("idem_key"))
            .values(state=COMPLETED, response=bindparam("body"), completed_at=bindparam("at"))
        )
        # The claim is an INSERT ... ON CONFLICT DO NOTHING, whose form depends on the dialect.
        self._claims = {
            dialect: dialect_insert_for(dialect, t)
            .on_conflict_do_nothing(index_elements=["caller", "key"])
            .returning(t.c.key)
            for dialect in ("postgresql", "sqlite")
        }

    def claim(self, conn: Connection, call: IdempotentCall, *, stale_after: timedelta | None = None) -> bytes | None:
        """Claim the key in this transaction; or return the response stored for it.

        With `stale_after`, a record left in flight for longer (its holder died
        between its two steps) is taken over: the caller now holds the key.
        """
        claimed = conn.execute(
            self._claims[conn.dialect.name],
            {
                "caller": call.caller,
                "key": call.key,
                "method": call.method,
                "fingerprint": call.fingerprint,
                "state": IN_FLIGHT,
                "created_at": datetime.now(UTC),
            },
        ).first()
        if claimed is not None:
            return None
        row = conn.execute(self._find, {"by": call.caller, "idem_key": call.key}).first()
        if row is None:
            # The record was purged between our insert and our read; the caller retries.
            raise Aborted("idempotency record changed concurrently; retry", reason=Reason.IDEMPOTENCY_KEY_IN_FLIGHT)
        if row.method != call.method or row.fingerprint != call.fingerprint:
            raise InvalidArgument(
                "this idempotency-key was already used with a different request",
                reason=Reason.IDEMPOTENCY_KEY_REUSED,
                metadata={"method": row.method},
            )
        if row.state != COMPLETED and stale_after is not None:
            now = datetime.now(UTC)
            if row.created_at < now - stale_after:
                params = {"by": call.caller, "idem_key": call.key, "seen": row.created_at, "at": now}
                if conn.execute(self._take_over, params).rowcount == 1:
                    return None
        if row.state != COMPLETED or row.response is None:
            raise Aborted(
                "a request with this idempotency-key is still in flight; retry with the same key",
                reason=Reason.IDEMPOTENCY_KEY_IN_FLIGHT,
            )
        return bytes(row.response)

    def complete(self, conn: Connection, call: IdempotentCall, response: bytes) -> None:
        params = {"by": call.caller, "idem_key": call.key, "body": response, "at": datetime.now(UTC)}
        conn.execute(self._complete, params)

    def execute_once(
        self,
        engine: Engine,
        call: IdempotentCall,
        effect: Callable[[Connection], R],
        encode: Callable[[R], bytes],
    ) -> Outcome:
        """Apply `effect` at most once for `call`, storing its encoded response with it."""

        def work(conn: Connection) -> Outcome:
            stored = self.claim(conn, call)
            if stored is not None:
                return Outcome(stored, replayed=True)
            response = encode(effect(conn))
            self.complete(conn, call, response)
            return Outcome(response, replayed=False)

        return run_transaction(engine, work)

    # --- calls that reach an external system (Stripe) between two transactions ---------

    def around_external_call(
        self,
        engine: Engine,
        call: IdempotentCall,
        *,
        stale_after: timedelta,
        external: Callable[[], R],
        record: Callable[[Connection, R], bytes],
    ) -> Outcome:
        """A call that must not hold a transaction open while it reaches an external system.

        Step one claims the key in a transaction of its own (a key left in flight
        longer than `stale_after` by a holder that died is taken over); then
        `external` runs, with an idempotency key of its own derived from this
        one; step two records its result and the response (`record`) in one
        transaction. If `external` fails, the key is released so that a retry
        runs afresh. A completed key replays its stored response.
        """

        def claim(conn: Connection) -> bytes | None:
            return self.claim(conn, call, stale_after=stale_after)

        stored = run_transaction(engine, claim)
        if stored is not None:
            return Outcome(stored, replayed=True)
        try:
            result = external()
        except BaseException:
            self._release(engine, call)
            raise

        def finish(conn: Connection) -> Outcome:
            response = record(conn, result)
            self.complete(conn, call, response)
            return Outcome(response, replayed=False)

        return run_transaction(engine, finish)

    def _release(self, engine: Engine, call: IdempotentCall) -> None:
        t = self.table

        def work(conn: Connection) -> None:
            conn.execute(delete(t).where(t.c.caller == call.caller, t.c.key == call.key, t.c.state == IN_FLIGHT))

        run_transaction(engine, work)

    def purge(self, engine: Engine, retention: timedelta) -> int:
        """Delete records older than `retention`; returns how many went."""
        cutoff = datetime.now(UTC) - retention
        t = self.table

        def work(conn: Connection) -> int:
            return conn.execute(delete(t).where(t.c.created_at < cutoff)).rowcount

        return run_transaction(engine, work)
