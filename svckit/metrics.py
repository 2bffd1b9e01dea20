"""Prometheus metrics of one process: its own registry, the gRPC server's counters, the outbox collector,
and the small HTTP server that exposes `/metrics` on a port of its own.

Each process builds one `CollectorRegistry` (never the library's global one), so tests can hold several.
Collectors that read a database (`OutboxCollector`, the ledger's in credits_svc) run at scrape time on the
metrics server's thread, with a short statement timeout; a failed read is reported as a metric, never as a
failed scrape.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine, Table, func, select, text

log = logging.getLogger(__name__)

# Seconds: from a cached read (1 ms) to a call at the default deadline (5 s) and beyond.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# A scrape must answer quickly even when the database does not.
SCRAPE_QUERY_TIMEOUT_MS = 2000


class GrpcServerMetrics:
    """Calls served, per method and status code, and how long they took."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.service = service
        self.handled = Counter(
            "billing_grpc_server_handled",
            "gRPC calls completed by the server, by method and status code.",
            ["service", "method", "code"],
            registry=registry,
        )
        self.seconds = Histogram(
            "billing_grpc_server_handling_seconds",
            "Time the server took to answer a gRPC call, by method.",
            ["service", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def observe(self, method: str, code: str, seconds: float) -> None:
        self.handled.labels(self.service, method, code).inc()
        self.seconds.labels(self.service, method).observe(seconds)


def statement_timeout(conn: Connection, milliseconds: int = SCRAPE_QUERY_TIMEOUT_MS) -> None:
    """Bound the statements of this transaction (PostgreSQL; SQLite has no such setting)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"SET LOCAL statement_timeout = {int(milliseconds)}"))


def read_at_scrape(engine: Engine, query: Callable[[Connection], Any]) -> Any:
    """Run `query` in a short read-only transaction bounded by the scrape timeout."""
    with engine.connect() as conn, conn.begin():
        statement_timeout(conn)
        return query(conn)


@dataclass(frozen=True)
class OutboxState:
    pending: int
    dead: int
    oldest_pending_age_seconds: float


def read_outbox(conn: Connection, table: Table, now: datetime) -> OutboxState:
    t = table
    rows = conn.execute(
        select(t.c.state, func.count(), func.min(t.c.created_at))
        .where(t.c.state.in_(("pending", "dead")))
        .group_by(t.c.state)
    ).all()
    counts = {row[0]: (int(row[1]), row[2]) for row in rows}
    pending, oldest = counts.get("pending", (0, None))
    age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    return OutboxState(pending=pending, dead=counts.get("dead", (0, None))[0], oldest_pending_age_seconds=age)


class OutboxCollector(Collector):
    """`billing_outbox_messages{state}` and the age of the oldest pending message, read at scrape time."""

    def __init__(self, service: str, engine: Engine, table: Table) -> None:
        self.service = service
        self.engine = engine
        self.table = table

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "billing_outbox_messages",
                "Outbox messages not sent: pending (the relay will send them) and dead (parked for an operator).",
                labels=["service", "state"],
            ),
            GaugeMetricFamily(
                "billing_outbox_oldest_pending_age_seconds",
                "Age of the oldest pending outbox message (0 when none is pending).",
                labels=["service"],
            ),
            GaugeMetricFamily(
                "billing_outbox_scrape_error",
                "1 when the outbox could not be read at this scrape (the other outbox gauges are then absent).",
                labels=["service"],
            ),
        )

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        messages, age, error = self._families()
        try:
            state: OutboxState = read_at_scrape(
                self.engine, lambda conn: read_outbox(conn, self.table, datetime.now(UTC))
            )
        except Exception:
            log.warning("metrics: cannot read the outbox", exc_info=True)
            error.add_metric([self.service], 1)
            return [error]
        messages.add_metric([self.service, "pending"], state.pending)
        messages.add_metric([self.service, "dead"], state.dead)
        age.add_metric([self.service], state.oldest_pending_age_seconds)
        error.add_metric([self.service], 0)
        return [messages, age, error]


class MetricsServer:
    """`GET /metrics` of one registry on its own port (a thread); `port` is the one bound (0 picks one)."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self.registry = registry
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> int:
        server, thread = start_http_server(self.requested_port, addr=self.host, registry=self.registry)
        self._server, self._thread = server, thread
        self.port = int(server.server_port)
        log.info("metrics listening", extra={"address": f"{self.host}:{self.port}", "metrics_port": self.port})
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
