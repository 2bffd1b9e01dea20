"""No secret and no personal data in any process's logs.

Flows run first (a purchase and a subscription paid on the sandbox's page with a customer's email, name and
card; admin actions; signed, forged and replayed webhook deliveries; refused tokens), then every log file of
every process of the stack (gateway, Credits, Payments, Subscriptions, the Stripe sandbox) is searched for: the
JWTs that were sent, the service tokens, the Stripe secret key, the webhook signing secret, Stripe-Signature
values, Authorization header values, the database password, the customers' emails and names and the card
numbers. `test_the_scanner_finds_what_it_looks_for` shows the search can fail.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from svckit import devdefaults
from tests.security.conftest import DATABASE_PASSWORD, SecurityStack, Victim, new_customer
from tests.security.test_webhook_fuzz import WRONG_SECRET, sign
from tests.support.purchase_stack import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

# Whatever shape they are logged in: a Stripe-Signature value, a bearer credential, a card number.
PATTERNS: Mapping[str, re.Pattern[str]] = {
    "Stripe-Signature value": re.compile(r"t=\d+,\s*v1=[0-9a-f]{16,}"),
    "Authorization value": re.compile(r"(?i)bearer\s+[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
    "JWT": re.compile(r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}"),
    # Grouped as typed on the page; ungrouped, the cards typed are searched for by value (ids can be all digits).
    "card number": re.compile(r"\b\d{4}[ -]\d{4}[ -]\d{4}[ -]\d{4}\b"),
}
SECRET_ENV_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|_KEY$|DATABASE_URL)")


@dataclass(frozen=True)
class Leak:
    path: Path
    line: int
    what: str


def scan(files: Iterable[Path], secrets: Mapping[str, str]) -> list[Leak]:
    """Every line of `files` that holds one of `secrets` (name -> value) or matches `PATTERNS`."""
    leaks = []
    for path in files:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            for name, value in secrets.items():
                if value and value in line:
                    leaks.append(Leak(path, number, name))
            for name, pattern in PATTERNS.items():
                if pattern.search(line):
                    leaks.append(Leak(path, number, name))
    return leaks


def configured_secrets(security: SecurityStack) -> dict[str, str]:
    """The secrets the processes were given, from their environments, and the development defaults."""
    stack = security.stack
    found = {f"devdefault {value[:6]}…": value for value in devdefaults.PUBLIC_VALUES}
    found["webhook signing secret"] = stack.webhook_secret
    found["Stripe secret key"] = devdefaults.STRIPE_SANDBOX_KEY
    found["database password"] = DATABASE_PASSWORD
    processes = [stack.gateway, stack.credits, stack.payments, stack.sandbox]
    if stack.subscriptions is not None:
        processes.append(stack.subscriptions)
    for process in processes:
        for name, value in process.env.items():
            if not SECRET_ENV_NAME.search(name) or name.endswith("READY_FILE"):
                continue
            if "DATABASE_URL" in name:
                password = make_url(value).password
                if password:
                    found[f"{name} password"] = str(password)
                continue
            for n, item in enumerate(json.loads(value) if value.startswith("[") else [value]):
                if len(str(item)) >= 8:
                    found[f"{process.module} {name}[{n}]"] = str(item)
    return found


def personal_data(security: SecurityStack) -> dict[str, str]:
    found = {}
    for n, customer in enumerate(security.customers):
        found[f"customer {n} email"] = customer.email
        found[f"customer {n} name"] = customer.name
        found[f"customer {n} card"] = customer.card
        found[f"customer {n} card, no spaces"] = customer.card.replace(" ", "")
    return found


def run_flows(security: SecurityStack, victim: Victim) -> set[str]:
    """What a day brings: purchases, admin work, webhooks, refused tokens. The Stripe-Signature values sent."""
    http, tokens = security.http, security.tokens
    buyer = f"logbuyer-{uuid.uuid4().hex[:8]}"
    payment_id = security.buy_credits(buyer, new_customer())
    admin = tokens.admin("log-admin")
    # Admin actions: a grant, a refund, the reports.
    granted = http.post(
        "/api/admin/credits/grants",
        headers={**admin, "Idempotency-Key": uuid.uuid4().hex},
        json={"user_id": buyer, "amount": 7, "description": "goodwill"},
    )
    assert granted.status_code == 201, granted.text
    refunded = http.post(
        f"/api/admin/payments/{payment_id}/refund",
        headers={**admin, "Idempotency-Key": uuid.uuid4().hex},
        json={"reason": "requested_by_customer"},
    )
    assert refunded.status_code == 201, refunded.text
    for path in ("/api/admin/transactions", "/api/admin/audit-log", "/api/admin/webhook-events"):
        assert http.get(path, headers=admin).status_code == 200
    security.stack.wait_deliveries_done()
    # Webhooks: a real event delivered again (good signature), forged, stale and garbled ones.
    events = http.get("/api/admin/webhook-events", headers=admin, params={"service": "payments"}).json()["events"]
    assert events
    body = json.dumps({"id": events[0]["event_id"], "type": "balance.available", "data": {"object": {}}}).encode()
    signatures = {
        sign(body, security.stack.webhook_secret),
        sign(body, WRONG_SECRET),
        sign(body, security.stack.webhook_secret, int(time.time()) - 3600),
    }
    for signature in signatures:
        http.post("/api/stripe/webhook", content=body, headers={"Stripe-Signature": signature})
        http.post("/api/stripe/webhook", content=b"\xff" + body, headers={"Stripe-Signature": signature})
    # Refused tokens: expired, wrong audience, an admin route with a user's token.
    for bad in (
        tokens.token(victim.user_id, ttl_seconds=-60),
        tokens.token(victim.user_id, audience="elsewhere"),
        tokens.token(victim.user_id, issuer="elsewhere"),
    ):
        assert http.get("/api/credits/balance", headers={"Authorization": f"Bearer {bad}"}).status_code == 401
    assert http.get("/api/admin/transactions", headers=tokens.bearer(victim.user_id)).status_code == 403
    # Let every process write what this caused.
    wait_for(lambda: security.balance(buyer) == 7, "the refund's debit and the grant")
    security.stack.wait_deliveries_done()
    return signatures


def test_no_secret_or_personal_data_in_any_log(security: SecurityStack, victim: Victim) -> None:
    signatures = run_flows(security, victim)
    files = security.log_files()
    modules = {path.name.split("-")[0] for path in files}
    assert {"gateway", "credits_svc", "payments_svc", "subscriptions_svc", "stripe_sandbox"} <= modules, modules
    assert sum(path.stat().st_size for path in files) > 10_000, "the logs are suspiciously small"
    secrets = {
        **configured_secrets(security),
        **personal_data(security),
        **{f"JWT …{value[-8:]}": value for value in security.tokens.minted},
        **{
            f"JWT signature …{value[-8:]}": value.rsplit(".", 1)[-1] for value in security.tokens.minted if "." in value
        },
        **{f"Stripe-Signature {n}": value for n, value in enumerate(signatures)},
    }
    assert len(security.tokens.minted) > 10
    assert len(security.customers) >= 3
    assert sum(name.endswith("DATABASE_URL password") for name in secrets) >= 3, "the services' URLs carry it"
    leaks = scan(files, {name: value for name, value in secrets.items() if len(value) >= 6})
    assert not leaks, "\n".join(f"{leak.path.name}:{leak.line}: {leak.what}" for leak in leaks[:50])


def test_the_scanner_finds_what_it_looks_for(security: SecurityStack, tmp_path: Path) -> None:
    """The same search finds a planted secret: in sample lines, and in the running gateway's real log."""
    sample = tmp_path / "sample.log"
    token = security.tokens.token("planted-user")
    customer = new_customer()
    planted = {
        "token": f'{{"message": "calling", "authorization": "Bearer {token}"}}',
        "webhook secret": f"using {security.stack.webhook_secret}",
        "db password": f"connecting to postgresql://postgres:{DATABASE_PASSWORD}@db/x",
        "email": f"mail to {customer.email}",
        "card": "card 4000 0000 0000 0002 declined",
        "signature": f"header {sign(b'{}', WRONG_SECRET)}",
    }
    secrets = {
        "token": token,
        "webhook": security.stack.webhook_secret,
        "db": DATABASE_PASSWORD,
        "email": customer.email,
    }
    for line in planted.values():
        sample.write_text(line + "\n")
        assert scan([sample], secrets), f"the scanner missed: {line}"
    sample.write_text('{"message": "request", "path": "/api/credits/balance", "status": 200}\n')
    assert not scan([sample], secrets)
    # The gateway logs each request's path: a canary there must be found in its real log file.
    canary = f"canary{uuid.uuid4().hex}"
    assert security.http.get(f"/api/no-such-route/{canary}").status_code == 404
    wait_for(lambda: scan([security.stack.gateway.log_path], {"canary": canary}), "the canary in the gateway's log")
