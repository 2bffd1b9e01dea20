"""The hash chain over a service's audit log (svckit.chain), the same in every service.

Order: audit records had no order a sealer could trust. `created_at` comes from
the writer's clock, and a record can commit long after its time (or after a
later record), so a watermark on time would let a late commit slip below it. So
migration adds `ordinal`: a BIGSERIAL on PostgreSQL, whose sequence the sealer
settles exactly as the rollup settles ledger entry ids (svckit.settle; the writer
takes its transaction id before it draws an ordinal, `AuditLog.record`), and on
SQLite one more than the highest, which is sound because SQLite writers are
serialised. Records that existed before the migration got their ordinals in the
table's order.

What is hashed: every column of the record (id, actor, action, target,
request_id, detail, created_at, ordinal); none of them ever changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, String, Table, func, select

from svckit.actors import Actor
from svckit.bootstrap import open_database
from svckit.chain import ChainReport, ChainRow, ChainSource, SealRun, report_dict, seal, seal_table, verify
from svckit.db import run_transaction
from svckit.server import PeriodicTask
from svckit.settings import ServiceSettings

AUDIT_CHAIN = "audit"
ORDINAL_SEQUENCE = "audit_records_ordinal_seq"
HASHED = ("id", "actor", "action", "target", "request_id", "detail", "created_at", "ordinal")


def audit_seals_table(metadata: MetaData) -> Table:
    return seal_table(metadata, "audit_seals", "record_id", String(36), "audit_records.id")


def audit_fields(row: Any) -> dict[str, Any]:
    """What the chain hashes of an audit record (a row or mapping with its columns)."""
    mapping = row._mapping if hasattr(row, "_mapping") else row
    return {name: mapping[name] for name in HASHED}


class AuditChain(ChainSource):
    def __init__(self, records: Table, seals: Table, state: Table) -> None:
        super().__init__(AUDIT_CHAIN, seals, "record_id", state, ORDINAL_SEQUENCE)
        self.records = records

    def max_key(self, conn: Connection) -> int:
        return int(conn.execute(select(func.coalesce(func.max(self.records.c.ordinal), 0))).scalar_one())

    def rows_between(self, conn: Connection, after: int, upto: int) -> list[ChainRow]:
        a = self.records.c
        rows = conn.execute(
            select(*(a[name] for name in HASHED)).where(a.ordinal > after, a.ordinal <= upto).order_by(a.ordinal)
        )
        return [ChainRow(int(row.ordinal), row.id, audit_fields(row)) for row in rows]

    def sealed_rows(self, conn: Connection, after_seq: int, upto_seq: int) -> dict[str, dict[str, Any]]:
        a, s = self.records.c, self.seals.c
        rows = conn.execute(
            select(*(a[name] for name in HASHED))
            .select_from(self.seals.join(self.records, a.id == s.record_id))
            .where(s.seq > after_seq, s.seq <= upto_seq)
        )
        return {row.id: audit_fields(row) for row in rows}

    def first_unsealed(self, conn: Connection, upto: int) -> str | None:
        a, s = self.records.c, self.seals.c
        found = conn.execute(
            select(a.id)
            .select_from(self.records.outerjoin(self.seals, s.record_id == a.id))
            .where(a.ordinal <= upto, s.seq.is_(None))
            .order_by(a.ordinal)
            .limit(1)
        ).scalar()
        return None if found is None else str(found)

    def count_after(self, conn: Connection, after: int) -> int:
        a = self.records.c
        return int(conn.execute(select(func.count()).where(a.ordinal > after)).scalar_one())


def check_audit_chain(engine: Engine, chain: AuditChain) -> ChainReport:
    """The audit chain verified in one snapshot."""
    return run_transaction(engine, lambda conn: verify(conn, chain), read_only=True, snapshot=True)


def check_audit_chain_as(actor: Actor, engine: Engine, chain: AuditChain) -> ChainReport:
    """`CheckAuditChain` of Payments and Subscriptions (admins and services)."""
    actor.require_privileged("check the audit chain")
    return check_audit_chain(engine, chain)


def sealer_task(settings: ServiceSettings, seal_now: Callable[[], object]) -> PeriodicTask:
    """The periodic sealer; safe on every replica at once (one claims a chain's watermark, the others skip)."""
    return PeriodicTask("seal the hash chains", settings.seal_seconds, seal_now)


def print_seal_runs(runs: list[SealRun]) -> int:
    """The `seal` command's output: what each chain sealed, as JSON; exit status 1 when one had to skip."""
    print(
        json.dumps(
            {run.chain: {"sealed": run.sealed, "last_seq": run.last_seq, "skipped": run.skipped} for run in runs}
        )
    )
    return 1 if any(run.skipped for run in runs) else 0


def audit_chain_commands(
    name: str, migrations: Path, chain: AuditChain
) -> dict[str, tuple[str, Callable[[ServiceSettings], int]]]:
    """`seal` and `check-audit-chain`, the commands of a service whose only chain is its audit log."""

    def seal_command(settings: ServiceSettings) -> int:
        engine = open_database(settings, migrations, name)
        try:
            runs = [seal(engine, chain)]
        finally:
            engine.dispose()
        return print_seal_runs(runs)

    def check_command(settings: ServiceSettings) -> int:
        engine = open_database(settings, migrations, name)
        try:
            report = check_audit_chain(engine, chain)
        finally:
            engine.dispose()
        print(json.dumps({"audit_chain": report_dict(report)}, indent=2))
        return 0 if report.intact else 1

    return {
        "seal": ("seal the audit records not sealed yet into the hash chain", seal_command),
        "check-audit-chain": ("verify the audit log's hash chain; exit 1 when a link is broken", check_command),
    }
