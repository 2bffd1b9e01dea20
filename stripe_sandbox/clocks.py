"""Test clocks: a frozen time for the customers on them, moved forward only by an advance.

Everything belonging to a customer on a clock (its subscriptions, invoices, invoice items,
payment intents, charges and the events about them) takes the clock's `frozen_time`
(`Sandbox.now_for`). An advance runs inside the request: the clock is `advancing`
(`test_helpers.test_clock.advancing`), every billing boundary up to the new time is handled in
time order (billing_cycle.py), and it answers `ready` (`test_helpers.test_clock.ready`), so a
client polling `GET` until `ready`, as it must with Stripe, sees it ready at once.
"""

from __future__ import annotations

from typing import Any

from stripe_sandbox import billing_cycle, ids, objects
from stripe_sandbox.billing import DAY
from stripe_sandbox.errors import invalid
from stripe_sandbox.sandbox import Sandbox

Obj = dict[str, Any]
LIFETIME = 30 * DAY


def create(sb: Sandbox, *, frozen_time: int, name: str | None) -> Obj:
    created = sb.now()
    clock = objects.test_clock(
        clock_id=ids.new_id("test_helpers.test_clock"),
        created=created,
        frozen_time=frozen_time,
        name=name,
        deletes_after=created + LIFETIME,
    )
    sb.store.add(clock)
    sb.emit("test_helpers.test_clock.created", clock)
    return clock


def advance(sb: Sandbox, clock: Obj, frozen_time: int) -> Obj:
    if frozen_time <= int(clock["frozen_time"]):
        raise invalid(
            "The frozen_time must be after the test clock's current frozen_time "
            f"({clock['frozen_time']}); a test clock cannot go back in time.",
            param="frozen_time",
        )
    advancing = {"advancing": {"target_frozen_time": frozen_time}}
    sb.update(None, clock, {"status": "advancing", "status_details": advancing})
    sb.emit("test_helpers.test_clock.advancing", clock)
    billing_cycle.run_until(sb, clock, frozen_time)
    sb.update(None, clock, {"status": "ready", "status_details": {}, "frozen_time": frozen_time})
    sb.emit("test_helpers.test_clock.ready", clock)
    return clock


def delete(sb: Sandbox, clock: Obj) -> Obj:
    """Delete the clock and, as Stripe does, everything on it (customers and what is theirs); no events."""
    customers = {c["id"] for c in sb.store.all("customer") if c.get("test_clock") == clock["id"]}
    for kind in ("subscription", "invoice", "invoiceitem", "customer"):
        for obj in sb.store.all(kind):
            if obj["id"] in customers or obj.get("customer") in customers:
                sb.store.remove(kind, obj["id"])
    sb.store.remove("test_helpers.test_clock", clock["id"])
    sb.emit("test_helpers.test_clock.deleted", clock)
    return objects.deleted("test_helpers.test_clock", clock["id"])
