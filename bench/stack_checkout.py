"""Checkout session creation through the gateway, against the Stripe sandbox answering the same Stripe call directly.

Through the gateway: `POST /api/stripe/create-checkout-session` (a user's JWT, a new
Idempotency-Key each time) -> Payments (idempotency record, payment row, the
Stripe call, the session recorded) -> the sandbox. The users' Stripe customers
are created during the warm-up, so each measured checkout makes exactly one
Stripe call, `POST /v1/checkout/sessions`. The baseline sends that same call
(the form body Payments sends, a customer, a new Stripe idempotency key each
time) straight to the sandbox with the same load generator and concurrency: it
is the Stripe time. The overhead is the difference.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import uuid
from collections.abc import Iterator, Mapping
from urllib.parse import urlencode, urlsplit

import stripe
from stripe._encode import _api_encode

from bench.http_load import LoadResult, post_request, run_load
from bench.stack_common import Row, cpu_per_op, cpu_snapshot
from svckit import devdefaults
from tests.support.gateway import bearer

SUCCESS_URL = "http://127.0.0.1/billing/checkout/success?session_id={CHECKOUT_SESSION_ID}"
CANCEL_URL = "http://127.0.0.1/billing/checkout/cancel"
USERS = 50


def gateway_requests(url: str, run: str) -> Iterator[bytes]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    body = json.dumps({"package_id": "credits-100", "success_url": SUCCESS_URL, "cancel_url": CANCEL_URL}).encode()
    tokens = [bearer(f"checkout-{run}-{i}")["Authorization"] for i in range(USERS)]
    for n in itertools.count():
        headers = {
            "Authorization": tokens[n % USERS],
            "Idempotency-Key": uuid.uuid4().hex,
            "Content-Type": "application/json",
        }
        yield post_request(host, port, "/api/stripe/create-checkout-session", body, headers)


def sandbox_requests(url: str, customer: str) -> Iterator[bytes]:
    """`checkout.sessions.create` as Payments sends it (stripe-python's form encoding), each with a new key."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    metadata = {"payment_id": "pay_x", "user_id": "u", "package_id": "credits-100", "credits": "100"}
    params = {
        "mode": "payment",
        "customer": customer,
        "client_reference_id": "u",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {"currency": "usd", "unit_amount": 500, "product_data": {"name": "100 credits"}},
            }
        ],
        "success_url": SUCCESS_URL,
        "cancel_url": CANCEL_URL,
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata},
    }
    body = urlencode(list(_api_encode(params))).encode()
    for _ in itertools.count():
        headers = {
            "Authorization": f"Bearer {devdefaults.STRIPE_SANDBOX_KEY}",
            "Idempotency-Key": uuid.uuid4().hex,
            "Stripe-Version": stripe.api_version,
            "Content-Type": "application/x-www-form-urlencoded",
        }
        yield post_request(host, port, "/v1/checkout/sessions", body, headers)


def load(url: str, requests: Iterator[bytes], seconds: float, concurrency: int) -> LoadResult:
    parts = urlsplit(url)
    return asyncio.run(run_load(parts.hostname or "127.0.0.1", parts.port or 80, requests, seconds, concurrency))


def checkout_rows(
    gateway_url: str, sandbox: stripe.StripeClient, sandbox_url: str, args: argparse.Namespace, pids: Mapping[str, int]
) -> list[Row]:
    run = uuid.uuid4().hex[:6]
    customer = str(sandbox.v1.customers.create(params={"description": "bench"}).id)
    concurrency = args.checkout_concurrency or args.concurrency
    # Warm-up: every user gets its Stripe customer, so that each measured checkout is one Stripe call.
    load(gateway_url, gateway_requests(gateway_url, run), args.warmup, USERS)
    load(sandbox_url, sandbox_requests(sandbox_url, customer), args.warmup, concurrency)
    before = cpu_snapshot(pids)
    base = load(sandbox_url, sandbox_requests(sandbox_url, customer), args.seconds, concurrency)
    middle = cpu_snapshot(pids)
    full = load(gateway_url, gateway_requests(gateway_url, run), args.seconds, concurrency)
    after = cpu_snapshot(pids)
    overhead50 = full.percentile(0.5) - base.percentile(0.5)
    overhead99 = full.percentile(0.99) - base.percentile(0.99)
    return [
        Row(
            "checkout session (gateway -> Payments -> Stripe)",
            full,
            "Stripe call alone (sandbox, direct)",
            base,
            errors=full.failed,
            cpu_ms_per_op=cpu_per_op(middle, after, full.ok),
            baseline_cpu_ms_per_op=cpu_per_op(before, middle, base.ok),
            note=(
                f"overhead excluding Stripe time: p50 {overhead50:+.2f} ms, p99 {overhead99:+.2f} ms; "
                f"errors {full.failed} (statuses {dict(sorted(full.statuses.items()))})"
            ),
        )
    ]
