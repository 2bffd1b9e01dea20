"""The inbox: every Stripe event a service received, with what became of it.

An admin may re-drive an event that was rejected or ignored (a plan price not
yet synced, a payment not yet known): the service applies the stored payload
again under the admin's idempotency key, and the event's row is rewritten with
the new outcome and its re-drive count (`Inbox.write(..., redrive=True)`).

Recorded in the same transaction as the event's effect, keyed by the event id,
so the log of webhook events is exactly the log of what was applied: what each
event did (processed), or why it did nothing (ignored, rejected), with the
payload as Stripe sent it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
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
    or_,
    select,
    update,
)

from svckit.actors import Actor
from svckit.db import UtcDateTime, dialect_insert_for, run_transaction
from svckit.errors import FailedPrecondition, InvalidArgument, NotFound, Reason, Violations
from svckit.idempotency import IdempotentCall
from svckit.pagination import clamp_page_size, take_page

PROCESSED = "processed"
IGNORED = "ignored"
REJECTED = "rejected"
STATUSES = (PROCESSED, IGNORED, REJECTED)
# What an admin may apply again.
REDRIVABLE = frozenset({REJECTED, IGNORED})


class EventNotFound(NotFound):
    def __init__(self, event_id: str) -> None:
        super().__init__(f"no Stripe event {event_id} was received", metadata={"event_id": event_id})


class EventNotRedrivable(FailedPrecondition):
    reason = Reason.EVENT_NOT_REDRIVABLE

    def __init__(self, event_id: str, status: str) -> None:
        super().__init__(
            f"cannot re-drive Stripe event {event_id}: it is {status}; only {' or '.join(sorted(REDRIVABLE))} "
            "events can be applied again",
            metadata={"event_id": event_id, "status": status},
        )


class MalformedEvent(ValueError):
    """The event lacks what its type promises; it is recorded as rejected and otherwise ignored."""


@dataclass(frozen=True)
class EventsPage:
    events: list[StoredEvent]
    next_before: tuple[datetime, str] | None


def list_events(
    engine: Engine,
    inbox: Inbox,
    actor: Actor,
    *,
    status: str,
    type_: str,
    page_size: int,
    before: tuple[datetime, str] | None,
) -> EventsPage:
    """`ListStripeEvents` of any service: a page of its inbox, newest first (admins and services)."""
    actor.require_privileged("list Stripe events")
    v = Violations()
    if status and status not in STATUSES:
        v.add("status", f"one of: {', '.join(STATUSES)}")
    if len(type_) > 128:
        v.add("type", "at most 128 characters")
    v.raise_if_any()
    limit = clamp_page_size(page_size)
    rows = run_transaction(
        engine,
        lambda conn: inbox.list(conn, status=status, type_=type_, before=before, limit=limit + 1),
        read_only=True,
    )
    page, last = take_page(rows, limit)
    return EventsPage(page, (last.received_at, last.event_id) if last else None)


def check_event_call(actor: Actor, call: IdempotentCall, event_id: str) -> None:
    """Only the webhook intake (a service) or an admin applies events, keyed by the event id."""
    actor.require_privileged("apply Stripe events")
    if not event_id or call.key != event_id:
        raise InvalidArgument("the idempotency-key of a Stripe event must be its event id")


def parse_event(text: str, event_id: str, event_type: str) -> Mapping[str, Any]:
    """The event's JSON, which must be an object with the id and type it was sent under."""
    try:
        event = json.loads(text)
    except ValueError as error:
        raise MalformedEvent(f"the payload is not JSON: {error}") from error
    if not isinstance(event, Mapping):
        raise MalformedEvent("the payload is not a JSON object")
    if event.get("id") != event_id or event.get("type") != event_type:
        raise MalformedEvent("the payload's id and type differ from the event's")
    return event


def inbox_table(metadata: MetaData) -> Table:
    return Table(
        "stripe_events",
        metadata,
        Column("event_id", String(255), primary_key=True),
        Column("type", String(128), nullable=False),
        Column("payload", Text, nullable=False),
        # processed: it changed something; ignored: nothing to do; rejected: unusable payload.
        Column("status", String(16), nullable=False),
        Column("detail", String(500), nullable=False),
        Column("received_at", UtcDateTime(), nullable=False),
        Column("redrives", Integer, nullable=False, server_default="0"),
        Index("ix_stripe_events_type_received_at", "type", "received_at"),
        Index("ix_stripe_events_received_at_event_id", "received_at", "event_id"),
    )


@dataclass(frozen=True)
class StoredEvent:
    event_id: str
    type: str
    payload: str
    status: str
    detail: str
    received_at: datetime
    redrives: int


class Inbox:
    def __init__(self, table: Table) -> None:
        self.table = table
        self._record = {
            dialect: dialect_insert_for(dialect, table)
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(table.c.event_id)
            for dialect in ("postgresql", "sqlite")
        }

    def write(
        self, conn: Connection, *, event_id: str, type_: str, payload: str, status: str, detail: str, redrive: bool
    ) -> bool:
        """`record` for a delivery from Stripe; for a re-drive, the stored row takes the new outcome."""
        if not redrive:
            return self.record(conn, event_id=event_id, type_=type_, payload=payload, status=status, detail=detail)
        t = self.table.c
        changed = conn.execute(
            update(self.table)
            .where(t.event_id == event_id)
            .values(status=status, detail=detail[:500], redrives=t.redrives + 1)
        )
        return changed.rowcount == 1

    def get(self, conn: Connection, event_id: str) -> StoredEvent | None:
        row = conn.execute(select(self.table).where(self.table.c.event_id == event_id)).first()
        return StoredEvent(**row._mapping) if row else None

    def list(
        self, conn: Connection, *, status: str, type_: str, before: tuple[datetime, str] | None, limit: int
    ) -> list[StoredEvent]:
        """Newest first, with optional filters; `before` is the (time, id) of the previous page's last."""
        t = self.table.c
        statement = select(self.table)
        if status:
            statement = statement.where(t.status == status)
        if type_:
            statement = statement.where(t.type == type_)
        if before is not None:
            at, ident = before
            statement = statement.where(or_(t.received_at < at, and_(t.received_at == at, t.event_id < ident)))
        rows = conn.execute(statement.order_by(t.received_at.desc(), t.event_id.desc()).limit(limit))
        return [StoredEvent(**row._mapping) for row in rows]

    def record(self, conn: Connection, *, event_id: str, type_: str, payload: str, status: str, detail: str) -> bool:
        """Record the event in the caller's transaction; False if it was recorded before."""
        inserted = conn.execute(
            self._record[conn.dialect.name],
            {
                "event_id": event_id,
                "type": type_,
                "payload": payload,
                "status": status,
                "detail": detail[:500],
                "received_at": datetime.now(UTC),
            },
        ).first()
        return inserted is not None
