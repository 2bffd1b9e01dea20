"""Faults a test can put in the way of API requests: hold them until released, or fail them.

- A hold keeps matching requests waiting (after their idempotency key is claimed,
  before they run) until the test releases it: a slow Stripe, a request still in
  flight, on demand and without timing guesses.
- A failure answers the next N matching requests with a status and Stripe's error
  body (500 api_error, 429 rate_limit, ...) without running them: a Stripe outage.

A rule matches on method (or any) and path prefix (or any).
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

from stripe_sandbox.errors import StripeApiError


@dataclass
class Rule:
    id: str
    method: str | None
    path_prefix: str | None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path_prefix is None or path.startswith(self.path_prefix)
        )


@dataclass
class Hold(Rule):
    released: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Failure(Rule):
    status: int = 500
    remaining: int = 1

    def error(self) -> StripeApiError:
        if self.status == 429:
            return StripeApiError(
                "Request rate limit exceeded. (sandbox fault)",
                status=429,
                type="invalid_request_error",
                code="rate_limit",
            )
        return StripeApiError("An unknown error occurred (sandbox fault).", status=self.status, type="api_error")


class Faults:
    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.holds: dict[str, Hold] = {}
        self.failures: dict[str, Failure] = {}

    def hold(self, method: str | None, path_prefix: str | None) -> Hold:
        rule = Hold(f"hold_{next(self._ids)}", method, path_prefix)
        self.holds[rule.id] = rule
        return rule

    def release(self, rule_id: str | None) -> int | None:
        """Release one hold (None: all of them); how many requests were waiting, None for an unknown hold."""
        if rule_id is None:
            chosen = list(self.holds.values())
            self.holds.clear()
        elif rule_id in self.holds:
            chosen = [self.holds.pop(rule_id)]
        else:
            return None
        waiting = 0
        for rule in chosen:
            waiting += len(rule.waiting)
            rule.released.set()
        return waiting

    def fail(self, method: str | None, path_prefix: str | None, status: int, count: int) -> Failure:
        rule = Failure(f"fail_{next(self._ids)}", method, path_prefix, status=status, remaining=count)
        self.failures[rule.id] = rule
        return rule

    def injected_failure(self, method: str, path: str) -> StripeApiError | None:
        for rule in list(self.failures.values()):
            if rule.matches(method, path):
                rule.remaining -= 1
                if rule.remaining <= 0:
                    del self.failures[rule.id]
                return rule.error()
        return None

    async def wait_if_held(self, method: str, path: str, idempotency_key: str | None) -> None:
        for rule in list(self.holds.values()):
            if rule.matches(method, path):
                entry = {"method": method, "path": path, "idempotency_key": idempotency_key}
                rule.waiting.append(entry)
                try:
                    await rule.released.wait()
                finally:
                    rule.waiting.remove(entry)

    def held_requests(self) -> list[dict[str, Any]]:
        return [{**entry, "hold": rule.id} for rule in self.holds.values() for entry in rule.waiting]

    def clear(self) -> None:
        self.release(None)
        self.failures.clear()

    def describe(self) -> dict[str, Any]:
        return {
            "object": "sandbox.faults",
            "holds": [
                {"id": rule.id, "method": rule.method, "path_prefix": rule.path_prefix, "waiting": len(rule.waiting)}
                for rule in self.holds.values()
            ],
            "failures": [
                {
                    "id": rule.id,
                    "method": rule.method,
                    "path_prefix": rule.path_prefix,
                    "status": rule.status,
                    "remaining": rule.remaining,
                }
                for rule in self.failures.values()
            ],
            "held_requests": self.held_requests(),
        }
