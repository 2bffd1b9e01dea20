"""`create_app(settings)`: the Starlette application, wired; nothing is built at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from gateway.auth import TokenVerifier
from gateway.config import GatewaySettings
from gateway.grpc_clients import Backends
from gateway.metrics import GatewayMetrics
from gateway.middleware import RequestContextMiddleware
from gateway.openapi import Operation, openapi_operation
from gateway.problems import Problem, handle_http_exception, handle_problem
from gateway.routes import (
    admin,
    admin_reconciliation,
    admin_reports,
    credits,
    health,
    pages,
    payments,
    subscriptions,
    webhooks,
)


def api_operations(backends: Backends, verifier: TokenVerifier, settings: GatewaySettings) -> list[Operation]:
    operations = [
        *health.operations(backends),
        *credits.operations(backends, verifier),
        *admin.operations(backends, verifier, settings.max_body_bytes),
        *admin_reports.operations(backends, verifier),
        *admin_reconciliation.operations(backends, verifier, settings.max_body_bytes),
        *payments.operations(backends, verifier, settings.max_body_bytes, settings.allowed_redirect_origins),
        *subscriptions.operations(backends, verifier, settings.max_body_bytes, settings.allowed_redirect_origins),
        *webhooks.operations(
            backends,
            [secret.get_secret_value() for secret in settings.stripe_webhook_secrets],
            settings.stripe_webhook_tolerance_seconds,
            settings.max_webhook_bytes,
        ),
        *pages.operations(),
    ]
    return [*operations, openapi_operation(operations)]


def create_app(settings: GatewaySettings, metrics: GatewayMetrics | None = None) -> Starlette:
    """The application; its metrics (a registry of their own unless given) are `app.state.metrics`."""
    metrics = metrics or GatewayMetrics()
    backends = Backends(settings)
    verifier = TokenVerifier.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await backends.open()
        try:
            yield
        finally:
            await backends.close()

    app = Starlette(
        routes=[op.route() for op in api_operations(backends, verifier, settings)],
        middleware=[Middleware(RequestContextMiddleware, metrics=metrics)],
        exception_handlers={Problem: handle_problem, HTTPException: handle_http_exception},
        lifespan=lifespan,
    )
    app.state.metrics = metrics
    return app
