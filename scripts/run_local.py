"""Run the whole stack on this machine with embedded defaults: `make run`.

Migrates and starts the three services (SQLite files under var/), the gateway,
and, unless PAYMENTS_STRIPE_SECRET_KEY names a real Stripe test key, the local
Stripe sandbox, which delivers its signed webhooks to the gateway; syncs the
subscription plans to Stripe (idempotent: nothing changes on a second run);
waits until the gateway reports every service ready, gives the demo user some
credits (once: the grant is idempotent), prints where everything is and a
development token for the demo user and for an admin, then waits. Ctrl-C (or
SIGTERM) drains every process. Any setting can be overridden through the same
environment variables the services read (CREDITS_GRPC_PORT, GATEWAY_PORT, ...).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc

from billing.credits.v1 import credits_pb2, credits_pb2_grpc
from gateway.dev_tokens import mint_token
from svckit import devdefaults

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
SERVICES = ("credits", "payments", "subscriptions")
DEMO_USER = "demo-user"
ADMIN_USER = "admin"
TOKEN_TTL_SECONDS = 12 * 3600
READY_TIMEOUT_SECONDS = 60


def setting(name: str, default: object) -> str:
    return os.environ.get(name, str(default))


def uses_sandbox() -> bool:
    return "PAYMENTS_STRIPE_SECRET_KEY" not in os.environ


def base_env(gateway_url: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if uses_sandbox():
        sandbox_port = env.setdefault("STRIPE_SANDBOX_PORT", str(devdefaults.STRIPE_SANDBOX_PORT))
        env.setdefault("STRIPE_SANDBOX_WEBHOOK_URL", f"{gateway_url}/api/stripe/webhook")
        env.setdefault("STRIPE_SANDBOX_WEBHOOK_SECRET", devdefaults.STRIPE_WEBHOOK_SECRET)
        env.setdefault("STRIPE_SANDBOX_LOG_FORMAT", "text")
        env.setdefault("PAYMENTS_STRIPE_API_BASE", f"http://127.0.0.1:{sandbox_port}")
    else:
        env.setdefault("PAYMENTS_STRIPE_API_BASE", "https://api.stripe.com")
        env.setdefault("SUBSCRIPTIONS_STRIPE_SECRET_KEY", env["PAYMENTS_STRIPE_SECRET_KEY"])
    env.setdefault("SUBSCRIPTIONS_STRIPE_API_BASE", env["PAYMENTS_STRIPE_API_BASE"])
    # Notices to subscribers land in a development mailbox: one JSON file per email.
    env.setdefault("SUBSCRIPTIONS_MAIL_ENDPOINT", f"file:{VAR / 'mailbox'}")
    for service in SERVICES:
        prefix = service.upper()
        env.setdefault(f"{prefix}_DATABASE_URL", f"sqlite:///{VAR / f'{service}.db'}")
        env.setdefault(f"{prefix}_LOG_FORMAT", "text")
    env.setdefault("GATEWAY_LOG_FORMAT", "text")
    return env


def start(module: str, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    log = (VAR / "log" / f"{module}.log").open("ab")
    try:
        return subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, env=env, stdout=log, stderr=log)
    finally:
        log.close()


def migrate(env: dict[str, str]) -> None:
    for service in SERVICES:
        done = subprocess.run(
            [sys.executable, "-m", f"{service}_svc", "migrate"], cwd=ROOT, env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SystemExit(f"{service}: migrations failed:\n{done.stderr}")


def wait_for_sandbox(env: dict[str, str], process: subprocess.Popen[bytes]) -> None:
    url = f"http://127.0.0.1:{env['STRIPE_SANDBOX_PORT']}/_sandbox/state"
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(
                f"stripe_sandbox exited with {process.returncode}; see {VAR / 'log' / 'stripe_sandbox.log'}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers (the control API wants a key): it is up
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    raise SystemExit("the Stripe sandbox did not start")


def sync_plans(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "subscriptions_svc", "sync-plans"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"subscriptions: the plan sync failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def wait_until_ready(gateway_url: str, processes: dict[str, subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        for name, process in processes.items():
            if process.poll() is not None:
                raise SystemExit(f"{name} exited with {process.returncode}; see {VAR / 'log' / (name + '.log')}")
        try:
            with urllib.request.urlopen(f"{gateway_url}/readyz", timeout=2) as response:  # noqa: S310 (local URL)
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"the stack was not ready within {READY_TIMEOUT_SECONDS}s; logs are in {VAR / 'log'}")


async def seed_demo_credits(credits_target: str) -> int:
    """Give the demo user 500 credits, once: the same idempotency key and reference every run."""
    async with grpc.aio.insecure_channel(credits_target) as channel:
        stub = credits_pb2_grpc.CreditsServiceStub(channel)
        response = await stub.Grant(
            credits_pb2.GrantRequest(
                user_id=DEMO_USER,
                amount=500,
                source=credits_pb2.GRANT_SOURCE_PROMOTION,
                reference="local-demo:welcome-credits",
                description="Welcome credits for the local demo",
            ),
            metadata=(
                ("authorization", f"Bearer {devdefaults.OPS_TOKEN}"),
                ("idempotency-key", "local-demo-welcome-credits"),
                ("x-actor", "service:local-run"),
            ),
            timeout=10,
        )
        return response.balance


def stop(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for name, process in processes.items():
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            print(f"{name} did not drain in 30s; killing it", file=sys.stderr)
            process.kill()


def main() -> int:
    (VAR / "log").mkdir(parents=True, exist_ok=True)
    host, port = setting("GATEWAY_HOST", "127.0.0.1"), setting("GATEWAY_PORT", devdefaults.GATEWAY_PORT)
    gateway_url = f"http://{host}:{port}"
    env = base_env(gateway_url)
    migrate(env)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    if uses_sandbox():
        processes["stripe_sandbox"] = start("stripe_sandbox", env)
        wait_for_sandbox(env, processes["stripe_sandbox"])
    try:
        synced = sync_plans(env)
    except SystemExit:
        stop(processes)
        raise
    processes.update({f"{service}_svc": start(f"{service}_svc", env, "serve") for service in SERVICES})
    processes["gateway"] = start("gateway", env)
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    credits_target = f"127.0.0.1:{setting('CREDITS_GRPC_PORT', devdefaults.CREDITS_PORT)}"
    payments_target = f"127.0.0.1:{setting('PAYMENTS_GRPC_PORT', devdefaults.PAYMENTS_PORT)}"
    subscriptions_target = f"127.0.0.1:{setting('SUBSCRIPTIONS_GRPC_PORT', devdefaults.SUBSCRIPTIONS_PORT)}"
    try:
        wait_until_ready(gateway_url, processes)
        balance = asyncio.run(seed_demo_credits(credits_target))
        secret = setting("GATEWAY_JWT_SECRET", devdefaults.JWT_SECRET)
        issuer = setting("GATEWAY_JWT_ISSUER", devdefaults.JWT_ISSUER)
        audience = setting("GATEWAY_JWT_AUDIENCE", devdefaults.JWT_AUDIENCE)
        user_token = mint_token(secret, issuer, audience, DEMO_USER, ["user"], TOKEN_TTL_SECONDS)
        admin_token = mint_token(secret, issuer, audience, ADMIN_USER, ["user", "admin"], TOKEN_TTL_SECONDS)
        stripe_line = (
            f"Stripe: the local sandbox at http://127.0.0.1:{env['STRIPE_SANDBOX_PORT']} (no Stripe account needed); "
            "its webhooks go to the gateway."
            if uses_sandbox()
            else "Stripe: your test account. Forward its webhooks with\n"
            f"  stripe listen --forward-to {gateway_url}/api/stripe/webhook\n"
            "and set GATEWAY_STRIPE_WEBHOOK_SECRETS='[\"whsec_...\"]' to the secret it prints."
        )
        buy_body = (
            """BODY='{"package_id": "credits-100", """
            f'"success_url": "{gateway_url}/billing/checkout/success", '
            f'"cancel_url": "{gateway_url}/billing/checkout/cancel"}}\''
        )
        print(
            f"""
The billing stack is running (SQLite files and logs under {VAR}).

  HTTP gateway   {gateway_url}/api        OpenAPI: {gateway_url}/api/openapi.json
  health         {gateway_url}/healthz    readiness: {gateway_url}/readyz
  gRPC           credits {credits_target}, payments {payments_target}, subscriptions {subscriptions_target}

Development tokens ({TOKEN_TTL_SECONDS // 3600} h) for the demo user "{DEMO_USER}" ({balance} credits) and an admin:
  export USER_TOKEN={user_token}
  export ADMIN_TOKEN={admin_token}

{stripe_line}

Try:
  curl -s -H "Authorization: Bearer $USER_TOKEN" {gateway_url}/api/credits/balance
  {buy_body}
  curl -s -H "Authorization: Bearer $USER_TOKEN" -H "Idempotency-Key: buy-$(date +%s%N)" \\
       -H "Content-Type: application/json" -d "$BODY" {gateway_url}/api/stripe/create-checkout-session
  then open the "url" it returns, pay with 4242 4242 4242 4242 (any future expiry, any CVC),
  and read the balance again.

Subscriptions (plans synced to Stripe: {synced.strip().splitlines()[-1]}):
  curl -s {gateway_url}/api/plans
  the same create-checkout-session call with '"plan_id": "starter"' instead of the package starts a
  subscription; then: curl -s -H "Authorization: Bearer $USER_TOKEN" {gateway_url}/api/subscriptions/{DEMO_USER}
  Notices to subscribers (payment failed, trial ending, renewal) land in {VAR / "mailbox"}.

Ctrl-C stops everything.""",
            flush=True,
        )
        while not stopping:
            for name, process in processes.items():
                if process.poll() is not None:
                    print(f"{name} exited with {process.returncode}; see {VAR / 'log' / (name + '.log')}")
                    return 1
            time.sleep(0.5)
        return 0
    finally:
        stop(processes)


if __name__ == "__main__":
    sys.exit(main())
