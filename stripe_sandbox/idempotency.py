"""`Idempotency-Key` as Stripe honours it, per API key, for POST requests.

- The first request with a key runs; its response (status, body, headers) is kept
  for 24 hours, unless it failed validation (an `invalid_request_error`), which
  Stripe does not save either: the key can then be used again.
- The same key with the same endpoint and parameters replays that response,
  with `Idempotent-Replayed: true`.
- The same key on another endpoint or with other parameters: 400 idempotency_error.
- The same key while the first request is still running: 409 idempotency_error.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from stripe_sandbox.errors import idempotency_in_flight, idempotency_reused

RETENTION_SECONDS = 24 * 60 * 60
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class SavedResponse:
    status: int
    body: bytes
    headers: Mapping[str, str]


@dataclass
class _Record:
    endpoint: str
    parameters: str
    created: float
    response: SavedResponse | None = None
    done: bool = False


class IdempotencyStore:
    def __init__(self, retention_seconds: float = RETENTION_SECONDS, clock: Callable[[], float] = time.time) -> None:
        self.retention_seconds = retention_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._records: OrderedDict[tuple[str, str], _Record] = OrderedDict()

    @staticmethod
    def fingerprint(params: Mapping[str, Any]) -> str:
        return json.dumps(params, sort_keys=True, separators=(",", ":"))

    def begin(self, api_key: str, key: str, endpoint: str, params: Mapping[str, Any]) -> SavedResponse | None:
        """The saved response to replay, or None when this request is the one to run (it must `finish`)."""
        parameters = self.fingerprint(params)
        with self._lock:
            now = self.clock()
            self._expire(now)
            record = self._records.get((api_key, key))
            if record is None:
                self._records[(api_key, key)] = _Record(endpoint=endpoint, parameters=parameters, created=now)
                return None
            if record.endpoint != endpoint:
                raise idempotency_reused(key, "endpoint")
            if record.parameters != parameters:
                raise idempotency_reused(key, "parameters")
            if not record.done:
                raise idempotency_in_flight(key)
            return record.response

    def finish(self, api_key: str, key: str, response: SavedResponse | None) -> None:
        """Keep the response for replays; None forgets the key (the request may be sent again)."""
        with self._lock:
            record = self._records.get((api_key, key))
            if record is None:
                return
            if response is None:
                del self._records[(api_key, key)]
            else:
                record.response = response
                record.done = True

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def __len__(self) -> int:
        return len(self._records)

    def _expire(self, now: float) -> None:
        # Records are in creation order: the expired ones are at the front.
        while self._records:
            (oldest_key, oldest) = next(iter(self._records.items()))
            if now - oldest.created < self.retention_seconds:
                break
            del self._records[oldest_key]
