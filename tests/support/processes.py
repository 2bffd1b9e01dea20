"""Real service processes for tests: `python -m <service>` on port 0, stopped with SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 30.0


def free_port() -> int:
    """A port nothing listens on right now, for a server that must be told its port before it starts."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_module(module: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


class ManagedProcess:
    """`python -m <module> serve` with its own environment, announcing its port through a ready file."""

    def __init__(self, module: str, workdir: Path, env: dict[str, str]) -> None:
        self.module = module
        self.ready_file = workdir / f"{module}-{os.getpid()}-{time.monotonic_ns()}.ready"
        self.log_path = self.ready_file.with_suffix(".log")
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self._terminated = False
        self.port = 0

    def start(self) -> Self:
        self.ready_file.unlink(missing_ok=True)
        self._terminated = False
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module, "serve"],
                env={**os.environ, **self.env},
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self.ready_file.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.module} exited with {self.process.returncode}:\n{self.logs()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.module} did not start within {STARTUP_TIMEOUT}s:\n{self.logs()}")
            time.sleep(0.05)
        self.port = int(json.loads(self.ready_file.read_text())["port"])
        return self

    def signal_terminate(self) -> None:
        """Send SIGTERM once, without waiting."""
        assert self.process is not None
        if not self._terminated:
            self._terminated = True
            self.process.send_signal(signal.SIGTERM)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM (once) and wait; the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.signal_terminate()
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class ServiceProcess(ManagedProcess):
    """One gRPC service, migrated and serving on an ephemeral port."""

    def __init__(self, module: str, prefix: str, database_url: str, workdir: Path, **settings: str) -> None:
        super().__init__(module, workdir, {})
        self.prefix = prefix
        self.env.update(
            {
                f"{prefix}DATABASE_URL": database_url,
                f"{prefix}GRPC_PORT": "0",
                f"{prefix}READY_FILE": str(self.ready_file),
                f"{prefix}LOG_FORMAT": "text",
                **{f"{prefix}{key.upper()}": value for key, value in settings.items()},
            }
        )

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start_again(self, **settings: str) -> ServiceProcess:
        """Start the stopped (or killed) service again, on the same port and database, with changed settings."""
        assert self.process is not None
        assert self.process.poll() is not None, "stop it first"
        self.env[f"{self.prefix}GRPC_PORT"] = str(self.port)
        self.env.update({f"{self.prefix}{key.upper()}": value for key, value in settings.items()})
        return self.start()

    def migrate(self) -> None:
        self.command("migrate")

    def command(self, *args: str) -> str:
        """Run one of the service's commands (`migrate`, `sync-plans`, ...) with its settings; its output."""
        done = run_module(self.module, *args, env=self.env)
        if done.returncode != 0:
            raise RuntimeError(f"{self.module} {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout


def credits_process(database_url: str, workdir: Path, **settings: str) -> ServiceProcess:
    return ServiceProcess("credits_svc", "CREDITS_", database_url, workdir, **settings)
