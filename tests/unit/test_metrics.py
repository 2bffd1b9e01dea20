"""Metrics and trace context without processes: collectors, labels, traceparent parsing."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import MetaData, create_engine, insert

from credits_svc.metrics import system_balances
from gateway.metrics import GatewayMetrics, event_type_label
from svckit import tracing
from svckit.metrics import OutboxCollector
from svckit.outbox import outbox_table


def scraped(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def test_the_outbox_collector_reports_pending_messages_and_the_oldest_age() -> None:
    engine = create_engine("sqlite://")
    table = outbox_table(MetaData())
    table.metadata.create_all(engine)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for n, (state, age) in enumerate([("pending", 120), ("pending", 5), ("dead", 999), ("sent", 9999)]):
            conn.execute(
                insert(table).values(
                    key=f"k{n}", kind="k", aggregate="a", payload="{}", state=state, attempts=0,
                    next_attempt_at=now, created_at=now - timedelta(seconds=age),
                )
            )  # fmt: skip
    registry = CollectorRegistry()
    registry.register(OutboxCollector("payments", engine, table))
    text = scraped(registry)
    assert 'billing_outbox_messages{service="payments",state="pending"} 2.0' in text
    assert 'billing_outbox_messages{service="payments",state="dead"} 1.0' in text
    assert 'billing_outbox_scrape_error{service="payments"} 0.0' in text
    age = registry.get_sample_value("billing_outbox_oldest_pending_age_seconds", {"service": "payments"})
    assert age is not None
    assert 120 <= age < 180


def test_a_database_error_is_a_metric_not_a_failed_scrape() -> None:
    engine = create_engine("sqlite://")  # no outbox table: every read fails
    registry = CollectorRegistry()
    registry.register(OutboxCollector("payments", engine, outbox_table(MetaData())))
    text = scraped(registry)
    assert 'billing_outbox_scrape_error{service="payments"} 1.0' in text
    assert "billing_outbox_messages{" not in text


def test_system_account_balances_follow_grants_spends_and_reversals() -> None:
    balances = system_balances(
        Counter(
            {
                ("grant", "purchase"): 300,
                ("grant", "promotion"): 50,
                ("spend", ""): 120,
                ("reversal", "purchase"): 100,  # a refund takes purchased credits back
                ("reversal", ""): 20,  # a spend undone gives credits back to the wallet
            }
        )
    )
    assert balances["system:purchase"] == -200
    assert balances["system:promotion"] == -50
    assert balances["system:spend"] == 100
    assert balances["system:subscription"] == balances["system:adjustment"] == 0
    assert -sum(balances.values()) == 300 + 50 - 120 - 100 + 20


def test_webhook_types_are_bounded() -> None:
    assert event_type_label("checkout.session.completed") == "checkout.session.completed"
    assert event_type_label("customer.created") == "other"
    assert event_type_label("x" * 500) == "other"
    metrics = GatewayMetrics()
    metrics.webhook("made.up", "ignored")
    assert (
        metrics.registry.get_sample_value("billing_webhook_events_total", {"type": "other", "outcome": "ignored"}) == 1
    )


def test_traceparent_is_read_from_metadata_and_headers() -> None:
    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    header = f"00-{trace_id}-{span_id}-01"
    for pairs in ([("traceparent", header)], [(b"Traceparent", header.encode())]):
        context = tracing.extract(pairs)  # type: ignore[arg-type]
        assert tracing.parent_span_id(context) == span_id
    for malformed in ("", "nonsense", f"00-{'0' * 32}-{span_id}-01", f"00-{trace_id}-{span_id}-01-more"):
        assert tracing.parent_span_id(tracing.extract([("traceparent", malformed)])) == "-"


def test_a_call_outside_any_span_starts_a_trace_of_its_own() -> None:
    assert tracing.inject() == []
    pairs = dict(tracing.inject_or_start())
    assert tracing.parent_span_id(tracing.extract(pairs.items())) != "-"
