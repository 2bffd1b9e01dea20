"""The Credits hash chains: one over transfers (with their entries), one over the audit log (svckit.chain).

Transfers are chained in the order the rollup counts them (credits_svc.rollup):
by their credit entry's id, from the `ledger_entries_id_seq` sequence, which the
sealer settles the same way (svckit.settle). Each transfer's seal hashes its
immutable columns (id, kind, amount, user_id, from_account, to_account, source,
reference, description, reverses_transfer_id, actor, created_at) and its entries
(account, amount; sorted by account), so editing a transfer or one of its entries
behind the database's back breaks the chain. `reversed_amount` is not hashed: it
legitimately grows as the transfer is reversed.

The ledger check (`check_ledger`) verifies both chains in the same snapshot as the
balances; the ledger is not balanced when a chain is broken.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from credits_svc import domain
from credits_svc.models import audit_records, audit_seals, chain_state, ledger_entries, transfer_seals, transfers
from credits_svc.repository import LedgerRepository
from credits_svc.rollup import ENTRY_SEQUENCE
from svckit.audit_chain import AuditChain
from svckit.chain import SETTLE_WAIT_SECONDS, STEP_KEYS, ChainRow, ChainSource, SealRun, seal, verify
from svckit.db import run_transaction

TRANSFER_CHAIN = "transfers"
HASHED = (
    "id",
    "kind",
    "amount",
    "user_id",
    "from_account",
    "to_account",
    "source",
    "reference",
    "description",
    "reverses_transfer_id",
    "actor",
    "created_at",
)


def transfer_fields(row: Any, entries: list[tuple[str, int]]) -> dict[str, Any]:
    """What the chain hashes of a transfer: its immutable columns and its entries (account, amount)."""
    mapping = row._mapping if hasattr(row, "_mapping") else row
    fields: dict[str, Any] = {name: mapping[name] for name in HASHED}
    fields["entries"] = [[account, int(amount)] for account, amount in sorted(entries)]
    return fields


class TransferChain(ChainSource):
    def __init__(self) -> None:
        super().__init__(TRANSFER_CHAIN, transfer_seals, "transfer_id", chain_state, ENTRY_SEQUENCE)

    def max_key(self, conn: Connection) -> int:
        return LedgerRepository(conn).last_entry_id()

    def rows_between(self, conn: Connection, after: int, upto: int) -> list[ChainRow]:
        e, t = ledger_entries, transfers
        # A transfer's key is its credit entry (the positive one), as for the rollup.
        keyed = e.c.id > after, e.c.id <= upto, e.c.amount > 0
        rows = conn.execute(
            select(e.c.id.label("key"), *(t.c[name] for name in HASHED))
            .select_from(e.join(t, t.c.id == e.c.transfer_id))
            .where(*keyed)
            .order_by(e.c.id)
        ).all()
        both = e.alias("both")
        entries: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for entry in conn.execute(
            select(both.c.transfer_id, both.c.account, both.c.amount)
            .select_from(e.join(both, both.c.transfer_id == e.c.transfer_id))
            .where(*keyed)
        ):
            entries[entry.transfer_id].append((entry.account, entry.amount))
        return [ChainRow(int(row.key), row.id, transfer_fields(row, entries[row.id])) for row in rows]

    def sealed_rows(self, conn: Connection, after_seq: int, upto_seq: int) -> dict[str, dict[str, Any]]:
        s, t, e = transfer_seals.c, transfers, ledger_entries
        window = s.seq > after_seq, s.seq <= upto_seq
        entries: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for entry in conn.execute(
            select(e.c.transfer_id, e.c.account, e.c.amount)
            .select_from(transfer_seals.join(e, e.c.transfer_id == s.transfer_id))
            .where(*window)
        ):
            entries[entry.transfer_id].append((entry.account, entry.amount))
        rows = conn.execute(
            select(*(t.c[name] for name in HASHED))
            .select_from(transfer_seals.join(t, t.c.id == s.transfer_id))
            .where(*window)
        )
        return {row.id: transfer_fields(row, entries[row.id]) for row in rows}

    def first_unsealed(self, conn: Connection, upto: int) -> str | None:
        e, s = ledger_entries, transfer_seals.c
        found = conn.execute(
            select(e.c.transfer_id)
            .select_from(e.outerjoin(transfer_seals, s.transfer_id == e.c.transfer_id))
            .where(e.c.id <= upto, e.c.amount > 0, s.seq.is_(None))
            .order_by(e.c.id)
            .limit(1)
        ).scalar()
        return None if found is None else str(found)

    def count_after(self, conn: Connection, after: int) -> int:
        e = ledger_entries.c
        return int(conn.execute(select(func.count()).where(e.id > after, e.amount > 0)).scalar_one())


TRANSFERS = TransferChain()
AUDIT = AuditChain(audit_records, audit_seals, chain_state)
CHAINS: tuple[ChainSource, ...] = (TRANSFERS, AUDIT)


def seal_all(engine: Engine, *, step_keys: int = STEP_KEYS, wait_seconds: float = SETTLE_WAIT_SECONDS) -> list[SealRun]:
    """Seal every settled transfer and audit record not sealed yet (safe on every replica at once)."""
    return [seal(engine, chain, step_keys=step_keys, wait_seconds=wait_seconds) for chain in CHAINS]


def full_check(conn: Connection) -> domain.LedgerReport:
    """The ledger's invariants and both hash chains, from the caller's snapshot."""
    report = LedgerRepository(conn).check()
    return dataclasses.replace(report, transfer_chain=verify(conn, TRANSFERS), audit_chain=verify(conn, AUDIT))


def check_ledger(engine: Engine) -> domain.LedgerReport:
    return run_transaction(engine, full_check, read_only=True, snapshot=True)
