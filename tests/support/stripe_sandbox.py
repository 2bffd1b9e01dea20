"""The Stripe sandbox as a real process for tests, a real webhook receiver, and waiting without sleeps.

- `SandboxProcess`: `python -m stripe_sandbox` on port 0 (a `ManagedProcess`), with a
  `stripe.StripeClient` pointed at it and `control(...)` for its /_sandbox/ API.
- `WebhookReceiver`: an HTTP server on port 0 in a thread that records every delivery
  (raw bytes and headers), verifies each signature with the `stripe` library, and can
  be told to fail some deliveries.
- `wait_until`: poll a condition until a deadline.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import stripe

from tests.support.processes import ManagedProcess

SECRET_KEY = "sk_test_sandbox"
T = TypeVar("T")


def wait_until(condition: Callable[[], T], *, timeout: float = 15.0, interval: float = 0.02, what: str = "") -> T:
    """Poll `condition` until it returns something truthy (returned), or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


class SandboxProcess(ManagedProcess):
    def __init__(self, workdir: Path, **settings: str) -> None:
        super().__init__("stripe_sandbox", workdir, {})
        self.env.update(
            {
                "STRIPE_SANDBOX_PORT": "0",
                "STRIPE_SANDBOX_READY_FILE": str(self.ready_file),
                "STRIPE_SANDBOX_LOG_FORMAT": "json",
                "STRIPE_SANDBOX_LOG_LEVEL": "INFO",
                **{f"STRIPE_SANDBOX_{key.upper()}": value for key, value in settings.items()},
            }
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, *, api_key: str = SECRET_KEY, max_network_retries: int = 0) -> stripe.StripeClient:
        return stripe.StripeClient(
            api_key,
            base_addresses={"api": self.url},
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=30),
        )

    def control(self, verb: str, path: str, /, **params: Any) -> dict[str, Any]:
        """Call the control API (`/_sandbox/...`) through the stripe library; the answer's JSON."""
        response = self.client().raw_request(verb, f"/_sandbox{path}", **params)
        data = json.loads(response.body)
        assert isinstance(data, dict)
        return data


@contextmanager
def running_sandbox(workdir: Path, **settings: str) -> Iterator[SandboxProcess]:
    sandbox = SandboxProcess(workdir, **settings)
    sandbox.start()
    try:
        yield sandbox
    finally:
        status = sandbox.terminate()
        assert status == 0, f"stripe_sandbox exited with {status}:\n{sandbox.logs()}"


@dataclass(frozen=True)
class Delivery:
    body: bytes
    headers: dict[str, str]
    received_at: float
    status: int
    signature_ok: bool
    signature_error: str | None

    @property
    def event(self) -> dict[str, Any]:
        data = json.loads(self.body)
        assert isinstance(data, dict)
        return data


@dataclass
class WebhookReceiver:
    """Answers 200 unless `respond` (event -> status) says otherwise; verifies with `secret` once set."""

    secret: str | None = None
    respond: Callable[[dict[str, Any]], int] = lambda event: 200
    deliveries: list[Delivery] = field(default_factory=list)
    condition: threading.Condition = field(default_factory=threading.Condition)
    port: int = 0
    # While set, requests wait for it before answering (to observe concurrent deliveries).
    gate: threading.Event | None = None
    in_flight: int = 0
    max_in_flight: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhook"

    def record(self, body: bytes, headers: dict[str, str]) -> int:
        ok, error = True, None
        try:
            if self.secret is None:
                raise stripe.SignatureVerificationError(
                    "no secret configured in the test", headers.get("stripe-signature")
                )
            stripe.WebhookSignature.verify_header(body, headers.get("stripe-signature", ""), self.secret, 300)
        except stripe.SignatureVerificationError as problem:
            ok, error = False, str(problem)
        try:
            status = self.respond(json.loads(body)) if ok else 400
        except Exception:
            status = 500
        with self.condition:
            self.deliveries.append(Delivery(body, headers, time.time(), status, ok, error))
            self.condition.notify_all()
        return status

    def wait_for(
        self, predicate: Callable[[list[Delivery]], bool], *, timeout: float = 15.0, what: str = ""
    ) -> list[Delivery]:
        with self.condition:
            if not self.condition.wait_for(lambda: predicate(self.deliveries), timeout=timeout):
                seen = [(d.event.get("type"), d.status) for d in self.deliveries]
                raise AssertionError(f"timed out waiting for {what or predicate}; received {seen}")
            return list(self.deliveries)

    def events(self, *, accepted_only: bool = True) -> list[dict[str, Any]]:
        with self.condition:
            return [d.event for d in self.deliveries if d.status < 300 or not accepted_only]

    def of_types(self, *types: str) -> list[dict[str, Any]]:
        return [event for event in self.events() if event["type"] in types]


@contextmanager
def running_receiver(secret: str | None = None) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(secret=secret)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            with receiver.condition:
                receiver.in_flight += 1
                receiver.max_in_flight = max(receiver.max_in_flight, receiver.in_flight)
            try:
                if receiver.gate is not None:
                    receiver.gate.wait(timeout=10)
                status = receiver.record(body, headers)
            finally:
                with receiver.condition:
                    receiver.in_flight -= 1
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        if receiver.gate is not None:
            receiver.gate.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
