"""After a webhook load: wait for Payments' relay to grant every acknowledged event, and compare counts."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from credits_svc.models import transfers
from payments_svc.models import outbox_messages
from svckit.db import make_engine
from tests.support.purchase_stack import wait_for


def drain(payments_db: str, credits_db: str) -> tuple[str, bool]:
    """A line saying how it went, and whether every grant owed is a transfer in the ledger."""
    payments_engine, credits_engine = make_engine(payments_db), make_engine(credits_db)
    try:

        def pending() -> int:
            with payments_engine.connect() as conn:
                query = select(func.count()).where(outbox_messages.c.state == "pending")
                return int(conn.execute(query).scalar_one())

        started = time.perf_counter()
        wait_for(lambda: pending() == 0, "the outbox to drain", seconds=600)
        with payments_engine.connect() as conn:
            sent = int(conn.execute(select(func.count()).select_from(outbox_messages)).scalar_one())
        with credits_engine.connect() as conn:
            grants = int(conn.execute(select(func.count()).select_from(transfers)).scalar_one())
    finally:
        payments_engine.dispose()
        credits_engine.dispose()
    verdict = "ok" if sent == grants else "MISMATCH"
    line = (
        f"relay: {sent} grants owed for acknowledged events, {grants} transfers in the ledger ({verdict}); "
        f"drained {time.perf_counter() - started:.1f} s after the load stopped"
    )
    return line, sent == grants
