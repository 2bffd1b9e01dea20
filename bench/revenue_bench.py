"""GetRevenueSummary through gRPC on PostgreSQL, next to the same aggregation as one plain SQL statement.

    .venv/bin/python bench/revenue_bench.py [--payments 100000] [--days 90] [--range-days 30] [--calls 50]

Creates a fresh PostgreSQL database, migrates it with the Payments migrations,
fills it with `generate_series` (payments spread evenly over the last `--days`
days in three currencies, about 10% of them unpaid, 7% refunded in part or in
full, each refund a day after its payment), VACUUM ANALYZE, then starts a
Payments server (its own process, outbox relay off: nothing is sent anywhere)
and times `GetRevenueSummary` over a `--range-days` range, one call at a time,
p50/p99 over `--calls` calls after a warm-up. The baseline, measured in the
same run, is the same aggregation (paid payments and refunds per UTC day and
currency) as one SQL statement sent by psycopg. Figures, not a test: nothing
here passes or fails on a timing; the two answers must agree, though.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import psycopg
from google.protobuf.timestamp_pb2 import Timestamp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from billing.payments.v1 import payments_pb2 as pb  # noqa: E402
from billing.payments.v1 import payments_pb2_grpc  # noqa: E402
from tests.support.databases import ADMIN_URL, postgres_database  # noqa: E402
from tests.support.grpc_calls import metadata  # noqa: E402
from tests.support.purchase_stack import payments_process  # noqa: E402

FILL_PAYMENTS = """
INSERT INTO payments (
    id, user_id, package_id, credits, amount_minor, currency, flow, status,
    stripe_checkout_session_id, stripe_payment_intent_id, amount_refunded_minor,
    credits_granted, credits_reversed, credit_shortfall, created_at, updated_at
)
SELECT
    'pay_' || md5(g::text),
    'bench-user-' || (mod(g, 5000)),
    'credits-100',
    100,
    amount,
    (ARRAY['usd', 'eur', 'gbp'])[1 + mod(g, 3)],
    'checkout',
    status,
    'cs_bench_' || g,
    'pi_bench_' || g,
    CASE status WHEN 'refunded' THEN amount WHEN 'partially_refunded' THEN amount / 2 ELSE 0 END,
    status <> 'pending' AND status <> 'failed',
    0,
    0,
    at,
    at
FROM (
    SELECT
        g,
        400 + (mod(g, 17)) * 100 AS amount,
        CASE
            WHEN mod(g, 20) = 0 THEN 'pending'
            WHEN mod(g, 20) = 1 THEN 'failed'
            WHEN mod(g, 25) = 2 THEN 'partially_refunded'
            WHEN mod(g, 50) = 3 THEN 'refunded'
            ELSE 'succeeded'
        END AS status,
        %(end)s - (%(days)s * interval '1 day') * (g::float8 / %(count)s) AS at
    FROM generate_series(1, %(count)s) AS g
) AS generated
"""
FILL_REFUNDS = """
INSERT INTO refunds (stripe_refund_id, payment_id, amount_minor, currency, status, reason, actor, created_at)
SELECT 're_' || md5(id), id, amount_refunded_minor, currency, 'succeeded', 'requested_by_customer', 'admin:bench',
       created_at + interval '1 day'
