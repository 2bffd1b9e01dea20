"""Hash chains: tamper evidence for append-only tables (ledger transfers, audit records).

Each row of a chained table gets a seal, in a separate, insert-only table:
`(seq, row id, prev_hash, hash, sealed_at)`, where

    hash = SHA-256(canonical JSON of {"prev_hash": prev_hash, "row": the row's immutable fields})

and prev_hash is the hash of the seal before (seq - 1), or 64 zeros for the first.
Changing a sealed row, deleting it, or deleting or editing its seal, changes a hash
that every later seal depends on; `verify` recomputes the chain from the rows as
they are now and names the first link that no longer holds.

Rows are not chained as they are written: that would make every writer wait on
the one chain head. A sealer (`seal`) chains them later, in the order of a key
drawn from a sequence, behind a watermark kept in `chain_state`: one row per
chain saying the highest key sealed, the last seq and the head hash. A step claims
that row with FOR UPDATE SKIP LOCKED (replicas skip their turn while another
holds it), settles the sequence (svckit.settle: no key at most the one it reads
can still commit later), seals the rows up to it and moves the watermark, all in
one transaction. So every row is sealed exactly once, in key order, with
contiguous seqs, however many sealers run.

The encoding is JSON with sorted keys, no whitespace, ASCII only; times are UTC
ISO 8601 with microseconds. JSON quotes and escapes every string, so no two
different rows encode alike.
"""

from __future__ import annotations

import hashlib
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    ForeignKey,
    MetaData,
    String,
    Table,
    insert,
    select,
    update,
)
from sqlalchemy.types import TypeEngine

from svckit.clock import utc_now
from svckit.db import UtcDateTime, run_transaction
from svckit.settle import last_issued, wait_for_earlier_writers

log = logging.getLogger(__name__)

GENESIS = "0" * 64
# Keys per sealing step (one transaction): bounds the transaction, not the run.
STEP_KEYS = 20_000
# How long a step waits for transactions in flight to end before giving up its turn.
SETTLE_WAIT_SECONDS = 5.0
# Seals read per query while verifying.
VERIFY_BATCH = 5_000

# Why a link is broken.
ROW_CHANGED = "row_changed"  # the row's contents no longer give the sealed hash
ROW_MISSING = "row_missing"  # the sealed row is gone
SEAL_MISSING = "seal_missing"  # a row below the watermark has no seal (or a seq is skipped)
LINK_BROKEN = "link_broken"  # the seal's prev_hash is not the hash of the seal before it

Row = Mapping[str, Any]


# --- the hash -----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, (str, int)) and not isinstance(value, bool)):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime in a chained row")
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    raise TypeError(f"cannot chain a {type(value).__name__}")


def encode_link(prev_hash: str, fields: Row) -> bytes:
    """The canonical bytes hashed for one link."""
    document = {"prev_hash": prev_hash, "row": _plain(fields)}
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def link_hash(prev_hash: str, fields: Row) -> str:
    return hashlib.sha256(encode_link(prev_hash, fields)).hexdigest()


# --- tables -------------------------------------------------------------------------------


def chain_state_table(metadata: MetaData) -> Table:
    """One row per chain: how far its sealer got (the watermark) and the head of the chain."""
    return Table(
        "chain_state",
        metadata,
        Column("name", String(32), primary_key=True),
        # Every row whose key is at most this is sealed.
        Column("position", BigInteger(), nullable=False),
        Column("last_seq", BigInteger(), nullable=False),
        Column("head_hash", String(64), nullable=False),
        Column("updated_at", UtcDateTime(), nullable=False),
    )


def seal_table(metadata: MetaData, name: str, row_column: str, row_type: TypeEngine[str], references: str) -> Table:
    """Insert-only seals of one chain (triggers refuse UPDATE and DELETE: svckit.migrations)."""
    return Table(
        name,
        metadata,
        Column("seq", BigInteger(), primary_key=True, autoincrement=False),
        Column(row_column, row_type, ForeignKey(references), nullable=False, unique=True),
        Column("prev_hash", String(64), nullable=False),
        Column("hash", String(64), nullable=False),
        Column("sealed_at", UtcDateTime(), nullable=False),
    )


