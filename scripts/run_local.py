"""Run the whole stack on this machine with embedded defaults: `make run`.

Migrates and starts the three services (SQLite files under var/) and the gateway,
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


def base_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
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
    env = base_env()
    migrate(env)
    processes = {f"{service}_svc": start(f"{service}_svc", env, "serve") for service in SERVICES}
    processes["gateway"] = start("gateway", env)
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    host, port = setting("GATEWAY_HOST", "127.0.0.1"), setting("GATEWAY_PORT", devdefaults.GATEWAY_PORT)
    gateway_url = f"http://{host}:{port}"
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
        print(
            f"""
The billing stack is running (SQLite files and logs under {VAR}).

  HTTP gateway   {gateway_url}/api        OpenAPI: {gateway_url}/api/openapi.json
  health         {gateway_url}/healthz    readiness: {gateway_url}/readyz
  gRPC           credits {credits_target}, payments {payments_target}, subscriptions {subscriptions_target}

Development tokens ({TOKEN_TTL_SECONDS // 3600} h) for the demo user "{DEMO_USER}" ({balance} credits) and an admin:
  export USER_TOKEN={user_token}
  export ADMIN_TOKEN={admin_token}

Try:
  curl -s -H "Authorization: Bearer $USER_TOKEN" {gateway_url}/api/credits/balance
  curl -s -H "Authorization: Bearer $ADMIN_TOKEN" -H "Idempotency-Key: grant-$(date +%s%N)" \\
       -H "Content-Type: application/json" -d '{{"user_id": "{DEMO_USER}", "amount": 50}}' \\
       {gateway_url}/api/admin/credits/grants

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
