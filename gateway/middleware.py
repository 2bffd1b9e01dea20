"""Request context around every request: the request id, the trace, metrics, the access log, the last-resort 500.

`RequestContextMiddleware` is pure ASGI and the outermost layer of the app:

- it takes the caller's `X-Request-ID` when it is well formed (`^[A-Za-z0-9_.:-]{1,128}$`)
  or makes one, puts it in `svckit.logs.request_id_var` (so every log line carries it and
  gRPC calls pass it on), and returns it in the `X-Request-ID` response header; the HTTP
  method goes to `svckit.logs.method_var`;
- it opens the request's server span, child of the caller's W3C `traceparent` when one is
  well formed (a new trace otherwise; svckit.tracing), so every log line carries its trace
  and span ids and every gRPC call passes the trace on (gateway.grpc_clients);
- it writes one access-log line per request (method, path, route, status, duration), just
  before the last body chunk leaves, so the line exists by the time the client has the
  response, and counts the request by route template (gateway.metrics);
- an exception nothing else handled becomes a 500 problem with the request id and no
  detail; the traceback goes to the log only.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.metrics import UNMATCHED_ROUTE, GatewayMetrics
from gateway.problems import internal_error
from svckit import logs, tracing

log = logging.getLogger(__name__)
access_log = logging.getLogger("billing.access")

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def request_id_from(supplied: str | None) -> str:
    if supplied is not None and REQUEST_ID_PATTERN.match(supplied):
        return supplied
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The path template of the route that served the request (Starlette puts it in the scope), or `unmatched`."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: GatewayMetrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = next(
            (value.decode("latin-1") for key, value in scope["headers"] if key == b"x-request-id"),
            None,
        )
        request_id = request_id_from(supplied)
        tokens = (logs.request_id_var.set(request_id), logs.method_var.set(scope["method"]))
        parent = tracing.extract(scope["headers"])
        span = tracing.tracer().start_span(
            f"HTTP {scope['method']}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": scope["method"], "billing.request_id": request_id},
        )
        attached = otel_context.attach(trace.set_span_in_context(span, parent))
        started = time.perf_counter()
        status = 0

        async def send_with_context(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                elapsed = time.perf_counter() - started
                route = route_template(scope)
                if self.metrics is not None:
                    self.metrics.observe_request(route, scope["method"], status, elapsed)
                span.update_name(f"{scope['method']} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                access_log.info(
                    "request",
                    extra={
                        "path": scope["path"],
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                        "parent_span_id": tracing.parent_span_id(parent),
                    },
                )
            await send(message)

        try:
            await self.app(scope, receive, send_with_context)
        except Exception:
            log.exception("unhandled error serving %s %s", scope["method"], scope["path"])
            if status:
                # The response had started: nothing sensible can follow; the server drops the connection.
                raise
            await internal_error(request_id).response(request_id)(scope, receive, send_with_context)
        finally:
            span.end()
            otel_context.detach(attached)
            logs.request_id_var.reset(tokens[0])
            logs.method_var.reset(tokens[1])
