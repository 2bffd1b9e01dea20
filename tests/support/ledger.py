"""Direct access to a Credits database for tests: migrate it, build the service on it, check it."""

from __future__ import annotations

from sqlalchemy import Engine

from credits_svc import domain
from credits_svc.bootstrap import MIGRATIONS
from credits_svc.models import idempotency_records
from credits_svc.repository import LedgerRepository
from credits_svc.service import CreditsService
from svckit.db import make_engine, run_transaction
from svckit.idempotency import IdempotencyStore
from svckit.migrations import upgrade


def migrated_engine(url: str, pool_size: int = 8) -> Engine:
    upgrade(url, MIGRATIONS)
    return make_engine(url, pool_size=pool_size)


def credits_service(engine: Engine) -> CreditsService:
    return CreditsService(engine, IdempotencyStore(idempotency_records))


def check_ledger(engine: Engine) -> domain.LedgerReport:
    return run_transaction(engine, lambda conn: LedgerRepository(conn).check(), read_only=True, snapshot=True)
