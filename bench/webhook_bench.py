"""Webhook ingestion through the whole stack on PostgreSQL, next to a bare endpoint that only verifies signatures.

    .venv/bin/python bench/webhook_bench.py [--seconds 10] [--concurrency 32]

Starts Credits and Payments (PostgreSQL, each its own database and process)
and the gateway, then posts signed `checkout.session.completed` events, each for
a new payment, with a fixed number in flight: gateway (signature, routing) ->
Payments (idempotency record, inbox, payment, outbox, one transaction) -> 200.
The relay meanwhile grants the credits in Credits. The baseline, measured in the
same run with the same client, is a bare endpoint on the same server stack
(Starlette on uvicorn) that only verifies the signature and answers 200. After
the run it waits for the relay to drain and checks that every acknowledged
event granted its credits exactly once. Figures, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import itertools
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.http_load import LoadResult, post_request, run_load  # noqa: E402
from bench.relay_drain import drain  # noqa: E402
from tests.support.databases import postgres_database  # noqa: E402
from tests.support.gateway import GatewayProcess, refused_target  # noqa: E402
from tests.support.processes import ManagedProcess, credits_process  # noqa: E402
from tests.support.purchase_stack import payments_process  # noqa: E402

SECRET = "whsec_benchmark_" + uuid.uuid4().hex
FIXTURES = ROOT / "stripe_sandbox" / "fixtures" / "objects.json"


def sign(payload: bytes, secret: str = SECRET) -> str:
    timestamp = int(time.time())
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event_template() -> str:
    """A checkout.session.completed event shaped like Stripe's (from its example objects), with placeholders."""
    session = json.loads(FIXTURES.read_text())["resources"]["checkout.session"]
    session.update(
        id="cs_test___SESSION__",
        mode="payment",
        status="complete",
        payment_status="paid",
        amount_total=500,
        currency="usd",
        payment_intent="pi___SESSION__",
        metadata={
            "payment_id": "pay___PAYMENT__",
            "user_id": "bench-__USER__",
            "package_id": "credits-100",
            "credits": "100",
        },
    )
    event = {
        "id": "evt___SESSION__",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "data": {"object": session},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": "checkout.session.completed",
    }
    return json.dumps(event)


def requests(url: str, unique: bool, secret: str = SECRET) -> Iterator[bytes]:
    """Signed webhook requests: each a new payment when `unique`, else a few hundred repeated."""
    parts = urlsplit(url)
    template = event_template()
    host, port = parts.hostname or "127.0.0.1", parts.port or 80

    def one(n: int) -> bytes:
        token = uuid.uuid4().hex
        payload = (
            template.replace("__SESSION__", token[:24]).replace("__PAYMENT__", token).replace("__USER__", str(n % 1000))
        ).encode()
        headers = {"Stripe-Signature": sign(payload, secret), "Content-Type": "application/json"}
        return post_request(host, port, parts.path, payload, headers)

    if unique:
        return (one(n) for n in itertools.count())
    return itertools.cycle([one(n) for n in range(500)])


def drive(url: str, seconds: float, concurrency: int, *, unique: bool) -> LoadResult:
    parts = urlsplit(url)
    return asyncio.run(
        run_load(parts.hostname or "127.0.0.1", parts.port or 80, requests(url, unique), seconds, concurrency)
    )


def report(name: str, result: LoadResult, base: float | None) -> float:
    ratio = f"{result.rate / base:8.2f}x" if base else ""
    print(
        f"{name:44} {result.rate:8.0f} {result.percentile(0.5):8.2f} {result.percentile(0.99):8.2f} "
        f"{result.failed:7d} {ratio:>9}"
    )
    return result.rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs; {args.concurrency} requests in flight, {args.seconds:g} s each")
    with (
        tempfile.TemporaryDirectory() as tmp,
        postgres_database("bench_credits") as credits_db,
        postgres_database("bench_payments") as payments_db,
        refused_target() as nowhere,
    ):
        work = Path(tmp)
        bare = ManagedProcess("bench.bare_webhook", work, {"BARE_WEBHOOK_SECRET": SECRET})
        bare.env["BARE_WEBHOOK_READY_FILE"] = str(bare.ready_file)
        credits = credits_process(credits_db, work, ACCESS_LOG="false", LOG_LEVEL="WARNING")
        payments = payments_process(
            payments_db,
            work,
            ACCESS_LOG="false",
            LOG_LEVEL="WARNING",
            CREDITS_TARGET="placeholder:1",
            STRIPE_API_BASE=f"http://{nowhere}",
        )
        processes: list[ManagedProcess] = []
        try:
            bare.start()
            processes.append(bare)
            credits.migrate()
            credits.start()
            processes.append(credits)
            payments.env["PAYMENTS_CREDITS_TARGET"] = credits.target
            payments.migrate()
            payments.start()
            processes.append(payments)
            gateway = GatewayProcess(
                work,
                credits_target=credits.target,
                payments_target=payments.target,
                subscriptions_target=nowhere,
                stripe_webhook_secrets=f'["{SECRET}"]',
                log_level="WARNING",
            ).start()
            processes.append(gateway)

            bare_url, full_url = f"http://127.0.0.1:{bare.port}/webhook", f"{gateway.url}/api/stripe/webhook"
            drive(bare_url, 2, args.concurrency, unique=False)  # warm-up
            drive(full_url, 2, args.concurrency, unique=True)
            print(f"{'endpoint':44} {'events/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'vs bare':>9}")
            base = report(
                "bare: verify the signature, answer 200",
                drive(bare_url, args.seconds, args.concurrency, unique=False),
                None,
            )
            report(
                "full stack: gateway -> Payments (PostgreSQL)",
                drive(full_url, args.seconds, args.concurrency, unique=True),
                base,
            )

            line, ok = drain(payments_db, credits_db)
            print(f"\n{line}")
            return 0 if ok else 1
        finally:
            for process in reversed(processes):
                process.terminate()


if __name__ == "__main__":
    sys.exit(main())
