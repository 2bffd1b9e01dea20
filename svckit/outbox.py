"""The transactional outbox: effects on other services, recorded with the change that causes them.

A use case that must make another service act (Payments asking Credits to grant)
writes an outbox message in the same transaction as its own change. The relay,
a background task of the service, sends each message until the receiver
confirms, with the message's key as the receiver's idempotency key, so:

- a crash before the commit loses both the change and the message;
- a crash after the commit leaves the message for the relay, on this or any
  replica, after restart;
- a crash after the receiver acted but before the message was marked sent
  makes the relay send it again, and the receiver replays its stored answer.

Messages of one aggregate (one payment) are sent in the order they were written:
a message waits while an older one of its aggregate is still pending. Failures
are retried with exponential backoff; a failure the receiver calls permanent
parks the message as `dead` for an operator. Claims are leases, not open
transactions, so no database transaction stays open during a remote call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import aliased

from svckit.db import UtcDateTime, dialect_insert_for, run_transaction

log = logging.getLogger(__name__)

PENDING = "pending"
SENT = "sent"
DEAD = "dead"

BigId = BigInteger().with_variant(Integer(), "sqlite")


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox_messages",
        metadata,
        Column("id", BigId, primary_key=True, autoincrement=True),
        # The receiver's idempotency key: one message per fact.
        Column("key", String(255), nullable=False, unique=True),
        Column("kind", String(64), nullable=False),
        # Messages of one aggregate are sent in order.
        Column("aggregate", String(128), nullable=False),
        Column("payload", Text, nullable=False),
        Column("state", String(16), nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("next_attempt_at", UtcDateTime(), nullable=False),
        Column("lease_until", UtcDateTime(), nullable=True),
        Column("last_error", String(1000), nullable=True),
        Column("created_at", UtcDateTime(), nullable=False),
        Column("sent_at", UtcDateTime(), nullable=True),
        Index("ix_outbox_messages_state_next_attempt_at", "state", "next_attempt_at"),
        Index("ix_outbox_messages_aggregate_id", "aggregate", "id"),
    )


@dataclass(frozen=True)
class Message:
    id: int
    key: str
    kind: str
    aggregate: str
    payload: dict[str, Any]
    attempts: int


class PermanentFailure(Exception):
    """The receiver refused the message for good; retrying cannot help."""


# What a handler returns: None, or work to do in the transaction that marks the message sent.
AfterSent = Callable[[Connection], None] | None
Handler = Callable[[Message], Awaitable[AfterSent]]


class Outbox:
    def __init__(self, table: Table) -> None:
        self.table = table
        t = table
        self._enqueue = {
            dialect: dialect_insert_for(dialect, t).on_conflict_do_nothing(index_elements=["key"]).returning(t.c.id)
            for dialect in ("postgresql", "sqlite")
        }
        older = aliased(t)
        self._due = (
            select(t)
            .where(
                t.c.state == PENDING,
                t.c.next_attempt_at <= bindparam("now"),
                or_(t.c.lease_until.is_(None), t.c.lease_until < bindparam("now")),
                ~exists().where(
                    and_(older.c.aggregate == t.c.aggregate, older.c.state == PENDING, older.c.id < t.c.id)
                ),
            )
            .order_by(t.c.id)
            .limit(bindparam("batch"))
        )
        self._lease = (
            update(t).where(t.c.id.in_(bindparam("messages", expanding=True))).values(lease_until=bindparam("until"))
        )
        self._sent = (
            update(t)
            .where(t.c.id == bindparam("message"))
            .values(state=SENT, sent_at=bindparam("at"), lease_until=None, last_error=None)
        )
        self._all_sent = (
            update(t)
            .where(t.c.id.in_(bindparam("messages", expanding=True)))
            .values(state=SENT, sent_at=bindparam("at"), lease_until=None, last_error=None)
        )
        self._failed = (
            update(t)
            .where(t.c.id == bindparam("message"))
            .values(
                state=bindparam("next_state"),
                attempts=t.c.attempts + 1,
                next_attempt_at=bindparam("retry_at"),
                lease_until=None,
                last_error=bindparam("error"),
            )
        )

    def enqueue(self, conn: Connection, *, kind: str, key: str, aggregate: str, payload: Mapping[str, Any]) -> bool:
        """Record a message in the caller's transaction; False if one with this key exists."""
        now = datetime.now(UTC)
        inserted = conn.execute(
            self._enqueue[conn.dialect.name],
            {
                "key": key,
                "kind": kind,
                "aggregate": aggregate,
                "payload": json.dumps(payload, sort_keys=True),
                "state": PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            },
        ).first()
        return inserted is not None

    def claim(self, engine: Engine, *, batch: int, lease: timedelta) -> list[Message]:
        """Lease the messages due now (oldest first, one per aggregate at a time)."""

        def work(conn: Connection) -> list[Message]:
            now = datetime.now(UTC)
            stmt = self._due
            if conn.dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True, of=self.table)
            # The query returns only the oldest pending message of each aggregate.
            rows = conn.execute(stmt, {"now": now, "batch": batch}).all()
            if rows:
                conn.execute(self._lease, {"messages": [row.id for row in rows], "until": now + lease})
            return [
                Message(row.id, row.key, row.kind, row.aggregate, json.loads(row.payload), row.attempts) for row in rows
            ]

        return run_transaction(engine, work)

    def mark_sent(self, engine: Engine, message: Message, after: AfterSent) -> None:
        def work(conn: Connection) -> None:
            conn.execute(self._sent, {"message": message.id, "at": datetime.now(UTC)})
            if after is not None:
                after(conn)

        run_transaction(engine, work)

    def mark_all_sent(self, engine: Engine, sent: Sequence[tuple[Message, AfterSent]]) -> None:
        """`mark_sent` for several messages in one transaction: all of them are marked, or none.

        Each message's `after` runs in that transaction, in the order given.
        """

        def work(conn: Connection) -> None:
            conn.execute(self._all_sent, {"messages": [message.id for message, _ in sent], "at": datetime.now(UTC)})
            for _, after in sent:
                if after is not None:
                    after(conn)

        run_transaction(engine, work)

    def mark_failed(self, engine: Engine, message: Message, error: str, retry_in: timedelta | None) -> None:
        """Retry after `retry_in`; None parks the message as dead."""
        now = datetime.now(UTC)
        params = {
            "message": message.id,
            "next_state": PENDING if retry_in is not None else DEAD,
            "retry_at": now + (retry_in or timedelta(0)),
            "error": error[:1000],
        }
        run_transaction(engine, lambda conn: conn.execute(self._failed, params))

    def count(self, engine: Engine, state: str) -> int:
        t = self.table
        query = select(func.count()).select_from(t).where(t.c.state == state)
        return int(run_transaction(engine, lambda conn: conn.execute(query).scalar_one(), read_only=True))


