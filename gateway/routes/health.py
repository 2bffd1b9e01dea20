"""Probes: `/healthz` (the process answers) and `/readyz` (every service's gRPC health is SERVING)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.grpc_clients import Backends, ServiceStatus
from gateway.openapi import Operation, Reply
from gateway.routes.common import json_response
from gateway.schemas import Liveness, Readiness, ServiceHealth, ServicesHealth
from svckit import logs


def _health(status: ServiceStatus) -> ServiceHealth:
    return ServiceHealth.model_validate({"target": status.target, "status": status.status, "error": status.error})


def operations(backends: Backends) -> list[Operation]:
    async def healthz(request: Request) -> Response:
        return json_response(Liveness(status="ok"))

    async def readyz(request: Request) -> Response:
        statuses = await backends.health(logs.request_id_var.get())
        ready = all(status.serving for status in statuses.values())
        body = Readiness(
            status="ready" if ready else "not_ready",
            services=ServicesHealth(
                credits=_health(statuses["credits"]),
                payments=_health(statuses["payments"]),
                subscriptions=_health(statuses["subscriptions"]),
            ),
        )
        return json_response(body, status=200 if ready else 503)

    return [
        Operation(
            method="GET",
            path="/healthz",
            operation_id="getLiveness",
            summary="The gateway process is alive",
            tags=("health",),
            handler=healthz,
            authenticated=False,
            replies=(Reply(200, "Alive.", Liveness),),
        ),
        Operation(
            method="GET",
            path="/readyz",
            operation_id="getReadiness",
            summary="Every service answers its gRPC health check with SERVING",
            description="The three services are checked concurrently, each with a deadline of one second.",
            tags=("health",),
            handler=readyz,
            authenticated=False,
            replies=(
                Reply(200, "Ready: every service is SERVING.", Readiness),
                Reply(503, "Not ready: at least one service is not SERVING.", Readiness),
            ),
        ),
    ]
