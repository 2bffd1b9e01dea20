"""The whole stack on PostgreSQL, each figure next to its baseline measured in the same run.

    .venv/bin/python bench/stack_bench.py [--seconds 10] [--concurrency 32] [--quick]
        [--only webhooks,credits,checkout] [--profile credits|payments|gateway]
    make bench-stack BENCH_ARGS="--quick"

Creates its own databases (Credits, Payments), starts the Stripe sandbox, the
bare webhook endpoint, Credits, Payments and the gateway as real processes, and
measures, each for a fixed time with a fixed number of requests in flight:

- webhook ingestion through the gateway vs the bare signature-checking endpoint
  (bench/stack_webhooks.py); then waits for the relay to grant every event;
- credit Grant and Spend over gRPC, one hot wallet and many wallets, vs pgbench
  doing the same ledger writes on the same tables (bench/stack_credits.py);
- checkout session creation through the gateway vs the same Stripe call sent to
  the sandbox directly: the difference is the overhead (bench/stack_checkout.py);
- the peak memory (VmHWM) of every process at the end.

It prints one table (measurement, ops/s, p50, p99, baseline ops/s, p50, p99,
ratio), the CPU milliseconds each process spent per operation, and the memory.
With --profile, that service runs under cProfile (bench/profiled.py; slower, so
its figures are not comparable to an unprofiled run) and the top functions are
printed. Figures, not a test: nothing passes or fails on a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import pstats
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.relay_drain import drain  # noqa: E402
from bench.stack_checkout import checkout_rows  # noqa: E402
from bench.stack_common import Row, peak_rss_mb, print_cpu, print_table  # noqa: E402
from bench.stack_credits import credits_rows  # noqa: E402
from bench.stack_webhooks import webhook_rows  # noqa: E402
from tests.support.databases import ADMIN_URL, postgres_database  # noqa: E402
from tests.support.gateway import GatewayProcess, refused_target  # noqa: E402
from tests.support.processes import ManagedProcess, credits_process  # noqa: E402
from tests.support.purchase_stack import SANDBOX_KEY, payments_process  # noqa: E402
from tests.support.stripe_sandbox import SandboxProcess  # noqa: E402

PHASES = ("webhooks", "credits", "checkout")
PROFILABLE = ("credits", "payments", "gateway")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10, help="each measurement, and each baseline")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--checkout-concurrency", type=int, default=0, help="for checkout (default: --concurrency)")
    parser.add_argument("--wallets", type=int, default=1000, help="the 'many wallets' scenarios")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up before each phase")
    parser.add_argument("--quick", action="store_true", help="about a minute: 3 s each, 1 s warm-ups, 200 wallets")
    parser.add_argument("--only", default=",".join(PHASES), help=f"comma-separated, of {', '.join(PHASES)}")
    parser.add_argument("--profile", choices=PROFILABLE, help="run this service under cProfile")
    parser.add_argument("--profile-top", type=int, default=30, help="functions listed per ordering")
    parser.add_argument("--profile-out", type=Path, help="keep the pstats file here")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.warmup, args.wallets = 3, 1, min(args.wallets, 200)
    args.phases = [phase.strip() for phase in args.only.split(",") if phase.strip()]
    unknown = set(args.phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases {sorted(unknown)}")
    return args


def profiled(process: ManagedProcess, module: str, out: Path) -> None:
    """Start `process` under bench/profiled.py instead of plain `python -m <module>`."""
    process.module = "bench.profiled"
    process.env.update(PROFILED_MODULE=module, PROFILED_OUT=str(out))


def profile_report(path: Path, top: int) -> str:
    if not path.exists():
        return f"no profile at {path}"
    out = io.StringIO()
    for order in ("tottime", "cumulative"):
        out.write(f"\n--- profile, top {top} by {order} ---\n")
        pstats.Stats(str(path), stream=out).strip_dirs().sort_stats(order).print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    secret = "whsec_benchmark_" + uuid.uuid4().hex
    print(
        f"machine: {os.cpu_count()} CPUs (shared with everything else running); PostgreSQL at {ADMIN_URL}; "
        f"{args.concurrency} in flight, {args.seconds:g} s per measurement and per baseline; phases {args.phases}"
        + (f"; PROFILING {args.profile} (figures not comparable)" if args.profile else "")
    )
    rows: list[Row] = []
    notes: list[str] = []
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        credits_db = stack.enter_context(postgres_database("bench_stack_credits"))
        payments_db = stack.enter_context(postgres_database("bench_stack_payments"))
        nowhere = stack.enter_context(refused_target())
        profile_out = args.profile_out or work / "profile.prof"
        processes: dict[str, ManagedProcess] = {}

        def stop_all() -> None:
            for process in reversed(processes.values()):
                try:
                    process.terminate()
                except subprocess.TimeoutExpired:
                    process.kill()

        stack.callback(stop_all)

        sandbox = SandboxProcess(work, LOG_FORMAT="text", LOG_LEVEL="WARNING")
        processes["sandbox"] = sandbox.start()
        bare = ManagedProcess("bench.bare_webhook", work, {"BARE_WEBHOOK_SECRET": secret})
        bare.env["BARE_WEBHOOK_READY_FILE"] = str(bare.ready_file)
        processes["bare"] = bare.start()
        quiet = {"ACCESS_LOG": "false", "LOG_LEVEL": "WARNING"}
        credits = credits_process(credits_db, work, **quiet)
        credits.migrate()
        if args.profile == "credits":
            profiled(credits, "credits_svc", profile_out)
        processes["credits"] = credits.start()
        payments = payments_process(
            payments_db,
            work,
            **quiet,
            STRIPE_API_BASE=sandbox.url,
            STRIPE_SECRET_KEY=SANDBOX_KEY,
            CREDITS_TARGET=credits.target,
        )
        payments.migrate()
        if args.profile == "payments":
            profiled(payments, "payments_svc", profile_out)
        processes["payments"] = payments.start()
        gateway = GatewayProcess(
            work,
            credits_target=credits.target,
            payments_target=payments.target,
            subscriptions_target=nowhere,
            stripe_webhook_secrets=f'["{secret}"]',
            allowed_redirect_origins='["http://127.0.0.1"]',
            log_level="WARNING",
        )
        if args.profile == "gateway":
            profiled(gateway, "gateway", profile_out)
        processes["gateway"] = gateway.start()
        pids = {name: p.process.pid for name, p in processes.items() if p.process is not None}

        started = time.perf_counter()
        if "webhooks" in args.phases:
            rows += webhook_rows(f"http://127.0.0.1:{bare.port}/webhook", gateway.url, secret, args, pids)
            notes.append(drain(payments_db, credits_db)[0])
        if "credits" in args.phases:
            libpq_url = "postgresql://" + credits_db.removeprefix("postgresql+psycopg://")
            credit_rows, report = asyncio.run(credits_rows(credits.target, libpq_url, args, pids))
            rows += credit_rows
            notes.append(
                f"ledger check after the credits phase (baseline's writes included): balanced={report.balanced}, "
                f"{report.transfers_checked} transfers, {report.accounts_checked} accounts"
            )
        if "checkout" in args.phases:
            rows += checkout_rows(gateway.url, sandbox.client(), sandbox.url, args, pids)
        elapsed = time.perf_counter() - started

        memory = {name: peak_rss_mb(pid) for name, pid in pids.items()}
        stop_all()
        profile_text = profile_report(profile_out, args.profile_top) if args.profile else ""

    print()
    print_table(rows)
    print()
    print_cpu(rows)
    print()
    print(f"{'process':12} {'peak RSS MiB (VmHWM)':>21} {'RSS at end MiB':>15}")
    for name, (peak, current) in memory.items():
        print(f"{name:12} {peak:21.1f} {current:15.1f}")
    print()
    for note in notes:
        print(note)
    print(f"measured for {elapsed:.0f} s")
    print(profile_text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
