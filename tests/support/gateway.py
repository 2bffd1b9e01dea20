"""The gateway as a real process for tests: `python -m gateway` on port 0, stopped with SIGTERM."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from gateway.dev_tokens import mint_token
from svckit import devdefaults
from tests.support.processes import ManagedProcess

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 30.0


class GatewayProcess(ManagedProcess):
    """One gateway, listening on an ephemeral port once `start()` returns."""

    def __init__(self, workdir: Path, **settings: str) -> None:
        super().__init__("gateway", workdir, {})
        self.env.update(
            {
                "GATEWAY_ENVIRONMENT": "test",
                "GATEWAY_PORT": "0",
                "GATEWAY_READY_FILE": str(self.ready_file),
                "GATEWAY_LOG_FORMAT": "json",
                **{f"GATEWAY_{key.upper()}": value for key, value in settings.items()},
            }
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_records(self) -> list[dict[str, object]]:
        """The JSON log lines written so far (complete lines only: the process may be writing the next)."""
        lines = self.logs().split("\n")[:-1]
        return [json.loads(line) for line in lines if line.startswith("{")]


@contextmanager
def refused_target() -> Iterator[str]:
    """host:port of a port held but not listening: connections to it are refused, and no one else gets it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


@contextmanager
def running_gateway(credits_target: str, workdir: Path, **settings: str) -> Iterator[GatewayProcess]:
    """A gateway in front of `credits_target`; Payments and Subscriptions are not running."""
    with ExitStack() as stack:
        payments = stack.enter_context(refused_target())
        subscriptions = stack.enter_context(refused_target())
        gateway = GatewayProcess(
            workdir,
            credits_target=credits_target,
            payments_target=payments,
            subscriptions_target=subscriptions,
            **settings,
        )
        gateway.start()
        try:
            yield gateway
        finally:
            status = gateway.terminate()
            assert status == 0, f"gateway exited with {status}:\n{gateway.logs()}"


def token(
    user_id: str,
    roles: Sequence[str] = ("user",),
    ttl_seconds: int = 300,
    *,
    secret: str = devdefaults.JWT_SECRET,
    issuer: str = devdefaults.JWT_ISSUER,
    audience: str = devdefaults.JWT_AUDIENCE,
) -> str:
    """A JWT the gateway accepts by default; the keyword arguments make bad ones."""
    return mint_token(secret, issuer, audience, user_id, roles, ttl_seconds)


def bearer(user_id: str, roles: Sequence[str] = ("user",)) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user_id, roles)}"}
