"""python -m gateway [serve | dev-tokens]

`serve` (the default) runs the gateway with uvicorn until SIGTERM or SIGINT,
then drains: it stops accepting connections, lets requests in flight finish,
closes its gRPC channels and exits 0. Invalid settings exit with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import socket
import sys
from collections.abc import Generator, Sequence
from pathlib import Path

import uvicorn
from pydantic import ValidationError

from gateway.app import create_app
from gateway.config import GatewaySettings
from gateway.dev_tokens import demo_tokens
from svckit import logs
from svckit.ready_file import write_ready_file
from svckit.settings import describe_errors

log = logging.getLogger("gateway")
GRACEFUL_SHUTDOWN_SECONDS = 10
ENV_PREFIX = "GATEWAY_"


class GatewayServer(uvicorn.Server):
    """uvicorn, announcing its port once listening, and exiting 0 after a signal-driven drain."""

    def __init__(self, config: uvicorn.Config, ready_file: Path | None) -> None:
        super().__init__(config)
        self.ready_file = ready_file

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.started:
            return
        port = self.servers[0].sockets[0].getsockname()[1]
        log.info("listening", extra={"address": f"{self.config.host}:{port}"})
        if self.ready_file is not None:
            write_ready_file(self.ready_file, port)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # uvicorn re-raises the signal after draining, which would end the process with
        # "killed by SIGTERM"; a completed drain is a clean exit here.
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def serve(settings: GatewaySettings) -> int:
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    asyncio.run(GatewayServer(config, settings.ready_file).serve())
    return 0


def print_dev_tokens(settings: GatewaySettings) -> int:
    try:
        tokens = demo_tokens(settings)
    except ValueError as error:
        print(f"gateway: {error}", file=sys.stderr)
        return 2
    print(json.dumps(tokens, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    commands = {
        "serve": ("serve HTTP until SIGTERM (the default)", serve),
        "dev-tokens": ("print JWTs for a demo user and a demo admin (not in production)", print_dev_tokens),
    }
    parser = argparse.ArgumentParser(prog="python -m gateway", description="The HTTP gateway.")
    parser.add_argument(
        "command",
        nargs="?",
        default="serve",
        choices=sorted(commands),
        help="; ".join(f"{name}: {text}" for name, (text, _) in commands.items()),
    )
    args = parser.parse_args(argv)
    try:
        settings = GatewaySettings()
    except ValidationError as error:
        print(f"gateway: invalid settings:\n{describe_errors(error, ENV_PREFIX)}", file=sys.stderr)
        return 2
    logs.configure_logging("gateway", settings.log_level, settings.log_format)
    return commands[args.command][1](settings)


if __name__ == "__main__":
    sys.exit(main())
