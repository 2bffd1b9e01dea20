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
    with_options: Mapping[str, tuple[str, Callable[[S, list[str]], int]]] | None = None,
    argv: Sequence[str] | None = None,
) -> int:
    """Run one command; those in `with_options` also receive the arguments that follow their name."""
    commands: dict[str, tuple[str, Callable[[S, list[str]], int]]] = {
        "serve": ("serve gRPC until SIGTERM (the default)", lambda s, _: _serve(s, build)),
        "migrate": ("apply database migrations up to the newest", lambda s, _: _migrate(s, migrations)),
        **{cmd: (text, _ignoring_options(run)) for cmd, (text, run) in (extra or {}).items()},
        **(with_options or {}),
    }
    parser = argparse.ArgumentParser(prog=f"python -m {name}_svc", description=f"The {name} service.")
    parser.add_argument(
        "command",
        nargs="?",
        default="serve",
        choices=sorted(commands),
        help="; ".join(f"{cmd}: {text}" for cmd, (text, _) in commands.items()),
    )
    parser.add_argument("options", nargs=argparse.REMAINDER, help="the command's own options (<command> --help)")
    args = parser.parse_args(argv)
    if args.options and args.command not in (with_options or {}):
        parser.error(f"{args.command} takes no options")
    try:
        settings = settings_type()
    except ValidationError as error:
        prefix = settings_type.model_config.get("env_prefix", "")
        print(f"{name}: invalid settings:\n{describe_errors(error, prefix)}", file=sys.stderr)
        return 2
    logs.configure_logging(name, settings.log_level, settings.log_format)
    return commands[args.command][1](settings, list(args.options))


def _ignoring_options(run: Callable[[S], int]) -> Callable[[S, list[str]], int]:
    return lambda settings, _: run(settings)


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
