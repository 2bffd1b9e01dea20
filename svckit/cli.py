"""The command line every service shares: `python -m <service> serve | migrate | ...`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from svckit import logs, server
from svckit.migrations import upgrade
from svckit.settings import ServiceSettings, describe_errors

S = TypeVar("S", bound=ServiceSettings)


def main(
    *,
    name: str,
    settings_type: type[S],
    build: Callable[[S], server.GrpcService],
    migrations: Path,
    extra: Mapping[str, tuple[str, Callable[[S], int]]] | None = None,
    argv: Sequence[str] | None = None,
) -> int:
    commands: dict[str, tuple[str, Callable[[S], int]]] = {
        "serve": ("serve gRPC until SIGTERM (the default)", lambda s: _serve(s, build)),
        "migrate": ("apply database migrations up to the newest", lambda s: _migrate(s, migrations)),
        **(extra or {}),
    }
    parser = argparse.ArgumentParser(prog=f"python -m {name}_svc", description=f"The {name} service.")
    parser.add_argument(
        "command",
        nargs="?",
        default="serve",
        choices=sorted(commands),
        help="; ".join(f"{cmd}: {text}" for cmd, (text, _) in commands.items()),
    )
    args = parser.parse_args(argv)
    try:
        settings = settings_type()
    except ValidationError as error:
        prefix = settings_type.model_config.get("env_prefix", "")
        print(f"{name}: invalid settings:\n{describe_errors(error, prefix)}", file=sys.stderr)
        return 2
    logs.configure_logging(name, settings.log_level, settings.log_format)
    return commands[args.command][1](settings)


def _serve(settings: S, build: Callable[[S], server.GrpcService]) -> int:
    try:
        service = build(settings)
    except (ValueError, RuntimeError) as error:
        # A configuration the service refuses (a bad catalog, a schema not migrated): say why, exit 2.
        print(f"cannot start: {error}", file=sys.stderr)
        return 2
    server.run(service)
    return 0


def _migrate(settings: ServiceSettings, migrations: Path) -> int:
    upgrade(settings.database_url, migrations)
    return 0
