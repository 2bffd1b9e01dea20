"""python -m stripe_sandbox [serve]

Serves the sandbox with uvicorn until SIGTERM or SIGINT, then exits 0 after
in-flight requests finish. Invalid settings: one line per variable, exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

import uvicorn
from pydantic import ValidationError

from stripe_sandbox.app import build
from stripe_sandbox.config import ENV_PREFIX, SandboxSettings
from svckit import logs
from svckit.http_server import ReadyServer
from svckit.settings import describe_errors

log = logging.getLogger("stripe_sandbox")
GRACEFUL_SHUTDOWN_SECONDS = 5


def serve(settings: SandboxSettings) -> int:
    sandbox = build(settings)
    config = uvicorn.Config(
        sandbox.asgi,
        host=settings.host,
        port=settings.port,
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    server = ReadyServer(config, settings.ready_file, sandbox.listening)
    asyncio.run(server.serve())
    return 0 if server.started else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stripe_sandbox", description="A local stand-in for Stripe's API, for development and tests."
    )
    parser.add_argument("command", nargs="?", default="serve", choices=["serve"], help="serve HTTP (the default)")
    parser.parse_args(argv)
    try:
        settings = SandboxSettings()
    except ValidationError as error:
        print(f"stripe_sandbox: invalid settings:\n{describe_errors(error, ENV_PREFIX)}", file=sys.stderr)
        return 2
    logs.configure_logging("stripe-sandbox", settings.log_level, settings.log_format)
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
