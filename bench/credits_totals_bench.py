"""GetCreditTotals on a ledger of a million transfers, next to a plain SUM over `transfers`, in the same run.

    .venv/bin/python bench/credits_totals_bench.py [--transfers 1000000] [--days 90] [--calls 50]

Fills a fresh PostgreSQL database with `--transfers` transfers spread evenly over
`--days` days (one INSERT ... SELECT generate_series per table), runs the rollup
(`python -m credits_svc rollup`), adds a few hundred transfers through the API that
the rollup has not seen (the live tail), then times GetCreditTotals for a 30-day
range with edges off the hour, through a real Credits server process. The baseline
is `SELECT kind, sum(amount) FROM transfers WHERE created_at in the range GROUP BY
kind` on the same database, and `SELECT sum(balance)` over the wallets for the
outstanding figure.

What the fill bypasses: it writes rows directly, not through the service. It keeps
the invariants the totals rely on (each transfer has its debit and credit entries,
wallets hold the sum of their entries, a reversal names its original and the
original's reversed_amount counts it, wallet balance_after is the running
balance), but no idempotency records or audit records are written, and the
entries' ids follow transfer order because the rows are inserted in that order.
Figures, not a test: nothing passes or fails on a timing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import psycopg
from google.protobuf.timestamp_pb2 import Timestamp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from billing.credits.v1 import credits_pb2 as pb  # noqa: E402
from billing.credits.v1 import credits_pb2_grpc  # noqa: E402
from tests.support.databases import postgres_database  # noqa: E402
from tests.support.grpc_calls import metadata, new_key  # noqa: E402
from tests.support.processes import credits_process  # noqa: E402

# Ten transfers a user, in this order: grants (100), spends (10), and a reversal of 5
# of the grant two before it. Running wallet balances: 100 ... 600, 590, 690, 680, 675.
FILL = """
INSERT INTO accounts (code, kind, balance, created_at, updated_at)
SELECT 'user:b' || u, 'wallet', 675, now(), now() FROM generate_series(0, %(n)s / 10 - 1) AS u;

INSERT INTO transfers (id, kind, amount, user_id, from_account, to_account, source, reference, description,
                       reverses_transfer_id, reversed_amount, actor, created_at)
SELECT 'tr_' || lpad(to_hex(i), 32, '0'),
       CASE WHEN i %% 10 IN (6, 8) THEN 'spend' WHEN i %% 10 = 9 THEN 'reversal' ELSE 'grant' END,
       CASE WHEN i %% 10 IN (6, 8) THEN 10 WHEN i %% 10 = 9 THEN 5 ELSE 100 END,
       'b' || (i / 10),
       CASE WHEN i %% 10 IN (6, 8, 9) THEN 'user:b' || (i / 10) ELSE src.account END,
       CASE WHEN i %% 10 IN (6, 8) THEN 'system:spend' WHEN i %% 10 = 9 THEN src_orig.account
            ELSE 'user:b' || (i / 10) END,
       CASE WHEN i %% 10 IN (6, 8) THEN NULL WHEN i %% 10 = 9 THEN src_orig.source ELSE src.source END,
       'bench:' || i, '',
       CASE WHEN i %% 10 = 9 THEN 'tr_' || lpad(to_hex(i - 2), 32, '0') END,
       CASE WHEN i %% 10 = 7 THEN 5 ELSE 0 END,
       'service:bench',
       %(start)s + (CAST(%(span)s AS float8) * i / %(n)s) * interval '1 second'
FROM generate_series(0, %(n)s - 1) AS i
CROSS JOIN LATERAL (
  SELECT (ARRAY['purchase', 'subscription', 'promotion', 'adjustment'])[i %% 4 + 1] AS source,
         (ARRAY['system:purchase', 'system:subscription', 'system:promotion', 'system:adjustment'])[i %% 4 + 1]
           AS account) AS src
CROSS JOIN LATERAL (
  SELECT (ARRAY['purchase', 'subscription', 'promotion', 'adjustment'])[(i + 2) %% 4 + 1] AS source,
         (ARRAY['system:purchase', 'system:subscription', 'system:promotion', 'system:adjustment'])[(i + 2) %% 4 + 1]
           AS account) AS src_orig
ORDER BY i;

INSERT INTO ledger_entries (transfer_id, account, amount, balance_after, created_at)
SELECT t.id,
       CASE WHEN side = 0 THEN t.from_account ELSE t.to_account END,
       CASE WHEN side = 0 THEN -t.amount ELSE t.amount END,
       CASE WHEN (CASE WHEN side = 0 THEN t.from_account ELSE t.to_account END) LIKE 'user:%%'
            THEN (ARRAY[100, 200, 300, 400, 500, 600, 590, 690, 680, 675])[i %% 10 + 1] END,
       t.created_at