# --- what a chain is made of ----------------------------------------------------------------


@dataclass(frozen=True)
class ChainRow:
    key: int  # the order key, from a sequence
    id: str
    fields: dict[str, Any]  # what is hashed


class ChainSource(ABC):
    """One chained table: how to read its rows in key order, and where its seals and watermark are."""

    def __init__(self, name: str, seals: Table, row_column: str, state: Table, sequence: str) -> None:
        self.name = name  # the chain_state row
        self.seals = seals
        self.row_column = row_column
        self.state = state
        self.sequence = sequence  # PostgreSQL sequence the keys come from

    @abstractmethod
    def max_key(self, conn: Connection) -> int:
        """The highest key committed (SQLite, where it is settled)."""

    @abstractmethod
    def rows_between(self, conn: Connection, after: int, upto: int) -> list[ChainRow]:
        """The rows with after < key <= upto, in key order."""

    @abstractmethod
    def sealed_rows(self, conn: Connection, after_seq: int, upto_seq: int) -> dict[str, dict[str, Any]]:
        """The current fields of the rows sealed with after_seq < seq <= upto_seq, by row id (missing: absent)."""

    @abstractmethod
    def first_unsealed(self, conn: Connection, upto: int) -> str | None:
        """The first row, in key order, with key at most `upto` and no seal."""

    @abstractmethod
    def count_after(self, conn: Connection, after: int) -> int:
        """How many rows have a key above `after` (not sealed yet)."""


# --- sealing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Watermark:
    position: int
    last_seq: int
    head_hash: str


@dataclass(frozen=True)
class SealRun:
    chain: str
    sealed: int
    last_seq: int
    # True when another replica held the watermark, or transactions in flight did not end in time.
    skipped: bool


@dataclass(frozen=True)
class _Step:
    sealed: int
    last_seq: int
    skipped: bool = False
    caught_up: bool = False


def _watermark(conn: Connection, source: ChainSource, *, claim: bool) -> Watermark | None:
    s = source.state.c
    statement = select(s.position, s.last_seq, s.head_hash).where(s.name == source.name)
    if claim:
        statement = statement.with_for_update(skip_locked=True)
    row = conn.execute(statement).first()
    return None if row is None else Watermark(int(row.position), int(row.last_seq), row.head_hash)


def _seal_step(conn: Connection, source: ChainSource, step_keys: int, wait_seconds: float) -> _Step:
    """One bounded batch, in a READ COMMITTED transaction (each statement sees a new snapshot)."""
    postgres = conn.dialect.name == "postgresql"
    # PostgreSQL: read before the claim below (svckit.settle). SQLite: this write transaction
    # excludes every other writer, so the highest key is settled.
    settled = last_issued(conn, source.sequence) if postgres else source.max_key(conn)
    mark = _watermark(conn, source, claim=True)
    if mark is None:
        if _watermark(conn, source, claim=False) is None:
            raise RuntimeError(f"chain_state has no row {source.name!r}: the migration creates it")
        return _Step(0, 0, skipped=True)
    if postgres and not wait_for_earlier_writers(conn, wait_seconds):
        log.warning("sealer: transactions in flight did not end in time; next turn", extra={"chain": source.name})
        return _Step(0, mark.last_seq, skipped=True)
    upto = min(settled, mark.position + step_keys)
    if upto <= mark.position:
        return _Step(0, mark.last_seq, caught_up=True)
    rows = source.rows_between(conn, mark.position, upto)
    seq, head, now = mark.last_seq, mark.head_hash, utc_now()
    seals: list[dict[str, Any]] = []
    for row in rows:
        seq += 1
        digest = link_hash(head, row.fields)
        seals.append({"seq": seq, source.row_column: row.id, "prev_hash": head, "hash": digest, "sealed_at": now})
        head = digest
    if seals:
        conn.execute(insert(source.seals), seals)
    s = source.state.c
    conn.execute(
        update(source.state)
        .where(s.name == source.name)
        .values(position=upto, last_seq=seq, head_hash=head, updated_at=now)
    )
    return _Step(len(seals), seq, caught_up=upto == settled)


