"""The inbox: every Stripe event a service received, with what became of it.

Recorded in the same transaction as the event's effect, keyed by the event id,
so the log of webhook events is exactly the log of what was applied: what each
event did (processed), or why it did nothing (ignored, rejected), with the
payload as Stripe sent it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, Connection, Index, MetaData, String, Table, Text

from svckit.db import UtcDateTime, dialect_insert_for

PROCESSED = "processed"
IGNORED = "ignored"
REJECTED = "rejected"


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
