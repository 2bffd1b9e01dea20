"""The database itself refuses to rewrite history, on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from credits_svc import domain
from svckit.actors import Actor, ActorKind
from svckit.idempotency import IdempotentCall
from tests.support.ledger import check_ledger, credits_service, migrated_engine

ADMIN = Actor(ActorKind.ADMIN, "immutability-test")

REFUSED = [
    "UPDATE ledger_entries SET amount = amount + 1",
    "UPDATE ledger_entries SET balance_after = 0",
    "DELETE FROM ledger_entries",
    "DELETE FROM transfers",
    "UPDATE transfers SET amount = amount * 2",
    "UPDATE transfers SET reference = reference || 'x'",
    "DELETE FROM accounts",
    "UPDATE accounts SET code = code || 'x'",
    "UPDATE accounts SET balance = -1 WHERE kind = 'wallet'",
    "UPDATE accounts SET balance = 5 WHERE kind = 'system'",
    "UPDATE transfers SET reversed_amount = amount + 1",
]


@pytest.mark.parametrize("statement", REFUSED)
def test_rewriting_the_ledger_in_sql_is_refused(any_database: str, statement: str) -> None:
    engine = migrated_engine(any_database)
    try:
        service = credits_service(engine)
        cmd = domain.GrantCredits("alice", 40, domain.GrantSource.PURCHASE, reference=f"payment:{uuid.uuid4().hex}")
        call = IdempotentCall.for_request("test", uuid.uuid4().hex, "grant", b"")
        service.grant(ADMIN, cmd, call, lambda result: result.transfer.id.encode())
        before = check_ledger(engine)

        with pytest.raises(DBAPIError) as refused, engine.begin() as conn:
            conn.execute(text(statement))

        message = str(refused.value.orig).lower()
        assert "immutable" in message or "check constraint" in message or "constraint failed" in message, message
        after = check_ledger(engine)
        assert after == before
        assert after.balanced
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_truncating_ledger_entries_is_refused_on_postgres(pg_database: str) -> None:
    engine = migrated_engine(pg_database)
    try:
        with pytest.raises(DBAPIError, match="immutable"), engine.begin() as conn:
            conn.execute(text("TRUNCATE ledger_entries CASCADE"))
    finally:
        engine.dispose()