def seal(
    engine: Engine, source: ChainSource, *, step_keys: int = STEP_KEYS, wait_seconds: float = SETTLE_WAIT_SECONDS
) -> SealRun:
    """Seal every settled row not sealed yet, one bounded transaction per step."""
    sealed, last = 0, 0
    while True:
        step = run_transaction(engine, lambda conn: _seal_step(conn, source, step_keys, wait_seconds))
        sealed += step.sealed
        last = step.last_seq or last
        if step.skipped or step.caught_up:
            if sealed:
                log.info("sealed rows", extra={"chain": source.name, "sealed": sealed, "last_seq": last})
            return SealRun(source.name, sealed, last, step.skipped)


# --- verifying ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    row_id: str  # "" when not known (a seal missing for a row that is gone too)
    reason: str  # ROW_CHANGED, ROW_MISSING, SEAL_MISSING or LINK_BROKEN
    computed_hash: str  # from the row as it is now ("" when there is nothing to hash)
    sealed_hash: str  # what the seal says ("" when there is no seal)


@dataclass(frozen=True)
class ChainReport:
    chain: str
    sealed: int  # seals that verified, from the first
    unsealed: int  # rows above the watermark: not sealed yet, which is not a break
    head_hash: str  # the hash of the last seal verified (GENESIS for none)
    first_break: ChainBreak | None

    @property
    def intact(self) -> bool:
        return self.first_break is None


def verify(conn: Connection, source: ChainSource, *, batch: int = VERIFY_BATCH) -> ChainReport:
    """Walk the chain in seq order against the rows as they are now; stop at the first broken link.

    Run it in one snapshot (REPEATABLE READ) with the rest of a check.
    """
    mark = _watermark(conn, source, claim=False)
    if mark is None:
        raise RuntimeError(f"chain_state has no row {source.name!r}: the migration creates it")
    s = source.seals.c
    row_id = s[source.row_column]
    expected_seq, head = 1, GENESIS
    broken: ChainBreak | None = None

    def missing_seal(seq: int) -> ChainBreak:
        return ChainBreak(seq, source.first_unsealed(conn, mark.position) or "", SEAL_MISSING, "", "")

    after = 0
    while broken is None:
        seals: Sequence[Any] = conn.execute(
            select(s.seq, row_id.label("row_id"), s.prev_hash, s.hash).where(s.seq > after).order_by(s.seq).limit(batch)
        ).all()
        if not seals:
            break
        current = source.sealed_rows(conn, after, int(seals[-1].seq))
        for sealed in seals:
            if sealed.seq != expected_seq:
                broken = missing_seal(expected_seq)
                break
            fields = current.get(sealed.row_id)
            if fields is None:
                broken = ChainBreak(sealed.seq, sealed.row_id, ROW_MISSING, "", sealed.hash)
                break
            computed = link_hash(head, fields)
            if sealed.prev_hash != head:
                broken = ChainBreak(sealed.seq, sealed.row_id, LINK_BROKEN, computed, sealed.hash)
                break
            if computed != sealed.hash:
                broken = ChainBreak(sealed.seq, sealed.row_id, ROW_CHANGED, computed, sealed.hash)
                break
            head, expected_seq = sealed.hash, expected_seq + 1
        after = int(seals[-1].seq)
    if broken is None and (mark.last_seq >= expected_seq or source.first_unsealed(conn, mark.position)):
        # Seals missing at the end of the chain, or a row below the watermark never sealed.
        broken = missing_seal(expected_seq)
    return ChainReport(
        chain=source.name,
        sealed=expected_seq - 1,
        unsealed=source.count_after(conn, mark.position),
        head_hash=head,
        first_break=broken,
    )


def report_dict(report: ChainReport) -> dict[str, Any]:
    """The report as JSON-ready data (CLI output)."""
    first = report.first_break
    return {
        "intact": report.intact,
        "sealed": report.sealed,
        "unsealed": report.unsealed,
        "head_hash": report.head_hash,
        "first_break": None if first is None else first.__dict__,
    }
