"""The admin financial dashboard over a million ledger transfers and 100,000 payments, through the gateway.

    .venv/bin/python bench/dashboard_bench.py [--transfers 1000000] [--payments 100000] [--calls 50]

Fills a Credits database (bench/credits_totals_bench.py's fill, then its rollup)
and a Payments database (bench/revenue_bench.py's fill) on PostgreSQL, starts
Credits, Payments, Subscriptions and the gateway as real processes, and times
`GET /api/admin/financial-dashboard` for a 30-day range with an admin token.
The baseline, measured in the same run, is the same figures as plain SQL run one
after the other on the two databases (what a dashboard without the services'
rollups and indexes would cost). Figures, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.credits_totals_bench import BASELINE as CREDITS_BASELINE  # noqa: E402
from bench.credits_totals_bench import FILL as CREDITS_FILL  # noqa: E402
from bench.credits_totals_bench import OUTSTANDING  # noqa: E402
from bench.revenue_bench import BASELINE as REVENUE_BASELINE  # noqa: E402
from bench.revenue_bench import fill as fill_payments  # noqa: E402
from tests.support.databases import postgres_database  # noqa: E402
from tests.support.gateway import GatewayProcess, bearer  # noqa: E402
from tests.support.processes import credits_process  # noqa: E402
from tests.support.purchase_stack import payments_process, subscriptions_process  # noqa: E402


def libpq(url: str) -> str:
    return "postgresql://" + url.removeprefix("postgresql+psycopg://")


def timed(calls: int, work: Callable[[], object]) -> list[float]:
    latencies = []
    for _ in range(calls):
        started = time.perf_counter()
        work()
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def line(name: str, latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"{name:<58} p50 {statistics.median(ordered):8.1f} ms   p99 {p99:8.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transfers", type=int, default=1_000_000)
    parser.add_argument("--payments", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    transfers = args.transfers - args.transfers % 10
    now = datetime.now(UTC)

    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        credits_db = stack.enter_context(postgres_database("billing_bench_dash_credits"))
        payments_db = stack.enter_context(postgres_database("billing_bench_dash_payments"))
        subscriptions_db = stack.enter_context(postgres_database("billing_bench_dash_subscriptions"))

        credits = credits_process(credits_db, workdir, access_log="false", totals_rollup_seconds="86400")
        payments = payments_process(payments_db, workdir, access_log="false")
        subscriptions = subscriptions_process(subscriptions_db, workdir, access_log="false", outbox_relay="false")
        for service in (credits, payments, subscriptions):
            service.migrate()

        started = time.perf_counter()
        start = now - timedelta(days=args.days)
        span = int((now - timedelta(minutes=1) - start).total_seconds())
        with psycopg.connect(libpq(credits_db), autocommit=True) as conn:
            for statement in CREDITS_FILL.split(";\n\n"):
                conn.execute(statement, {"n": transfers, "start": start, "span": span})
            conn.execute("VACUUM ANALYZE")
        credits.command("rollup")
        paid, refunded, _ = fill_payments(
            libpq(payments_db), argparse.Namespace(days=args.days, payments=args.payments), now
        )
        print(
            f"filled {transfers:,} transfers, {paid:,} payments and {refunded:,} refunds, rolled up, "
            f"in {time.perf_counter() - started:.0f}s"
        )

        for service in (credits, payments, subscriptions):
            service.start()
            stack.callback(service.terminate)
        gateway = GatewayProcess(
            workdir,
            credits_target=credits.target,
            payments_target=payments.target,
            subscriptions_target=subscriptions.target,
        ).start()
        stack.callback(gateway.terminate)

        since, until = (now - timedelta(days=29)).date(), (now + timedelta(days=1)).date()
        headers = bearer("bench-admin", ("user", "admin"))
        with httpx.Client(base_url=gateway.url, timeout=30) as http:

            def dashboard() -> None:
                answer = http.get(
                    "/api/admin/financial-dashboard", params={"since": str(since), "until": str(until)}, headers=headers
                )
                assert answer.status_code == 200, answer.text
                assert answer.json()["missing"] == [], answer.text

            timed(5, dashboard)  # warm up the channels and the caches
            served = timed(args.calls, dashboard)

        low = datetime(since.year, since.month, since.day, tzinfo=UTC)
        high = datetime(until.year, until.month, until.day, tzinfo=UTC)
        with (
            psycopg.connect(libpq(credits_db), autocommit=True) as cdb,
            psycopg.connect(libpq(payments_db), autocommit=True) as pdb,
        ):

            def plain_sql() -> None:
                cdb.execute(CREDITS_BASELINE, (low, high)).fetchall()
                cdb.execute(OUTSTANDING).fetchone()
                pdb.execute(REVENUE_BASELINE, {"since": low, "until": high}).fetchall()

            timed(2, plain_sql)
            baseline = timed(args.calls, plain_sql)

    print(line("GET /api/admin/financial-dashboard (gateway, 3 services)", served))
    print(line("baseline: the same figures as plain SQL, one after another", baseline))
    print(f"ratio (dashboard p50 / baseline p50): {statistics.median(served) / statistics.median(baseline):.2f}")


if __name__ == "__main__":
    main()
