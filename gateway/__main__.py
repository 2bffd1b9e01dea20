"""python -m gateway [serve | dev-tokens]

`serve` (the default) runs the gateway with uvicorn until SIGTERM or SIGINT,
then drains: it stops accepting connections, lets requests in flight finish,
closes its gRPC channels and exits 0. Invalid settings exit with status 2.
Prometheus metrics are served on GATEWAY_METRICS_PORT, apart from the API.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence

import uvicorn
from pydantic import ValidationError

from gateway.app import create_app
from gateway.config import GatewaySettings
from gateway.dev_tokens import demo_tokens
from gateway.metrics import GatewayMetrics
from svckit import logs, tracing
from svckit.http_server import ReadyServer
from svckit.metrics import MetricsServer
from svckit.settings import describe_errors

log = logging.getLogger("gateway")
GRACEFUL_SHUTDOWN_SECONDS = 10
# Longer than the edge proxy's idle timeout for upstream connections (60 s, deploy/envoy/envoy.yaml),
# so that Envoy, not the gateway, closes an idle connection: never one Envoy is about to reuse.
KEEP_ALIVE_SECONDS = 75
ENV_PREFIX = "GATEWAY_"


def serve(settings: GatewaySettings) -> int:
    tracing.configure_tracing("gateway")
    metrics = GatewayMetrics()
    config = uvicorn.Config(
        create_app(settings, metrics),
        host=settings.host,
        port=settings.port,
        lifespan="on",
        # httptools parses HTTP in C; the loop stays asyncio's, which grpc.aio's channels run on.
        http="httptools",
        loop="asyncio",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    metrics_server = MetricsServer(metrics.registry, settings.host, settings.metrics_port)
    ports = {"metrics_port": metrics_server.start()} if settings.metrics_enabled else {}
    try:
        asyncio.run(ReadyServer(config, settings.ready_file, ready_ports=ports).serve())
    finally:
        metrics_server.stop()
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