@dataclass(frozen=True)
class RelaySettings:
    poll_seconds: float = 1.0
    batch: int = 50
    lease: timedelta = timedelta(seconds=60)
    first_retry: timedelta = timedelta(milliseconds=500)
    max_retry: timedelta = timedelta(minutes=5)


class OutboxRelay:
    """Sends due outbox messages through their kind's handler until each is confirmed."""

    def __init__(
        self,
        engine: Engine,
        outbox: Outbox,
        handlers: Mapping[str, Handler],
        settings: RelaySettings | None = None,
    ) -> None:
        self.engine = engine
        self.outbox = outbox
        self.handlers = dict(handlers)
        self.settings = settings or RelaySettings()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        """Ask the relay to look now (callable from any thread, e.g. after a commit that enqueued)."""
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        while True:
            try:
                sent = await self.run_once()
            except Exception:
                # The database is unreachable, say: nothing was marked, leases expire, and
                # every message is sent again later. Keep going.
                log.exception("outbox relay round failed")
                sent = 0
            if sent:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.poll_seconds)

    async def run_once(self) -> int:
        """Send what is due now; how many messages were handled (sent or failed).

        The messages the receiver confirmed are marked sent together, in one
        transaction once the round's sends are over (one commit per round, not
        per message). Until then they are leased, so no other round sends them.
        """
        messages = await asyncio.to_thread(
            self.outbox.claim, self.engine, batch=self.settings.batch, lease=self.settings.lease
        )
        results = await asyncio.gather(*(self._send(message) for message in messages), return_exceptions=True)
        sent = [
            (message, result[1])
            for message, result in zip(messages, results, strict=True)
            if not isinstance(result, BaseException) and result[0]
        ]
        if sent:
            await asyncio.to_thread(self._mark_sent, sent)
        for result in results:
            if isinstance(result, BaseException):
                raise result  # marking a failure failed (the database, say): this round failed
        return len(messages)

    def _mark_sent(self, sent: list[tuple[Message, AfterSent]]) -> None:
        try:
            self.outbox.mark_all_sent(self.engine, sent)
            return
        except Exception:
            if len(sent) == 1:
                # The receiver has acted; once the lease ends the message is sent again and the
                # receiver replays its answer under the same idempotency key.
                log.exception("could not mark outbox message %s sent; it will be sent again", sent[0][0].key)
                return
            log.warning("could not mark %d outbox messages sent together; marking each alone", len(sent), exc_info=True)
        # One message's `after` failing must not leave the others to be sent again: each on its own.
        for message, after in sent:
            try:
                self.outbox.mark_sent(self.engine, message, after)
            except Exception:
                log.exception("could not mark outbox message %s sent; it will be sent again", message.key)

    async def _send(self, message: Message) -> tuple[bool, AfterSent]:
        """Send one message: (True, its `after`) once the receiver confirmed it; (False, None) if marked failed."""
        handler = self.handlers.get(message.kind)
        if handler is None:
            await asyncio.to_thread(
                self.outbox.mark_failed, self.engine, message, f"no handler for {message.kind}", None
            )
            return False, None
        try:
            after = await handler(message)
        except PermanentFailure as error:
            log.error("outbox message %s refused for good: %s", message.key, error)
            await asyncio.to_thread(self.outbox.mark_failed, self.engine, message, str(error), None)
            return False, None
        except Exception as error:
            # Any other failure is retried with backoff; the message stays pending, nothing is lost.
            delay = min(self.settings.first_retry * 2**message.attempts, self.settings.max_retry)
            log.warning(
                "outbox message %s failed (attempt %d), retrying in %s",
                message.key,
                message.attempts + 1,
                delay,
                exc_info=True,
            )
            await asyncio.to_thread(self.outbox.mark_failed, self.engine, message, repr(error), delay)
            return False, None
        return True, after
