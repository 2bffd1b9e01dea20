"""The sandbox's state and what every operation needs: the store, the clock, ids, events, timers.

Concurrency: every operation runs whole under `Sandbox.lock` and never awaits
while holding it, so each API call, hosted-page payment, timer and control call
sees and leaves a consistent state. The server runs them all on its event loop;
the lock also keeps them consistent if one is ever called from another thread.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from stripe_sandbox import ids, objects
from stripe_sandbox.store import Store

log = logging.getLogger(__name__)
Obj = dict[str, Any]


@dataclass(frozen=True)
class RequestInfo:
    """The API request being served, which events name in `request` (both None for automatic changes)."""

    id: str | None = None
    idempotency_key: str | None = None


current_request: ContextVar[RequestInfo | None] = ContextVar("stripe_sandbox_request", default=None)

EventListener = Callable[[Obj, list[str]], None]


def matches(enabled_events: list[str], event_type: str) -> bool:
    return "*" in enabled_events or event_type in enabled_events


class Sandbox:
    def __init__(
        self,
        *,
        public_url: str,
        api_version: str,
        async_delay_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.public_url = public_url.rstrip("/")
        self.api_version = api_version
        self.async_delay_seconds = async_delay_seconds
        self.clock = clock
        self.lock = threading.RLock()
        self.store = Store()
        self.portal_configuration = ids.new_id("billing_portal.configuration")
        self._listeners: list[EventListener] = []
        self._timers: set[asyncio.TimerHandle] = set()

    def now(self) -> int:
        return int(self.clock())

    def now_for(self, customer_id: str | None) -> int:
        """The time for what belongs to this customer: its test clock's frozen time, else wall time."""
        clock = self.clock_of(customer_id)
        return self.now() if clock is None else int(clock["frozen_time"])

    def clock_of(self, customer_id: str | None) -> Obj | None:
        """The test clock this customer is on, if any."""
        customer = self.store.get("customer", customer_id) if customer_id else None
        clock_id = None if customer is None else customer.get("test_clock")
        return self.store.get("test_helpers.test_clock", clock_id) if clock_id else None

    def time_of(self, obj: Mapping[str, Any]) -> int:
        """When an event about `obj` happens: its customer's clock time (or the clock's own), else wall time."""
        kind = obj.get("object")
        if kind == "test_helpers.test_clock":
            return int(obj["frozen_time"])
        if kind == "customer":
            clock = self.store.get("test_helpers.test_clock", obj["test_clock"]) if obj.get("test_clock") else None
            return self.now() if clock is None else int(clock["frozen_time"])
        customer = obj.get("customer")
        return self.now_for(customer) if isinstance(customer, str) else self.now()

    def url(self, path: str) -> str:
        return f"{self.public_url}{path}"

    # Events ---------------------------------------------------------------------------------

    def on_event(self, listener: EventListener) -> None:
        """`listener(event, endpoint_ids)` for every new event, with the endpoints it is to be delivered to."""
        self._listeners.append(listener)

    def endpoints_for(self, event_type: str) -> list[str]:
        return [
            endpoint["id"]
            for endpoint in self.store.all("webhook_endpoint")
            if endpoint["status"] == "enabled" and matches(endpoint["enabled_events"], event_type)
        ]

    def emit(self, event_type: str, obj: Mapping[str, Any], previous: Mapping[str, Any] | None = None) -> Obj:
        """Record an event with a snapshot of `obj` now, and hand it to the webhook dispatcher."""
        request = current_request.get() or RequestInfo()
        endpoints = self.endpoints_for(event_type)
        event = objects.event(
            event_id=ids.new_id("event"),
            created=self.time_of(obj),
            event_type=event_type,
            api_version=self.api_version,
            data_object=obj,
            previous_attributes=previous,
            pending_webhooks=len(endpoints),
            request_id=request.id,
            idempotency_key=request.idempotency_key,
        )
        self.store.add(event)
        log.debug("event", extra={"event_id": event["id"], "type": event_type})
        for listener in self._listeners:
            listener(event, endpoints)
        return event

    def update(self, event_type: str | None, obj: Obj, changes: Mapping[str, Any]) -> Obj:
        """Apply `changes` to `obj`; with an event type, emit it with the previous values of what changed."""
        previous = {key: copy.deepcopy(obj.get(key)) for key, value in changes.items() if obj.get(key) != value}
        obj.update(copy.deepcopy(dict(changes)))
        if event_type is not None and previous:
            self.emit(event_type, obj, previous)
        return obj

    # Timers ---------------------------------------------------------------------------------

    def schedule(self, delay_seconds: float, action: Callable[[], None]) -> None:
        """Run `action` under the lock after a delay, on the running event loop."""
        loop = asyncio.get_running_loop()

        def run() -> None:
            self._timers.discard(handle)
            try:
                with self.lock:
                    action()
            except Exception:
                log.exception("a scheduled sandbox action failed")

        handle = loop.call_later(delay_seconds, run)
        self._timers.add(handle)

    def cancel_timers(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()

    def reset(self) -> None:
        """Forget everything: objects, events, pending timers."""
        self.cancel_timers()
        self.store = Store()
