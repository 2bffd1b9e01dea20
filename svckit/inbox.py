"""The inbox: every Stripe event a service received, with what became of it.

Recorded in the same transaction as the event's effect, keyed by the event id,
so the log of webhook events is exactly the log of what was applied: what each
event did (processed), or why it did nothing (ignored, rejected), with the
payload as Stripe sent it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Connection, Index, MetaData, String, Table, Text

from svckit.actors import Actor
from svckit.db import UtcDateTime, dialect_insert_for
from svckit.errors import InvalidArgument
from svckit.idempotency import IdempotentCall

PROCESSED = "processed"
IGNORED = "ignored"
REJECTED = "rejected"


class MalformedEvent(ValueError):
    """The event lacks what its type promises; it is recorded as rejected and otherwise ignored."""


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
        Index("ix_stripe_events_type_received_at", "type", "received_at"),
    )


class Inbox:
    def __init__(self, table: Table) -> None:
        self.table = table
        self._record = {
            dialect: dialect_insert_for(dialect, table)
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(table.c.event_id)
            for dialect in ("postgresql", "sqlite")
        }

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
