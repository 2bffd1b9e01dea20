"""`python -m stripe_sandbox` as a process: settings checked at start-up, the ready file, a clean SIGTERM."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.processes import run_module
from tests.support.stripe_sandbox import SandboxProcess


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("STRIPE_SANDBOX_PORT", "not-a-port"),
        ("STRIPE_SANDBOX_PORT", "70000"),
        ("STRIPE_SANDBOX_SECRET_KEY", "sk_live_real"),
        ("STRIPE_SANDBOX_WEBHOOK_URL", "not a url"),
        ("STRIPE_SANDBOX_WEBHOOK_SECRET", "not-whsec"),
        ("STRIPE_SANDBOX_ASYNC_DELAY_SECONDS", "-1"),
        ("STRIPE_SANDBOX_WEBHOOK_MAX_ATTEMPTS", "0"),
        ("STRIPE_SANDBOX_LOG_LEVEL", "LOUD"),
    ],
)
def test_invalid_settings_exit_2_naming_the_variable(variable: str, value: str) -> None:
    env = {"STRIPE_SANDBOX_PORT": "0", "STRIPE_SANDBOX_WEBHOOK_URL": "http://127.0.0.1:9/hook", variable: value}
    done = run_module("stripe_sandbox", env=env)
    assert done.returncode == 2, done.stderr
    assert variable in done.stderr
    assert value not in done.stderr  # the message names the variable, never its value


def test_a_secret_without_a_url_is_refused() -> None:
    done = run_module("stripe_sandbox", env={"STRIPE_SANDBOX_WEBHOOK_SECRET": "whsec_x"})
    assert done.returncode == 2
    assert "STRIPE_SANDBOX_WEBHOOK_URL" in done.stderr


def test_serves_until_sigterm_then_exits_0(tmp_path: Path) -> None:
    sandbox = SandboxProcess(tmp_path, public_url="https://sandbox.example.test")
    sandbox.start()
    try:
        assert sandbox.port > 0
        assert httpx.get(f"{sandbox.url}/healthz").json() == {"status": "ok"}
        session = sandbox.client().v1.checkout.sessions.create(
            params={
                "mode": "payment",
                "line_items": [
                    {
                        "quantity": 1,
                        "price_data": {"currency": "usd", "unit_amount": 500, "product_data": {"name": "x"}},
                    }
                ],
            }
        )
        assert session.url == f"https://sandbox.example.test/checkout/{session.id}"
    finally:
        status = sandbox.terminate()
    assert status == 0, sandbox.logs()
    assert "listening" in sandbox.logs()
