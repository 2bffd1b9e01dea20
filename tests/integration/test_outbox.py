"""The outbox and its relay on a real database: nothing lost, order per aggregate kept, failures retried."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Connection, Engine, MetaData, select

from svckit.db import make_engine, run_transaction
from svckit.outbox import (
    DEAD,
    PENDING,
    SENT,
    AfterSent,
    Message,
    Outbox,
    OutboxRelay,
    PermanentFailure,
    RelaySettings,
    outbox_table,
)

FAST = RelaySettings(poll_seconds=0.05, batch=10, lease=timedelta(seconds=30), first_retry=timedelta(0))


@pytest.fixture
def outbox_engine(any_database: str) -> Iterator[tuple[Engine, Outbox]]:
    metadata = MetaData()
    table = outbox_table(metadata)
    engine = make_engine(any_database, pool_size=4)
    metadata.create_all(engine)
    yield engine, Outbox(table)
    engine.dispose()


def enqueue(engine: Engine, outbox: Outbox, key: str, aggregate: str, n: int = 0) -> bool:
    return run_transaction(
        engine, lambda conn: outbox.enqueue(conn, kind="test", key=key, aggregate=aggregate, payload={"n": n})
    )


def states(engine: Engine, outbox: Outbox) -> dict[str, str]:
    t = outbox.table
    rows = run_transaction(engine, lambda conn: conn.execute(select(t.c.key, t.c.state)).all(), read_only=True)
    return {row.key: row.state for row in rows}


def test_one_message_per_key(outbox_engine: tuple[Engine, Outbox]) -> None:
    engine, outbox = outbox_engine
    assert enqueue(engine, outbox, "grant:p1", "p1")
    assert not enqueue(engine, outbox, "grant:p1", "p1")
    assert outbox.count(engine, PENDING) == 1


def test_messages_of_one_aggregate_go_in_order_and_failures_are_retried(outbox_engine: tuple[Engine, Outbox]) -> None:
    engine, outbox = outbox_engine
    for n in range(3):
        enqueue(engine, outbox, f"a:{n}", "a", n)
    enqueue(engine, outbox, "b:0", "b", 0)
    sent: list[str] = []
    failures = {"a:1": 2}  # a:1 fails twice before it goes through

    async def handler(message: Message) -> AfterSent:
        if failures.get(message.key, 0) > 0:
            failures[message.key] -= 1
            raise ConnectionError("receiver down")
        sent.append(message.key)
        return None

    relay = OutboxRelay(engine, outbox, {"test": handler}, FAST)

    async def drain() -> None:
        while outbox.count(engine, PENDING):
            await relay.run_once()

    asyncio.run(drain())
    assert [key for key in sent if key.startswith("a:")] == ["a:0", "a:1", "a:2"]
    assert "b:0" in sent
    assert set(states(engine, outbox).values()) == {SENT}


def test_a_permanent_refusal_parks_the_message_and_after_sent_work_commits(
    outbox_engine: tuple[Engine, Outbox],
) -> None:
    engine, outbox = outbox_engine
    enqueue(engine, outbox, "bad", "x")
    enqueue(engine, outbox, "good", "y")
    recorded: list[str] = []

    async def handler(message: Message) -> AfterSent:
        if message.key == "bad":
            raise PermanentFailure("refused")

        def after(conn: Connection) -> None:
            recorded.append(message.key)

        return after

    asyncio.run(OutboxRelay(engine, outbox, {"test": handler}, FAST).run_once())
    assert states(engine, outbox) == {"bad": DEAD, "good": SENT}
    assert recorded == ["good"]


def test_a_leased_message_is_not_claimed_twice(outbox_engine: tuple[Engine, Outbox]) -> None:
    engine, outbox = outbox_engine
    enqueue(engine, outbox, "k", "a")
    first = outbox.claim(engine, batch=10, lease=timedelta(seconds=30))
    second = outbox.claim(engine, batch=10, lease=timedelta(seconds=30))
    assert [m.key for m in first] == ["k"]
    assert second == []
    expired = outbox.claim(engine, batch=10, lease=timedelta(seconds=-1))
    assert expired == []  # still leased by the first claim


def test_a_round_marks_its_messages_sent_together_and_one_failing_after_spares_the_others(
    outbox_engine: tuple[Engine, Outbox],
) -> None:
    """Confirmed messages are marked in one transaction per round; if one message's after-sent work fails,
    the others are still marked sent (each on its own) and only that one stays pending, to be sent again."""
    engine, outbox = outbox_engine
    for key in ("a", "b", "c"):
        enqueue(engine, outbox, key, key)
    followed: list[str] = []

    def after(key: str) -> AfterSent:
        def work(conn: Connection) -> None:
            if key == "b":
                raise RuntimeError("the follow-up of b fails")
            followed.append(key)

        return work

    async def handler(message: Message) -> AfterSent:
        return after(message.key)

    relay = OutboxRelay(engine, outbox, {"test": handler}, FAST)
    assert asyncio.run(relay.run_once()) == 3
    assert states(engine, outbox) == {"a": SENT, "b": PENDING, "c": SENT}
    # The joint transaction ran a's follow-up, failed at b's and rolled back; then each alone: a, (b fails), c.
    assert followed == ["a", "a", "c"]
