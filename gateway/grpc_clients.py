"""The gateway's side of gRPC: one channel per service, and calls with deadline and metadata.

Channels are opened in the application's lifespan (inside the running event
loop) and closed at shutdown. Every call carries the request's trace context
(`traceparent`, svckit.tracing) beside its request id. Each carries a retry policy for UNAVAILABLE:
reads are safe to repeat and every mutating call carries an idempotency key,
so a retried call takes effect at most once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from billing.credits.v1 import credits_pb2, credits_pb2_grpc
from billing.payments.v1 import payments_pb2, payments_pb2_grpc
from billing.subscriptions.v1 import subscriptions_pb2, subscriptions_pb2_grpc
from gateway.config import GatewaySettings
from gateway.problems import problem_from_rpc
from svckit import tracing
from svckit.grpc_errors import RpcErrorDetails
from svckit.service_client import channel_options

log = logging.getLogger(__name__)
Req = TypeVar("Req")
Resp = TypeVar("Resp")

REPLAYED_TRAILER = "idempotent-replayed"
# Full gRPC service names, as registered with each server's health service.
SERVICE_NAMES: Mapping[str, str] = {
    "credits": credits_pb2.DESCRIPTOR.services_by_name["CreditsService"].full_name,
    "payments": payments_pb2.DESCRIPTOR.services_by_name["PaymentsService"].full_name,
    "subscriptions": subscriptions_pb2.DESCRIPTOR.services_by_name["SubscriptionsService"].full_name,
}
# A readiness probe must answer quickly even when a service hangs.
HEALTH_CHECK_SECONDS = 1.0
HEALTH_STATUS_NAMES: Mapping[int, str] = {
    health_pb2.HealthCheckResponse.UNKNOWN: "UNKNOWN",
    health_pb2.HealthCheckResponse.SERVING: "SERVING",
    health_pb2.HealthCheckResponse.NOT_SERVING: "NOT_SERVING",
    health_pb2.HealthCheckResponse.SERVICE_UNKNOWN: "SERVICE_UNKNOWN",
}


def retry_policy(service_name: str) -> dict[str, Any]:
    """gRPC service config: retry UNAVAILABLE a few times with backoff, within the call's deadline."""
    return {
        "methodConfig": [
            {
                "name": [{"service": service_name}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }


@dataclass(frozen=True)
class Caller:
    """Who a gRPC call is made for, and under which request id and idempotency key."""

    request_id: str
    actor: str
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Reply(Generic[Resp]):
    message: Resp
    # True when the service answered from its idempotency record (the effect happened earlier).
    replayed: bool


@dataclass(frozen=True)
class ServiceStatus:
    target: str
    status: str
    error: str | None = None

    @property
    def serving(self) -> bool:
        return self.status == "SERVING"


class NotOpen(RuntimeError):
    def __init__(self) -> None:
        super().__init__("the gRPC channels are not open (outside the application's lifespan)")


class Backends:
    """The gRPC channels to the services, and how calls to them are made."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.targets: Mapping[str, str] = {
            "credits": settings.credits_target,
            "payments": settings.payments_target,
            "subscriptions": settings.subscriptions_target,
        }
        self.token = settings.service_token.get_secret_value()
        self.deadline = settings.grpc_deadline_seconds
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._credits: credits_pb2_grpc.CreditsServiceAsyncStub | None = None
        self._payments: payments_pb2_grpc.PaymentsServiceAsyncStub | None = None
        self._subscriptions: subscriptions_pb2_grpc.SubscriptionsServiceAsyncStub | None = None

    async def open(self) -> None:
        """Create the channels; they connect on first use and reconnect on their own."""
        for name, target in self.targets.items():
            self._channels[name] = grpc.aio.insecure_channel(
                target, options=channel_options(retry_policy(SERVICE_NAMES[name]))
            )
        self._credits = credits_pb2_grpc.CreditsServiceStub(self._channels["credits"])
        self._payments = payments_pb2_grpc.PaymentsServiceStub(self._channels["payments"])
        self._subscriptions = subscriptions_pb2_grpc.SubscriptionsServiceStub(self._channels["subscriptions"])

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        self._credits, self._payments, self._subscriptions = None, None, None
        await asyncio.gather(*(channel.close(grace=None) for channel in channels))

    def _channel(self, name: str) -> grpc.aio.Channel:
        try:
            return self._channels[name]
        except KeyError:
            raise NotOpen from None

    @property
    def credits(self) -> credits_pb2_grpc.CreditsServiceAsyncStub:
        if self._credits is None:
            raise NotOpen
        return self._credits

    @property
    def payments(self) -> payments_pb2_grpc.PaymentsServiceAsyncStub:
        if self._payments is None:
            raise NotOpen
        return self._payments

    @property
    def subscriptions(self) -> subscriptions_pb2_grpc.SubscriptionsServiceAsyncStub:
        if self._subscriptions is None:
            raise NotOpen
        return self._subscriptions

    def metadata(self, caller: Caller) -> tuple[tuple[str, str], ...]:
        pairs = [
            ("authorization", f"Bearer {self.token}"),
            ("x-request-id", caller.request_id),
            ("x-actor", caller.actor),
        ]
        if caller.idempotency_key is not None:
            pairs.append(("idempotency-key", caller.idempotency_key))
        pairs.extend(tracing.inject())
        return tuple(pairs)

    async def call(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[Req, Resp],
        request: Req,
        caller: Caller,
        *,
        deadline: float | None = None,
    ) -> Reply[Resp]:
        """One unary call with the deadline (the gateway's unless given) and metadata; a failure is raised
        as the Problem to answer."""
        call = method(request, metadata=self.metadata(caller), timeout=deadline or self.deadline)
        try:
            response = await call
            trailing = await call.trailing_metadata()
        except grpc.aio.AioRpcError as error:
            details = RpcErrorDetails.from_error(error)
            problem = problem_from_rpc(details, caller.request_id)
            if problem.status >= 500:
                # The caller sees only the request id; the cause stays here.
                cause = {"grpc_code": details.code.name, "grpc_reason": details.reason, "grpc_message": details.message}
                log.warning("service call failed", extra=cause)
            raise problem from error
        replayed = any(key == REPLAYED_TRAILER and value == "true" for key, value in trailing or ())
        return Reply(response, replayed)

    async def health(self, request_id: str) -> dict[str, ServiceStatus]:
        """Each service's gRPC health, checked concurrently with a short deadline."""
        names = list(self.targets)
        statuses = await asyncio.gather(*(self._check(name, request_id) for name in names))
        return dict(zip(names, statuses, strict=True))

    async def _check(self, name: str, request_id: str) -> ServiceStatus:
        stub = health_pb2_grpc.HealthStub(self._channel(name))
        target = self.targets[name]
        try:
            response = await stub.Check(
                health_pb2.HealthCheckRequest(service=SERVICE_NAMES[name]),
                timeout=min(HEALTH_CHECK_SECONDS, self.deadline),
                metadata=(("x-request-id", request_id), *tracing.inject()),
            )
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.NOT_FOUND:
                return ServiceStatus(target, "SERVICE_UNKNOWN")
            return ServiceStatus(target, "UNREACHABLE", error.code().name)
        return ServiceStatus(target, HEALTH_STATUS_NAMES.get(response.status, "UNKNOWN"))
