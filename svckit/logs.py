"""Structured logs that carry the request id of the call being served.

The request id (and caller, actor, method) live in context variables set by the
server interceptor; a logging filter copies them onto every record, with the
trace and span ids of the current OpenTelemetry span (svckit.tracing), so any
`logging.getLogger(__name__).info(...)` inside a call is correlated.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

from svckit import tracing

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
caller_var: ContextVar[str] = ContextVar("caller", default="-")
actor_var: ContextVar[str] = ContextVar("actor", default="-")
method_var: ContextVar[str] = ContextVar("method", default="-")


class RequestContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn adds an ANSI-coloured copy of its message; the plain one is enough.
        record.__dict__.pop("color_message", None)
        record.service = self.service
        record.request_id = request_id_var.get()
        record.caller = caller_var.get()
        record.actor = actor_var.get()
        record.method = method_var.get()
        record.trace_id, record.span_id = tracing.current_ids()
        return True


def configure_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestContextFilter(service))
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "{levelname}{name}{message}{service}{request_id}{trace_id}{span_id}{caller}{actor}{method}",
                style="{",
                rename_fields={"levelname": "level", "name": "logger"},
                timestamp="time",
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s %(service)s [%(request_id)s %(trace_id)s] %(name)s: %(message)s"
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
