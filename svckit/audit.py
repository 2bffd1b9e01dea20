"""The audit log: every admin action a service performs, recorded in the same transaction as its effect.

Records are immutable, like the ledger: the database refuses to update or
delete them (triggers created by `svckit.migrations.create_audit_records_v1`),
and a sealer chains them by hash so that a change made behind the database's
back shows (svckit.audit_chain). Each record has an `ordinal`, from a sequence on
PostgreSQL (one more than the highest on SQLite, whose writers are serialised):
the order the chain follows.
An action is audited when an admin asks for it (actor `admin:<id>`), or when a
service acts on an admin's behalf and says so.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import UTC, datetime

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
    and_,
    func,
    insert,
    or_,
    select,
)

from svckit.actors import Actor
from svckit.db import UtcDateTime, run_transaction
from svckit.errors import Violations
from svckit.logs import request_id_var
from svckit.pagination import clamp_page_size, take_page
from svckit.settle import take_transaction_id

MAX_DETAIL = 500


def audit_table(metadata: MetaData) -> Table:
    return Table(
        "audit_records",
        metadata,
        Column("id", String(36), primary_key=True),
        Column("actor", String(140), nullable=False),
        Column("action", String(64), nullable=False),
        Column("target", String(255), nullable=False),
        Column("request_id", String(128), nullable=False),
        Column("detail", String(MAX_DETAIL), nullable=False),
        Column("created_at", UtcDateTime(), nullable=False),
        # The chain's order (svckit.audit_chain). PostgreSQL: BIGSERIAL, from audit_records_ordinal_seq.
        Column("ordinal", BigInteger().with_variant(Integer(), "sqlite"), nullable=False),
        Index("ix_audit_records_created_at_id", "created_at", "id"),
        Index("ix_audit_records_actor_created_at", "actor", "created_at"),
        Index("ix_audit_records_ordinal", "ordinal", unique=True),
    )


@dataclass(frozen=True)
class AuditRecord:
    id: str
    actor: str
    action: str
    target: str
    request_id: str
    detail: str
    created_at: datetime


@dataclass(frozen=True)
class AuditFilter:
    actor: str = ""
    action: str = ""
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class AuditPage:
    records: list[AuditRecord]
    next_before: tuple[datetime, str] | None


def list_audit(
    engine: Engine,
    log: AuditLog,
    actor: Actor,
    where: AuditFilter,
    *,
    page_size: int,
    before: tuple[datetime, str] | None,
) -> AuditPage:
    """`ListAuditRecords` of any service: a page of its audit log, newest first (admins and services)."""
    actor.require_privileged("read the audit log")
    v = Violations()
    v.check_range(where.since, where.until, required=False)
    v.raise_if_any()
    limit = clamp_page_size(page_size)
    rows = run_transaction(engine, lambda conn: log.list(conn, where, before=before, limit=limit + 1), read_only=True)
    page, last = take_page(rows, limit)
    return AuditPage(page, (last.created_at, last.id) if last else None)


def is_audited(actor: Actor) -> bool:
    """Admins' actions are audited; users' own actions and services' routine work are not."""
    return actor.kind.value == "admin"


class AuditLog:
    def __init__(self, table: Table) -> None:
        self.table = table

    def record(self, conn: Connection, *, actor: Actor, action: str, target: str, detail: str = "") -> AuditRecord:
        """Record an action in the caller's transaction (the one that performs it)."""
        entry = AuditRecord(
            id="aud_" + uuid.uuid4().hex,
            actor=str(actor),
            action=action,
            target=target,
            request_id=request_id_var.get() or "",
            detail=detail[:MAX_DETAIL],
            created_at=datetime.now(UTC),
        )
        values: dict[str, object] = dict(entry.__dict__)
        if conn.dialect.name == "postgresql":
            # The ordinal's default draws from a sequence the sealer settles: have a transaction id first.
            take_transaction_id(conn)
        else:
            values["ordinal"] = select(func.coalesce(func.max(self.table.c.ordinal), 0) + 1).scalar_subquery()
        conn.execute(insert(self.table).values(**values))
        return entry

    def list(
        self, conn: Connection, where: AuditFilter, *, before: tuple[datetime, str] | None, limit: int
    ) -> list[AuditRecord]:
        """Newest first; `before` is the (time, id) of the last record of the previous page."""
        t = self.table.c
        statement = select(*(self.table.c[field.name] for field in fields(AuditRecord)))
        if where.actor:
            statement = statement.where(t.actor == where.actor)
        if where.action:
            statement = statement.where(t.action == where.action)
        if where.since is not None:
            statement = statement.where(t.created_at >= where.since)
        if where.until is not None:
            statement = statement.where(t.created_at < where.until)
        if before is not None:
            at, ident = before
            statement = statement.where(or_(t.created_at < at, and_(t.created_at == at, t.id < ident)))
        rows = conn.execute(statement.order_by(t.created_at.desc(), t.id.desc()).limit(limit))
        return [AuditRecord(**row._mapping) for row in rows]
