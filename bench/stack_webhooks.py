"""Webhook ingestion through the gateway against the bare signature-checking endpoint (bench/bare_webhook.py).

Events as bench/webhook_bench.py builds them: signed `checkout.session.completed`,
each with a new event id and payment, posted over keep-alive connections by
bench/http_load.py with a fixed number in flight.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Mapping
from urllib.parse import urlsplit

from bench.http_load import LoadResult, run_load
from bench.stack_common import Row, cpu_per_op, cpu_snapshot
from bench.webhook_bench import requests


def drive(url: str, seconds: float, concurrency: int, secret: str, *, unique: bool) -> LoadResult:
    parts = urlsplit(url)
    return asyncio.run(
        run_load(parts.hostname or "127.0.0.1", parts.port or 80, requests(url, unique, secret), seconds, concurrency)
    )


def webhook_rows(
    bare_url: str, gateway_url: str, secret: str, args: argparse.Namespace, pids: Mapping[str, int]
) -> list[Row]:
    full_url = f"{gateway_url}/api/stripe/webhook"
    drive(bare_url, args.warmup, args.concurrency, secret, unique=True)
    drive(full_url, args.warmup, args.concurrency, secret, unique=True)
    before = cpu_snapshot(pids)
    base = drive(bare_url, args.seconds, args.concurrency, secret, unique=True)
    middle = cpu_snapshot(pids)
    full = drive(full_url, args.seconds, args.concurrency, secret, unique=True)
    after = cpu_snapshot(pids)
    return [
        Row(
            "webhook ingestion (gateway -> Payments)",
            full,
            "bare endpoint: verify signature, 200",
            base,
            errors=full.failed,
            cpu_ms_per_op=cpu_per_op(middle, after, full.ok),
            baseline_cpu_ms_per_op=cpu_per_op(before, middle, base.ok),
        )
    ]
