"""W3C trace context with OpenTelemetry: one span per HTTP request and per gRPC call, `traceparent` passed on.

`configure_tracing(service)` installs the SDK's TracerProvider once per process. Spans always exist (so trace
and span ids reach the logs and the next hop); they are exported only when OTEL_EXPORTER_OTLP_ENDPOINT is set
and the package `opentelemetry-exporter-otlp-proto-grpc` is installed (it is not a dependency of the project).

Only the W3C `traceparent`/`tracestate` headers are read and written (no baggage): `extract` takes HTTP headers
or gRPC metadata, `inject` adds the current span's context to outgoing metadata. A malformed `traceparent` is
ignored: the request starts a trace of its own.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Iterable

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

PROPAGATOR = TraceContextTextMapPropagator()
TRACE_HEADERS = frozenset(PROPAGATOR.fields)  # traceparent, tracestate
OTLP_EXPORTER_MODULE = "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"
_ids = RandomIdGenerator()
_configured = False
_tracer: trace.Tracer | None = None


def configure_tracing(service: str) -> None:
    """Install the SDK tracer provider for this process (once); export over OTLP when configured and available."""
    global _configured
    if _configured:
        return
    _configured = True
    provider = TracerProvider(resource=Resource.create({"service.name": f"billing-{service}"}))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        exporter = _otlp_exporter()
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


def _otlp_exporter() -> SpanExporter | None:
    try:
        module = importlib.import_module(OTLP_EXPORTER_MODULE)
    except ImportError:
        log.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but opentelemetry-exporter-otlp-proto-grpc is not installed: "
            "spans are not exported"
        )
        return None
    exporter: SpanExporter = module.OTLPSpanExporter()  # reads the OTEL_EXPORTER_OTLP_* variables itself
    return exporter


def tracer() -> trace.Tracer:
    """The process's tracer (cached once the provider is configured: getting one is not free)."""
    global _tracer
    if _tracer is None:
        if not _configured:
            return trace.get_tracer("billing")
        _tracer = trace.get_tracer("billing")
    return _tracer


def extract(pairs: Iterable[tuple[str, str] | tuple[bytes, bytes]]) -> Context:
    """The remote parent named by `traceparent` in headers (ASGI's bytes) or metadata (an empty context when
    absent or malformed)."""
    carrier: dict[str, str] = {}
    for key, value in pairs:
        name = (key.decode("latin-1") if isinstance(key, bytes) else key).lower()
        if name in TRACE_HEADERS:
            carrier[name] = value.decode("latin-1") if isinstance(value, bytes) else value
    return PROPAGATOR.extract(carrier) if carrier else Context()


def inject() -> list[tuple[str, str]]:
    """`traceparent` (and `tracestate`) of the current span, as metadata pairs; none outside any span."""
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier)
    return list(carrier.items())


def inject_or_start() -> list[tuple[str, str]]:
    """Like `inject`, but outside any span (a background relay) a new trace is started for the call,
    so that the callee's logs still group everything the call caused."""
    pairs = inject()
    if pairs:
        return pairs
    fresh = SpanContext(
        trace_id=_ids.generate_trace_id(),
        span_id=_ids.generate_span_id(),
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, context=trace.set_span_in_context(NonRecordingSpan(fresh)))
    return list(carrier.items())


def current_ids() -> tuple[str, str]:
    """(trace id, span id) of the current span, as lowercase hex; ("-", "-") outside any span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return "-", "-"
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def parent_span_id(parent: Context) -> str:
    """The remote parent's span id in `parent` (from `extract`), or "-"."""
    context = trace.get_current_span(parent).get_span_context()
    return format(context.span_id, "016x") if context.is_valid else "-"
