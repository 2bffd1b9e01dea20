"""The gRPC server every service runs: credentials, request context, errors, health, drain.

`CallInterceptor` wraps every unary method: it checks the caller's service
credential, reads `x-request-id`, `x-actor` and `idempotency-key`, exposes them
through `current_call()` (and to the logs), turns `BillingError` into a status
with google.rpc details and any other exception into INTERNAL, and logs one line
per call. It also opens the call's span, child of the caller's `traceparent`
(svckit.tracing), and counts the call and its duration (svckit.metrics). Health
checks stay open so that Kubernetes' native gRPC probes work.

`GrpcService` starts the server with the standard health and reflection
services, and `run_until_signal` drains it on SIGTERM: health turns
NOT_SERVING, no new call is accepted, calls in flight get the grace period to
finish, and the worker threads finish the transactions they hold. With
`metrics_enabled`, `/metrics` is served on `metrics_port` (its port goes to the
ready file as `metrics_port`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from svckit import logs, tracing
from svckit.actors import Actor, ServiceCredentials, parse_actor
from svckit.errors import BillingError
from svckit.grpc_errors import KIND_TO_CODE, internal_error, to_grpc_status
from svckit.idempotency import IdempotentCall, Outcome
from svckit.metrics import GrpcServerMetrics, MetricsServer
from svckit.ready_file import write_ready_file
from svckit.settings import ServiceSettings

log = logging.getLogger(__name__)
access_log = logging.getLogger("billing.access")
T = TypeVar("T")
M = TypeVar("M", bound=Message)

REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/",)
REPLAYED_TRAILER = "idempotent-replayed"
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
SERVER_MAX_CONNECTION_AGE_MS = 5 * 60 * 1000
SERVER_MAX_CONNECTION_AGE_GRACE_MS = 30 * 1000


@dataclass
class CallContext:
    """What the interceptor learned about the call being served."""

    method: str
    caller: str
    actor: Actor
    request_id: str
    idempotency_key: str | None
    trailers: list[tuple[str, str]] = field(default_factory=list)

    def idempotent(self, request: Any, *, identity: bytes | None = None) -> IdempotentCall:
        """The call's idempotency record key; INVALID_ARGUMENT when the metadata is missing.

        A replay must carry the same request: by default the request's bytes;
        `identity` names what identifies it instead (a Stripe event is its id
        and type, whatever bytes each delivery carries).
        """
        fingerprint = request.SerializeToString(deterministic=True) if identity is None else identity
        return IdempotentCall.for_request(self.caller, self.idempotency_key, self.method, fingerprint)

    def mark_replayed(self, replayed: bool) -> None:
        if replayed:
            self.trailers.append((REPLAYED_TRAILER, "true"))


_current_call: ContextVar[CallContext] = ContextVar("current_call")


def current_call() -> CallContext:
    return _current_call.get()


class CallInterceptor(grpc.aio.ServerInterceptor):
    def __init__(
        self,
        credentials: ServiceCredentials,
        *,
        access_log_enabled: bool = True,
        metrics: GrpcServerMetrics | None = None,
    ) -> None:
        self.credentials = credentials
        self.access_log_enabled = access_log_enabled
        self.metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(details)
        method: str = details.method
        if handler is None or method.startswith(OPEN_METHOD_PREFIXES):
            return handler
        if handler.unary_unary is None:
            return self._streaming(handler, details)
        inner = handler.unary_unary

        async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            return await self._serve(method, inner, request, context)

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _streaming(
        self, handler: grpc.RpcMethodHandler[Any, Any], details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """Streaming methods (reflection) get the credential check only."""
        authorization = next(
            (value for key, value in details.invocation_metadata or () if key == "authorization"), None
        )
        try:
            self.credentials.authenticate(authorization if isinstance(authorization, str) else None)
        except BillingError as error:
            refusal = to_grpc_status(error, uuid.uuid4().hex)

            async def refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
                await context.abort_with_status(refusal)

            if handler.stream_stream is not None:
                return grpc.stream_stream_rpc_method_handler(
                    refuse, handler.request_deserializer, handler.response_serializer
                )
            if handler.unary_stream is not None:
                return grpc.unary_stream_rpc_method_handler(
                    refuse, handler.request_deserializer, handler.response_serializer
                )
            return grpc.stream_unary_rpc_method_handler(
                refuse, handler.request_deserializer, handler.response_serializer
            )
        return handler

    async def _serve(
        self,
        method: str,
        inner: Callable[[Any, Any], Awaitable[Any]],
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> Any:
        metadata = {key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)}
        supplied_id = metadata.get("x-request-id", "")
        request_id = supplied_id if REQUEST_ID_PATTERN.match(supplied_id) else uuid.uuid4().hex
        logs.request_id_var.set(request_id)
        logs.method_var.set(method)
        parent = tracing.extract(metadata.items())
        span = tracing.tracer().start_span(
            method.rpartition("/")[2],
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.method": method, "billing.request_id": request_id},
        )
        attached = otel_context.attach(trace.set_span_in_context(span, parent))
        started = time.perf_counter()
        status = "OK"
        try:
            caller = self.credentials.authenticate(metadata.get("authorization"))
            logs.caller_var.set(caller)
            actor = parse_actor(metadata.get("x-actor"), caller)
            logs.actor_var.set(str(actor))
            call = CallContext(method, caller, actor, request_id, metadata.get("idempotency-key"))
            _current_call.set(call)
            response = await inner(request, context)
            if call.trailers:
                context.set_trailing_metadata(tuple(call.trailers))
            return response
        except grpc.aio.AbortError:
            code = context.code()
            status = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
            raise
        except asyncio.CancelledError:
            status = "CANCELLED"
            raise
        except BillingError as error:
            status = KIND_TO_CODE[error.kind].name
            await context.abort_with_status(to_grpc_status(error, request_id))
        except Exception:
            status = "INTERNAL"
            log.exception("unhandled error in %s", method)
            await context.abort_with_status(internal_error(request_id))
        finally:
            elapsed = time.perf_counter() - started
            if self.metrics is not None:
                self.metrics.observe(method.rpartition("/")[2], status, elapsed)
            if self.access_log_enabled:
                access_log.info(
                    "call",
                    extra={
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                        "parent_span_id": tracing.parent_span_id(parent),
                    },
                )
            span.set_attribute("rpc.grpc.status_code", status)
            if status != "OK":
                span.set_status(Status(StatusCode.ERROR, status))
            span.end()
            otel_context.detach(attached)


async def in_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run blocking work (database transactions) on the worker threads, keeping the log context."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def apply_stripe_event(handle: Callable[..., Outcome], request: Any, response_type: type[M]) -> M:
    """`HandleStripeEvent` of any service: the use case `handle` run keyed by the event, its answer as `response_type`.

    Each delivery of one event may differ in its bytes (`pending_webhooks` counts
    down), so the idempotency record fingerprints the event's id and type, not
    the payload: an event is its id.
    """
    call = current_call()

    def encode(handled: bool) -> bytes:
        data: bytes = response_type(handled=handled).SerializeToString(deterministic=True)
        return data

    outcome = await in_thread(
        handle,
        call.actor,
        event_id=request.event_id,
        event_type=request.event_type,
        payload=request.payload,
        call=call.idempotent(request, identity=f"{request.event_id}\0{request.event_type}".encode()),
        encode=encode,
    )
    call.mark_replayed(outcome.replayed)
    return response_type.FromString(outcome.response)


@dataclass(frozen=True)
class PeriodicTask:
    name: str
    interval_seconds: float
    run: Callable[[], object]  # blocking; runs on a worker thread


@dataclass
class ServiceDefinition:
    """What a service contributes to the shared server."""

    name: str
    # Full names of the gRPC services registered, e.g. "billing.credits.v1.CreditsService".
    service_names: Sequence[str]
    register: Callable[[grpc.aio.Server], None]
    periodic: Sequence[PeriodicTask] = ()
    # Long-running coroutines (an outbox relay) started with the server and cancelled when it stops.
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = ()
    on_stop: Callable[[], None] = lambda: None
    # Read at each scrape of /metrics (the outbox, the ledger's totals).
    collectors: Sequence[Collector] = ()


class GrpcService:
    def __init__(self, settings: ServiceSettings, definition: ServiceDefinition) -> None:
        self.settings = settings
        self.definition = definition
        self.health = health.aio.HealthServicer()
        self.server: grpc.aio.Server | None = None
        self.port: int | None = None
        self._executor = ThreadPoolExecutor(settings.worker_threads, thread_name_prefix=definition.name)
        self._tasks: list[asyncio.Task[None]] = []
        self.registry = CollectorRegistry()
        self.metrics = GrpcServerMetrics(self.registry, definition.name)
        for collector in definition.collectors:
            self.registry.register(collector)
        self.metrics_server: MetricsServer | None = None

    async def start(self) -> int:
        asyncio.get_running_loop().set_default_executor(self._executor)
        server = grpc.aio.server(
            interceptors=[
                CallInterceptor(
                    ServiceCredentials(self.settings.plain_tokens()),
                    access_log_enabled=self.settings.access_log,
                    metrics=self.metrics,
                )
            ],
            options=[
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                # Clients reconnect (and resolve the service's addresses again) at least this often,
                # so that new pods get calls; calls in flight get the grace to finish.
                ("grpc.max_connection_age_ms", SERVER_MAX_CONNECTION_AGE_MS),
                ("grpc.max_connection_age_grace_ms", SERVER_MAX_CONNECTION_AGE_GRACE_MS),
            ],
        )
        self.definition.register(server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (*self.definition.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        address = f"{self.settings.grpc_host}:{self.settings.grpc_port}"
        self.port = server.add_insecure_port(address)
        if not self.port:
            raise RuntimeError(f"cannot listen on {address}")
        await server.start()
        self.server = server
        for name in ("", *self.definition.service_names):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._tasks = [asyncio.create_task(self._repeat(task)) for task in self.definition.periodic]
        self._tasks += [asyncio.create_task(run()) for run in self.definition.background]
        extra: dict[str, int] = {}
        if self.settings.metrics_enabled:
            self.metrics_server = MetricsServer(self.registry, self.settings.grpc_host, self.settings.metrics_port)
            extra["metrics_port"] = self.metrics_server.start()
        if self.settings.ready_file is not None:
            write_ready_file(self.settings.ready_file, self.port, **extra)
        log.info("serving", extra={"address": f"{self.settings.grpc_host}:{self.port}"})
        return self.port

    async def stop(self) -> None:
        """Drain: refuse new calls, let calls in flight finish within the grace period."""
        log.info("draining", extra={"grace_seconds": self.settings.grace_period_seconds})
        await self.health.enter_graceful_shutdown()
        if self.server is not None:
            await self.server.stop(self.settings.grace_period_seconds)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # Transactions already handed to worker threads commit or roll back before we go.
        # (Blocking the loop is fine here: the server no longer serves anything.)
        self._executor.shutdown(wait=True)
        if self.metrics_server is not None:
            self.metrics_server.stop()
        self.definition.on_stop()
        log.info("stopped")

    async def run_until_signal(self) -> None:
        await self.start()
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        await stopping.wait()
        await self.stop()

    async def _repeat(self, task: PeriodicTask) -> None:
        while True:
            await asyncio.sleep(task.interval_seconds)
            try:
                await in_thread(task.run)
            except Exception:
                # A failed housekeeping run is retried at the next interval; the error is logged in full.
                log.exception("periodic task %s failed", task.name)


def run(service: GrpcService) -> None:
    tracing.configure_tracing(service.definition.name)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(service.run_until_signal())
