"""Grant and Spend through gRPC on PostgreSQL, next to raw PostgreSQL, measured in the same run.

    .venv/bin/python bench/credits_bench.py [--seconds 10] [--concurrency 32] [--wallets 1000]

Starts a Credits server (its own process) on a fresh PostgreSQL database, drives
it from an asyncio gRPC client with a fixed number of calls in flight, and prints
operations per second with p50/p99 latency for one hot wallet and for spread
wallets. The baseline is pgbench on the same server, same concurrency: a
single-row guarded UPDATE (`balance = balance + d WHERE id = :id AND balance + d
>= 0`) in its own transaction, on one row and on spread rows. Figures, not a test:
nothing here passes or fails on a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from billing.credits.v1 import credits_pb2 as pb  # noqa: E402
from billing.credits.v1 import credits_pb2_grpc  # noqa: E402
from tests.support.databases import ADMIN_URL, postgres_database  # noqa: E402
from tests.support.grpc_calls import credits_stub, metadata  # noqa: E402
from tests.support.processes import credits_process  # noqa: E402

PGBENCH_CANDIDATES = ["pgbench", "/usr/lib/postgresql/16/bin/pgbench", "/usr/lib/postgresql/15/bin/pgbench"]


@dataclass
class Figures:
    name: str
    operations: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.operations / self.seconds

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def drive(name: str, concurrency: int, seconds: float, operation: Callable[[int], Awaitable[object]]) -> Figures:
    """Keep `concurrency` calls in flight for `seconds`; every call's latency is kept."""
    latencies: list[float] = []
    counter = itertools.count()
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            n = next(counter)
            started = time.perf_counter()
            await operation(n)
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Figures(name, len(latencies), time.perf_counter() - started, latencies)


def wallet_calls(
    stub: credits_pb2_grpc.CreditsServiceStub,
) -> tuple[Callable[..., Awaitable[None]], Callable[[str], Awaitable[None]]]:
    """Grant(user, amount=1) and Spend(user) of one credit, each with a new idempotency key and reference."""

    async def grant(user: str, amount: int = 1) -> None:
        key = uuid.uuid4().hex
        await stub.Grant(
            pb.GrantRequest(user_id=user, amount=amount, source=pb.GRANT_SOURCE_PURCHASE, reference=key),
            metadata=metadata(key=key),
            timeout=30,
        )

    async def spend(user: str) -> None:
        key = uuid.uuid4().hex
        await stub.Spend(pb.SpendRequest(user_id=user, amount=1, reference=key), metadata=metadata(key=key), timeout=30)

    return grant, spend


async def grpc_figures(target: str, args: argparse.Namespace) -> tuple[list[Figures], pb.CheckLedgerResponse]:
    run = uuid.uuid4().hex[:6]
    hot = f"bench-hot-{run}"
    spread = [f"bench-{run}-{i}" for i in range(args.wallets)]
    async with grpc.aio.insecure_channel(target) as channel:
        stub = credits_stub(channel)

        grant, spend = wallet_calls(stub)

        # Warm up the server, the pool and the client; fund the wallets the spends draw on.
        await drive("warm-up", args.concurrency, 2, lambda n: grant(hot))
        await grant(hot, 10**9)
        for i in range(0, len(spread), 100):
            await asyncio.gather(*(grant(user, 10**6) for user in spread[i : i + 100]))

        figures = [
            await drive("Grant, one hot wallet", args.concurrency, args.seconds, lambda n: grant(hot)),
            await drive("Spend, one hot wallet", args.concurrency, args.seconds, lambda n: spend(hot)),
            await drive(
                f"Grant, {args.wallets} wallets",
                args.concurrency,
                args.seconds,
                lambda n: grant(spread[n % len(spread)]),
            ),
            await drive(
                f"Spend, {args.wallets} wallets",
                args.concurrency,
                args.seconds,
                lambda n: spend(spread[n % len(spread)]),
            ),
        ]
        report = await stub.CheckLedger(pb.CheckLedgerRequest(), metadata=metadata(), timeout=120)
    return figures, report


def pgbench_binary() -> str | None:
    for candidate in PGBENCH_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def pgbench_figures(libpq_url: str, args: argparse.Namespace) -> list[Figures]:
    """pgbench: a single-row guarded UPDATE per transaction, same concurrency, same seconds."""
    binary = pgbench_binary()
    if binary is None:
        raise SystemExit("pgbench not found (Debian: postgresql-client); the baseline needs it")
    with psycopg.connect(libpq_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE bench_wallets (id integer PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0))"
        )
        conn.execute("INSERT INTO bench_wallets SELECT g, 1000000000 FROM generate_series(1, %s) g", (args.wallets,))
    scripts = {
        "raw PG guarded UPDATE, one row": "\\set d -1\n",
        f"raw PG guarded UPDATE, {args.wallets} rows": f"\\set d -1\n\\set id random(1, {args.wallets})\n",
    }
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, (name, header) in enumerate(scripts.items()):
            row = ":id" if "random" in header else "1"
            script = Path(tmp) / f"s{n}.sql"
            script.write_text(
                header
                + "BEGIN;\n"
                + f"UPDATE bench_wallets SET balance = balance + :d WHERE id = {row} AND balance + :d >= 0;\n"
                + "END;\n"
            )
            prefix = Path(tmp) / f"log{n}"
            started = time.perf_counter()
            subprocess.run(
                [
                    binary, "-n", "-f", str(script), "-c", str(args.concurrency), "-j", "2",
                    "-T", str(int(args.seconds)), "-l", f"--log-prefix={prefix}", libpq_url,
                ],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            elapsed = time.perf_counter() - started
            latencies = []
            for log in Path(tmp).glob(f"log{n}*"):
                for line in log.read_text().splitlines():
                    latencies.append(int(line.split()[2]) / 1000)  # microseconds → ms
            results.append(Figures(name, len(latencies), elapsed, latencies))
    return results


def print_table(rows: list[Figures], baseline: dict[str, Figures]) -> None:
    print(f"{'scenario':34} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs raw PG':>10}")
    for row in rows:
        base = baseline.get(row.name)
        ratio = f"{row.rate / base.rate:9.2f}x" if base else ""
        print(f"{row.name:34} {row.rate:9.0f} {row.percentile(0.5):8.2f} {row.percentile(0.99):8.2f} {ratio:>10}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--wallets", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=16, help="the server's worker threads (and pool size)")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs; PostgreSQL at {ADMIN_URL}; {args.concurrency} calls in flight")
    with tempfile.TemporaryDirectory() as tmp, postgres_database("billing_bench") as url:
        server = credits_process(
            url, Path(tmp), ACCESS_LOG="false", LOG_LEVEL="WARNING", WORKER_THREADS=str(args.threads)
        )
        server.migrate()
        server.start()
        try:
            figures, report = asyncio.run(grpc_figures(server.target, args))
        finally:
            server.terminate()
        raw = pgbench_figures("postgresql://" + url.removeprefix("postgresql+psycopg://"), args)
    hot, spread = raw
    baseline = {f.name: (hot if "hot" in f.name else spread) for f in figures}
    print_table(raw, {})
    print()
    print_table(figures, baseline)
    print()
    print(
        f"ledger check after the run: balanced={report.balanced}, "
        f"{report.transfers_checked} transfers, {report.accounts_checked} accounts"
    )
    return 0 if report.balanced else 1


if __name__ == "__main__":
    sys.exit(main())
