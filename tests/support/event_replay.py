"""Replaying the sandbox's webhooks while processes are killed: a killer thread, and what to check afterwards.

- `Killer`: a thread that SIGKILLs the stack's processes in turn (Credits, Payments,
  Subscriptions, the gateway) at moments drawn from a seeded RNG, and starts each
  again on the same port (and database) after a short, random downtime.
- `acknowledged`: which events the gateway answered 2xx for, from the sandbox's record of attempts.
- `stored_event_ids`: the events a service recorded in its inbox (`stripe_events`).
- `ledger_entries`: a user's transfers in the Credits ledger, as (kind, reference, amount).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from gateway.routes.webhooks import owner
from svckit.db import make_engine
from tests.support.gateway import GatewayProcess
from tests.support.processes import ManagedProcess, ServiceProcess
from tests.support.purchase_stack import PurchaseStack


def restart(process: ManagedProcess) -> None:
    """Start a killed process again on the same port."""
    if isinstance(process, ServiceProcess):
        process.start_again()
    elif isinstance(process, GatewayProcess):
        process.env["GATEWAY_PORT"] = str(process.port)
        process.start()
    else:
        raise TypeError(f"cannot restart {process!r}")


@dataclass
class Killer:
    """SIGKILLs `targets` in turn, every `between` seconds (random), each down for `downtime` seconds (random)."""

    targets: list[tuple[str, ManagedProcess]]
    rng: random.Random
    between: tuple[float, float] = (0.5, 2.5)
    downtime: tuple[float, float] = (0.0, 1.0)
    kills: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Killer:
        self._thread = threading.Thread(target=self._run, name="killer", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        turn = 0
        # The waits below are the fault schedule (when to strike, how long to stay down), not a wait for a result.
        while not self._stop.wait(self.rng.uniform(*self.between)):
            name, process = self.targets[turn % len(self.targets)]
            turn += 1
            try:
                process.kill()
                self.kills[name] += 1
                self._stop.wait(self.rng.uniform(*self.downtime))
                restart(process)
            except Exception as error:  # reported by the test
                self.errors.append(f"{name}: {type(error).__name__}: {error}")
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=120)
            assert not self._thread.is_alive(), "the killer did not stop"
        # Whatever was down when told to stop is started again.
        for _name, process in self.targets:
            assert process.process is not None
            if process.process.poll() is not None:
                restart(process)

    @property
    def total(self) -> int:
        return sum(self.kills.values())


def attempts(stack: PurchaseStack) -> list[dict[str, Any]]:
    """Every delivery attempt the sandbox made (it keeps the last 10,000)."""
    data: list[dict[str, Any]] = stack.sandbox.control("get", "/webhooks/attempts")["data"]
    return data


def acknowledged(rows: Iterable[dict[str, Any]]) -> set[str]:
    return {row["event_id"] for row in rows if row["succeeded"]}


def event_owners(stack: PurchaseStack, event_ids: Iterable[str]) -> dict[str, str | None]:
    """Which service owns each event, as the gateway routes it; newest event first, as Stripe lists them."""
    wanted = set(event_ids)
    owners: dict[str, str | None] = {}
    for event in stack.stripe.v1.events.list(params={"limit": 100}).auto_paging_iter():
        if event.id in wanted:
            owners[event.id] = owner(event.to_dict())
    missing = wanted - owners.keys()
    assert not missing, f"events unknown to the sandbox: {sorted(missing)[:5]}"
    return owners


def stored_event_ids(database_url: str) -> set[str]:
    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            return {str(row[0]) for row in conn.execute(text("SELECT event_id FROM stripe_events"))}
    finally:
        engine.dispose()


def outbox_pending(database_url: str) -> int:
    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM outbox_messages WHERE state = 'pending'")).scalar_one())
    finally:
        engine.dispose()


def ledger_entries(credits_db: str, users: Iterable[str]) -> dict[str, Counter[tuple[str, str, int]]]:
    """Each user's transfers as a multiset of (kind, reference, amount)."""
    wanted = list(users)
    engine = make_engine(credits_db, pool_size=1)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT user_id, kind, reference, amount FROM transfers WHERE user_id = ANY(:users)"),
                {"users": wanted},
            ).all()
    finally:
        engine.dispose()
    found: dict[str, Counter[tuple[str, str, int]]] = {user: Counter() for user in wanted}
    for row in rows:
        found[row.user_id][(row.kind, row.reference, int(row.amount))] += 1
    return found


def wait_idle(stack: PurchaseStack, seconds: float) -> None:
    """Until the sandbox has nothing held, queued or in flight; polled."""
    deadline = time.monotonic() + seconds
    while not stack.sandbox.control("get", "/webhooks")["idle"]:
        if time.monotonic() > deadline:
            raise AssertionError(f"the sandbox's deliveries did not finish within {seconds}s")
        time.sleep(0.1)
