"""Webhook delivery: events signed as Stripe signs them, POSTed to every enabled endpoint, retried.

Signature: `Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`
with the endpoint's `whsec_...` secret, over the exact bytes sent.

Normal delivery: one worker per endpoint sends that endpoint's events in creation
order, each retried with exponential backoff after a non-2xx answer, a timeout or
a connection failure, until it succeeds or the attempts run out. Deliveries run
as asyncio tasks and never hold up the API call that caused the event.

For tests, delivery can be paused (events are held, in creation order) and the
held deliveries flushed in order, in reverse or shuffled with a seed, each one
sent N times, concurrently or one after another; one event can be redelivered N
times. Every attempt is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import hmac
import json
import logging
import random
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from stripe_sandbox.sandbox import Sandbox

log = logging.getLogger(__name__)

USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
CONTENT_TYPE = "application/json; charset=utf-8"
MAX_ATTEMPTS_KEPT = 10_000
MAX_RESPONSE_HEAD_BYTES = 64 * 1024


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """The `Stripe-Signature` header value for these exact bytes."""
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class DeliveryFailed(Exception):
    """The endpoint could not be reached or did not answer an HTTP status in time."""


async def post(url: str, body: bytes, headers: Mapping[str, str], limit_seconds: float) -> int:
    """POST `body` to `url` over HTTP/1.1 and return the status code. The response body is not needed."""
    try:
        parts = urlsplit(url)
        secure = parts.scheme == "https"
        port = parts.port or (443 if secure else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.netloc.rsplit("@", 1)[-1]
        lines = [f"POST {target} HTTP/1.1", f"Host: {host}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
        head_bytes = "\r\n".join(lines).encode("ascii")
    except (ValueError, UnicodeError) as error:
        raise DeliveryFailed(f"cannot send to {url!r}: {error}") from error
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DeliveryFailed(f"not an http(s) URL: {url}")
    try:
        async with asyncio.timeout(limit_seconds):
            reader, writer = await asyncio.open_connection(
                parts.hostname, port, ssl=ssl.create_default_context() if secure else None
            )
            try:
                writer.write(head_bytes + body)
                await writer.drain()
                status_line = await reader.readline()
                # Read the head so the server is not reset mid-answer; the body is not needed.
                head = 0
                while head < MAX_RESPONSE_HEAD_BYTES:
                    line = await reader.readline()
                    head += len(line)
                    if line in (b"\r\n", b"\n", b""):
                        break
            finally:
                writer.close()
                with contextlib.suppress(OSError, ssl.SSLError):
                    await writer.wait_closed()
    except TimeoutError as error:
        raise DeliveryFailed(f"no answer within {limit_seconds:g}s") from error
    except (OSError, ssl.SSLError) as error:
        raise DeliveryFailed(f"{type(error).__name__}: {error}") from error
    fields = status_line.split(None, 2)
    if len(fields) < 2 or not fields[0].startswith(b"HTTP/") or not fields[1].isdigit():
        raise DeliveryFailed(f"not an HTTP answer: {status_line[:80]!r}")
    return int(fields[1])


Poster = Callable[[str, bytes, Mapping[str, str], float], Awaitable[int]]


@dataclass(frozen=True)
class RetryPolicy:
    base_delay_seconds: float = 0.5
    factor: float = 2.0
    max_attempts: int = 8
    max_delay_seconds: float = 60.0
    timeout_seconds: float = 10.0

    def delay(self, failed_attempts: int) -> float:
        """How long to wait after the n-th failed attempt."""
        return float(min(self.base_delay_seconds * self.factor ** (failed_attempts - 1), self.max_delay_seconds))


@dataclass
class Attempt:
    event_id: str
    event_type: str
    endpoint_id: str
    url: str
    attempt: int
    started_at: float
    finished_at: float | None = None
    status: int | None = None
    error: str | None = None
    succeeded: bool = False
    # Which flush or redelivery sent it ("live" for normal delivery).
    via: str = "live"

    def as_json(self) -> dict[str, Any]:
        return {"object": "sandbox.delivery_attempt", **asdict(self)}


@dataclass(frozen=True)
class Delivery:
    event_id: str
    endpoint_id: str


class Order(enum.Enum):
    CREATED = "created"
    REVERSE = "reverse"
    SHUFFLE = "shuffle"


class Dispatcher:
    def __init__(self, sandbox: Sandbox, policy: RetryPolicy, poster: Poster = post) -> None:
        self.sandbox = sandbox
        self.policy = policy
        self.poster = poster
        self.paused = False
        self.held: list[Delivery] = []
        self.attempts: deque[Attempt] = deque(maxlen=MAX_ATTEMPTS_KEPT)
        self._queues: dict[str, asyncio.Queue[Delivery]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._targets: dict[str, list[str]] = {}
        self._delivered: set[Delivery] = set()
        self._busy = 0
        sandbox.on_event(self.enqueue)

    # Called by Sandbox.emit, under the sandbox lock, on the event loop.
    def enqueue(self, event: Mapping[str, Any], endpoint_ids: list[str]) -> None:
        self._targets[event["id"]] = list(endpoint_ids)
        for endpoint_id in endpoint_ids:
            delivery = Delivery(event["id"], endpoint_id)
            if self.paused:
                self.held.append(delivery)
            else:
                self._queue(endpoint_id).put_nowait(delivery)

    def _queue(self, endpoint_id: str) -> asyncio.Queue[Delivery]:
        queue = self._queues.get(endpoint_id)
        if queue is None:
            queue = self._queues[endpoint_id] = asyncio.Queue()
            self._workers[endpoint_id] = asyncio.get_running_loop().create_task(
                self._work(endpoint_id, queue), name=f"webhooks-{endpoint_id}"
            )
        return queue

    async def _work(self, endpoint_id: str, queue: asyncio.Queue[Delivery]) -> None:
        while True:
            delivery = await queue.get()
            try:
                await self.deliver(delivery, via="live")
            except Exception:
                log.exception("webhook delivery crashed", extra={"event_id": delivery.event_id})
            finally:
                queue.task_done()

    # Delivery ---------------------------------------------------------------------------------

    async def deliver(self, delivery: Delivery, *, via: str) -> bool:
        """Send one delivery, retrying with backoff; True once the endpoint answered 2xx."""
        self._busy += 1
        try:
            for attempt in range(1, self.policy.max_attempts + 1):
                outcome = await self._attempt(delivery, attempt, via)
                if outcome is not False:
                    return outcome is True
                if attempt < self.policy.max_attempts:
                    await asyncio.sleep(self.policy.delay(attempt))
            log.warning(
                "webhook delivery abandoned",
                extra={"event_id": delivery.event_id, "endpoint_id": delivery.endpoint_id},
            )
            return False
        finally:
            self._busy -= 1

    async def _attempt(self, delivery: Delivery, number: int, via: str) -> bool | None:
        """True: delivered; False: failed (retry); None: nothing to send (the endpoint or event is gone)."""
        with self.sandbox.lock:
            store = self.sandbox.store
            endpoint = store.get("webhook_endpoint", delivery.endpoint_id)
            event = store.get("event", delivery.event_id)
            secret = store.endpoint_secrets.get(delivery.endpoint_id)
            if endpoint is None or event is None or secret is None or endpoint["status"] != "enabled":
                return None
            url = endpoint["url"]
            payload = json.dumps(event, indent=2).encode("utf-8")
        timestamp = self.sandbox.now()
        headers = {
            "User-Agent": USER_AGENT,
            "Content-Type": CONTENT_TYPE,
            "Accept": "*/*; q=0.5, application/xml",
            "Cache-Control": "no-cache",
            "Stripe-Signature": sign(payload, secret, timestamp),
        }
        record = Attempt(
            event_id=delivery.event_id,
            event_type=event["type"],
            endpoint_id=delivery.endpoint_id,
            url=url,
            attempt=number,
            started_at=time.time(),
            via=via,
        )
        self.attempts.append(record)
        try:
            record.status = await self.poster(url, payload, headers, self.policy.timeout_seconds)
        except DeliveryFailed as error:
            record.error = str(error)
        record.finished_at = time.time()
        record.succeeded = record.status is not None and 200 <= record.status < 300
        log.info(
            "webhook delivered" if record.succeeded else "webhook delivery failed",
            extra={
                "event_id": record.event_id,
                "event_type": record.event_type,
                "endpoint_id": record.endpoint_id,
                "attempt": number,
                "status": record.status,
                "error": record.error,
            },
        )
        if record.succeeded:
            self._mark_delivered(delivery)
        return record.succeeded

    def _mark_delivered(self, delivery: Delivery) -> None:
        if delivery in self._delivered:
            return
        self._delivered.add(delivery)
        with self.sandbox.lock:
            event = self.sandbox.store.get("event", delivery.event_id)
            if event is not None and event["pending_webhooks"] > 0:
                event["pending_webhooks"] -= 1

    # Control -------------------------------------------------------------------------------------

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> int:
        """Deliver what is held, in creation order per endpoint, and stop holding; how many were held."""
        self.paused = False
        held, self.held = self.held, []
        for delivery in held:
            self._queue(delivery.endpoint_id).put_nowait(delivery)
        return len(held)

    def flush(
        self, *, order: Order, seed: int | None, copies: int, concurrent: bool
    ) -> tuple[list[Delivery], asyncio.Task[list[bool]]]:
        """Send what is held as told (delivery stays paused); the plan and the task sending it."""
        held, self.held = self.held, []
        if order is Order.REVERSE:
            held.reverse()
        elif order is Order.SHUFFLE:
            random.Random(seed).shuffle(held)
        plan = [delivery for delivery in held for _ in range(copies)]
        return plan, self._run(plan, concurrent=concurrent, via=f"flush:{order.value}")

    def redeliver(
        self, event_id: str, *, copies: int, concurrent: bool, endpoint_id: str | None
    ) -> tuple[list[Delivery], asyncio.Task[list[bool]]]:
        if endpoint_id is not None:
            endpoints = [endpoint_id]
        else:
            # The endpoints it was sent to; for an event older than every endpoint, those that match it now.
            event = self.sandbox.store.get("event", event_id)
            endpoints = self._targets.get(event_id) or (self.sandbox.endpoints_for(event["type"]) if event else [])
        plan = [Delivery(event_id, target) for target in endpoints for _ in range(copies)]
        return plan, self._run(plan, concurrent=concurrent, via="redeliver")

    def _run(self, plan: Sequence[Delivery], *, concurrent: bool, via: str) -> asyncio.Task[list[bool]]:
        async def run() -> list[bool]:
            if concurrent:
                return list(await asyncio.gather(*(self.deliver(delivery, via=via) for delivery in plan)))
            return [await self.deliver(delivery, via=via) for delivery in plan]

        task = asyncio.get_running_loop().create_task(run(), name=via)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def status(self) -> dict[str, Any]:
        queued = sum(queue.qsize() for queue in self._queues.values())
        return {
            "object": "sandbox.webhooks",
            "paused": self.paused,
            "held": len(self.held),
            "queued": queued,
            "in_flight": self._busy,
            "idle": not self.held and queued == 0 and self._busy == 0,
            "attempts": len(self.attempts),
        }

    async def close(self) -> None:
        tasks = [*self._workers.values(), *self._tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers.clear()
        self._queues.clear()
        self._tasks.clear()

    async def reset(self) -> None:
        await self.close()
        self.paused = False
        self.held.clear()
        self.attempts.clear()
        self._targets.clear()
        self._delivered.clear()
        self._busy = 0
