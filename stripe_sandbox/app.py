"""`build(settings)`: the sandbox wired together (state, webhooks, API, pages, control); nothing is built at import."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import stripe
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from stripe_sandbox import checkout, hosted, routes
from stripe_sandbox.api import Api
from stripe_sandbox.config import SandboxSettings
from stripe_sandbox.control import PREFIX, Control
from stripe_sandbox.faults import Faults
from stripe_sandbox.idempotency import IdempotencyStore
from stripe_sandbox.routes import webhook_endpoints
from stripe_sandbox.sandbox import Sandbox
from stripe_sandbox.webhooks import Dispatcher, RetryPolicy

log = logging.getLogger("stripe_sandbox")
EXPIRY_SWEEP_SECONDS = 1.0
# The API version the sandbox speaks: the one the project's `stripe` library pins.
API_VERSION = str(stripe.api_version)


class SandboxApp:
    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self.sandbox = Sandbox(
            public_url=settings.public_base(settings.port),
            api_version=API_VERSION,
            async_delay_seconds=settings.async_delay_seconds,
        )
        self.dispatcher = Dispatcher(
            self.sandbox,
            RetryPolicy(
                base_delay_seconds=settings.webhook_retry_base_seconds,
                factor=settings.webhook_retry_factor,
                max_attempts=settings.webhook_max_attempts,
                max_delay_seconds=settings.webhook_retry_max_seconds,
                timeout_seconds=settings.webhook_timeout_seconds,
            ),
        )
        self.idempotency = IdempotencyStore()
        self.faults = Faults()
        self.api = Api(self.sandbox, settings.secret_key.get_secret_value(), self.idempotency, self.faults)
        self.control = Control(self.sandbox, self.dispatcher, self.idempotency, self.faults, self.register_endpoint)
        self.register_endpoint()
        self.asgi = Starlette(
            routes=[
                *self.api.routes(routes.endpoints()),
                *self.api.routes(self.control.endpoints()),
                self.api.unrecognized_route("/v1"),
                self.api.unrecognized_route(PREFIX),
                *hosted.routes(self.sandbox),
                Route("/healthz", self.health, methods=["GET"]),
            ],
            lifespan=self.lifespan,
        )

    def register_endpoint(self) -> None:
        """The endpoint from settings (STRIPE_SANDBOX_WEBHOOK_URL), receiving every event."""
        secret = self.settings.signing_secret()
        if self.settings.webhook_url is None or secret is None:
            return
        endpoint = webhook_endpoints.register(
            self.sandbox,
            url=self.settings.webhook_url,
            enabled_events=["*"],
            secret=secret,
            description="from STRIPE_SANDBOX_WEBHOOK_URL",
        )
        log.info("webhook endpoint registered", extra={"endpoint_id": endpoint["id"], "url": endpoint["url"]})

    def listening(self, port: int) -> None:
        """Called once the server is bound: hosted-page URLs now carry the real port."""
        self.sandbox.public_url = self.settings.public_base(port)

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _expire_sessions(self) -> None:
        while True:
            await asyncio.sleep(EXPIRY_SWEEP_SECONDS)
            try:
                with self.sandbox.lock:
                    checkout.expire_due(self.sandbox)
            except Exception:
                log.exception("expiring checkout sessions failed")

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        sweeper = asyncio.get_running_loop().create_task(self._expire_sessions(), name="expire-sessions")
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            self.sandbox.cancel_timers()
            await self.dispatcher.close()


def build(settings: SandboxSettings) -> SandboxApp:
    return SandboxApp(settings)