FROM generate_series(0, %(n)s - 1) AS i
CROSS JOIN (VALUES (0), (1)) AS sides(side)
JOIN transfers t ON t.id = 'tr_' || lpad(to_hex(i), 32, '0')
ORDER BY i, side;
"""

BASELINE = "SELECT kind, sum(amount) FROM transfers WHERE created_at >= %s AND created_at < %s GROUP BY kind"
OUTSTANDING = "SELECT sum(balance) FROM accounts WHERE kind = 'wallet'"


def stamp(moment: datetime) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(moment)
    return result


def timed(calls: int, work: Callable[[], object]) -> tuple[list[float], object]:
    latencies, result = [], None
    for _ in range(calls):
        started = time.perf_counter()
        result = work()
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies, result


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def line(name: str, latencies: list[float]) -> str:
    return (
        f"  {name:<52} p50 {percentile(latencies, 0.5):8.2f} ms   p99 {percentile(latencies, 0.99):8.2f} ms"
        f"   mean {statistics.fmean(latencies):8.2f} ms   (n={len(latencies)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transfers", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--tail", type=int, default=300, help="transfers made through the API after the rollup")
    args = parser.parse_args()
    n = args.transfers - args.transfers % 10

    with postgres_database("billing_bench_totals") as url, tempfile.TemporaryDirectory() as workdir:
        libpq = "postgresql://" + url.removeprefix("postgresql+psycopg://")
        server = credits_process(url, Path(workdir), access_log="false", totals_rollup_seconds="86400")
        server.migrate()

        now = datetime.now(UTC)
        start = now - timedelta(days=args.days)
        span = int((now - timedelta(minutes=1) - start).total_seconds())
        started = time.perf_counter()
        with psycopg.connect(libpq, autocommit=True) as conn:
            for statement in FILL.split(";\n\n"):
                conn.execute(statement, {"n": n, "start": start, "span": span})
            conn.execute("VACUUM ANALYZE")
        print(f"filled {n:,} transfers, {2 * n:,} entries, {n // 10:,} wallets in {time.perf_counter() - started:.1f}s")

        server.start()
        try:
            with grpc.insecure_channel(server.target) as channel:
                stub = credits_pb2_grpc.CreditsServiceStub(channel)
                since = now - timedelta(days=30) + timedelta(minutes=7, seconds=13)

                def totals() -> pb.GetCreditTotalsResponse:
                    until = datetime.now(UTC) + timedelta(seconds=1)
                    request = pb.GetCreditTotalsRequest(since=stamp(since), until=stamp(until))
                    response: pb.GetCreditTotalsResponse = stub.GetCreditTotals(request, metadata=metadata())
                    return response

                unrolled, _ = timed(3, totals)

                started = time.perf_counter()
                rolled = json.loads(server.command("rollup"))
                rollup_seconds = time.perf_counter() - started

                for k in range(args.tail):
                    stub.Grant(
                        pb.GrantRequest(
                            user_id=f"tail{k % 50}", amount=3, source=pb.GRANT_SOURCE_PROMOTION, reference=new_key()
                        ),
                        metadata=metadata(key=new_key()),
                    )
                    if k % 3 == 0:
                        stub.Spend(
                            pb.SpendRequest(user_id=f"tail{k % 50}", amount=1, reference=new_key()),
                            metadata=metadata(key=new_key()),
                        )
                totals()  # warm
                served, last = timed(args.calls, totals)

            with psycopg.connect(libpq, autocommit=True) as conn:
                until = datetime.now(UTC) + timedelta(seconds=1)
                base, rows = timed(args.calls, lambda: conn.execute(BASELINE, (since, until)).fetchall())
                wallets, outstanding = timed(args.calls, lambda: conn.execute(OUTSTANDING).fetchone())
                in_range = conn.execute("SELECT count(*) FROM transfers WHERE created_at >= %s", (since,)).fetchone()
        finally:
            status = server.terminate()
        assert status == 0, server.logs()

    assert isinstance(rows, list)
    sums = {kind: int(total) for kind, total in rows}
    assert isinstance(last, pb.GetCreditTotalsResponse)
    same = (last.granted, last.spent, last.reversed) == (sums["grant"], sums["spend"], sums["reversal"])
    assert outstanding is not None
    print(f"rollup: {rolled['transfers']:,} transfers in {rollup_seconds:.1f}s (python -m credits_svc rollup)")
    print(
        f"range: 30 days, edges off the hour, {in_range[0] if in_range else '?':,} transfers in it; tail {args.tail}+"
    )
    print(line("GetCreditTotals via gRPC, before any rollup", unrolled))
    print(line("GetCreditTotals via gRPC, rolled up + live tail", served))
    print(line("baseline: SELECT kind, sum(amount) ... GROUP BY kind", base))
    print(line("baseline: SELECT sum(balance) over wallets", wallets))
    print(
        f"answers agree: {same} (granted {last.granted:,}, spent {last.spent:,}, reversed {last.reversed:,}); "
        f"outstanding {last.outstanding:,} vs wallets {int(outstanding[0]):,}"  # type: ignore[index]
    )


if __name__ == "__main__":
    main()