FROM payments WHERE amount_refunded_minor > 0
"""
# The same answer as the service's, in one statement.
BASELINE = """
SELECT day, currency, sum(gross), sum(refunded), sum(paid_count), sum(refund_count)
FROM (
    SELECT date_trunc('day', created_at AT TIME ZONE 'UTC') AS day, currency,
           amount_minor AS gross, 0 AS refunded, 1 AS paid_count, 0 AS refund_count
    FROM payments
    WHERE status IN ('succeeded', 'partially_refunded', 'refunded')
      AND created_at >= %(since)s AND created_at < %(until)s
    UNION ALL
    SELECT date_trunc('day', created_at AT TIME ZONE 'UTC'), currency, 0, amount_minor, 0, 1
    FROM refunds
    WHERE created_at >= %(since)s AND created_at < %(until)s AND status NOT IN ('failed', 'canceled')
) AS activity
GROUP BY day, currency
ORDER BY day, currency
"""
SERVICE_PAID_QUERY = """
SELECT date_trunc('day', created_at AT TIME ZONE 'UTC'), currency, sum(amount_minor), count(*)
FROM payments
WHERE status IN ('succeeded', 'partially_refunded', 'refunded') AND created_at >= %(since)s AND created_at < %(until)s
GROUP BY 1, 2
"""


def percentile(latencies: list[float], q: float) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(calls: int, warm_up: int, operation: Callable[[], Any]) -> tuple[list[float], Any]:
    for _ in range(warm_up):
        operation()
    latencies, answer = [], None
    for _ in range(calls):
        started = time.perf_counter()
        answer = operation()
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies, answer


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def fill(libpq_url: str, args: argparse.Namespace, end: datetime) -> tuple[int, int, float]:
    started = time.perf_counter()
    with psycopg.connect(libpq_url, autocommit=True) as conn:
        conn.execute(FILL_PAYMENTS, {"end": end, "days": args.days, "count": args.payments})
        conn.execute(FILL_REFUNDS)
        conn.execute("VACUUM ANALYZE payments")
        conn.execute("VACUUM ANALYZE refunds")
        payments = conn.execute("SELECT count(*) FROM payments").fetchone()
        refunds = conn.execute("SELECT count(*) FROM refunds").fetchone()
    assert payments is not None
    assert refunds is not None
    return int(payments[0]), int(refunds[0]), time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--payments", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--range-days", type=int, default=30)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--warm-up", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs; PostgreSQL at {ADMIN_URL}")
    end = datetime.now(UTC).replace(microsecond=0)
    until = end - timedelta(days=(args.days - args.range_days) // 2)
    since = until - timedelta(days=args.range_days)
    window = {"since": since, "until": until}
    with tempfile.TemporaryDirectory() as tmp, postgres_database("billing_bench") as url:
        libpq_url = "postgresql://" + url.removeprefix("postgresql+psycopg://")
        server = payments_process(url, Path(tmp), ACCESS_LOG="false", LOG_LEVEL="WARNING", OUTBOX_RELAY="false")
        server.migrate()
        payments, refunds, seconds = fill(libpq_url, args, end)
        print(f"filled {payments} payments and {refunds} refunds over {args.days} days in {seconds:.1f} s")
        print(f"range: [{since:%Y-%m-%d %H:%M}, {until:%Y-%m-%d %H:%M}) UTC, {args.range_days} days")

        with psycopg.connect(libpq_url, autocommit=True) as conn:
            plan = conn.execute("EXPLAIN " + SERVICE_PAID_QUERY, window).fetchall()
            print("plan of the paid-payments half:", " / ".join(row[0].strip() for row in plan if "Scan" in row[0]))
            sql_ms, rows = timed(args.calls, args.warm_up, lambda: conn.execute(BASELINE, window).fetchall())

        server.start()
        try:
            with grpc.insecure_channel(server.target) as channel:
                stub = payments_pb2_grpc.PaymentsServiceStub(channel)
                request = pb.GetRevenueSummaryRequest(since=stamp(since), until=stamp(until))
                grpc_ms, summary = timed(
                    args.calls,
                    args.warm_up,
                    lambda: stub.GetRevenueSummary(request, metadata=metadata(actor="admin:bench"), timeout=30),
                )
        finally:
            server.terminate()

    service_daily = [(d.date, d.currency, d.gross_minor, d.refunds_minor) for d in summary.daily]
    baseline_daily = [(day.date().isoformat(), currency, int(g), int(r)) for day, currency, g, r, _, _ in rows]
    agree = service_daily == baseline_daily
    print()
    print(f"{'':34} {'p50 ms':>8} {'p99 ms':>8} {'calls':>6}")
    for name, latencies in (("plain SQL via psycopg (baseline)", sql_ms), ("GetRevenueSummary via gRPC", grpc_ms)):
        print(f"{name:34} {percentile(latencies, 0.5):8.2f} {percentile(latencies, 0.99):8.2f} {len(latencies):6}")
    print()
    for t in summary.totals:
        print(
            f"  {t.currency}: gross {t.gross_minor} ({t.payments} payments), refunds {t.refunds_minor} "
            f"({t.refund_count}), net {t.net_minor}"
        )
    print(f"{len(summary.daily)} day/currency rows; same as the baseline's: {agree}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
