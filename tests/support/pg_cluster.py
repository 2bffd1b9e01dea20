"""A throwaway PostgreSQL 15 cluster a test may restart or crash (the shared server must never be touched).

`pg_cluster(workdir)` runs initdb, starts the server on a free port (as the
`postgres` user when the tests run as root: the server refuses root), yields a
`PgCluster` that can `restart(mode)` it (`fast` or `immediate`), and stops it and
deletes its files afterwards. `database(prefix)` makes a fresh database on it,
as `tests.support.databases.postgres_database` does on the shared server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from tests.support.databases import sqlalchemy_url
from tests.support.processes import free_port

BIN = Path(os.environ.get("BILLING_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def available() -> str | None:
    """None when a throwaway cluster can be made here; otherwise why not."""
    if not (BIN / "initdb").exists() or not (BIN / "pg_ctl").exists():
        return f"no PostgreSQL binaries in {BIN}"
    if os.geteuid() == 0 and shutil.which("su") is None:
        return "running as root without `su` to become postgres"
    return None


def _run(*args: str) -> str:
    command = [str(a) for a in args]
    if os.geteuid() == 0:
        command = ["su", "postgres", "-c", subprocess.list2cmdline(command)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


@dataclass
class PgCluster:
    data_dir: Path
    socket_dir: Path
    log_file: Path
    port: int

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _options(self) -> str:
        return f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.socket_dir}"

    def start(self) -> None:
        _run(
            str(BIN / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-o",
            self._options(),
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        _run(str(BIN / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop")

    def restart(self, mode: str = "fast") -> None:
        """Stop (`fast`: connections are terminated; `immediate`: a crash, recovery at start) and start again."""
        self.stop(mode)
        self.start()

    def pid(self) -> int:
        return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])

    @contextmanager
    def database(self, prefix: str = "billing_test") -> Iterator[str]:
        """A new database on this cluster; yields its SQLAlchemy URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield sqlalchemy_url(f"postgresql://postgres@127.0.0.1:{self.port}/{name}")


@contextmanager
def pg_cluster() -> Iterator[PgCluster]:
    """initdb, start on a free port; stopped (immediately) and removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="billing-pg-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(base, "postgres", "postgres")
        data_dir = base / "data"
        socket_dir = base / "sock"
        _run("mkdir", "-p", str(socket_dir))
        _run(str(BIN / "initdb"), "-D", str(data_dir), "-U", "postgres", "--auth=trust", "--no-sync")
        cluster = PgCluster(data_dir, socket_dir, base / "server.log", free_port())
        cluster.start()
        try:
            yield cluster
        finally:
            with contextlib.suppress(RuntimeError):  # already down
                cluster.stop("immediate")
    finally:
        shutil.rmtree(base, ignore_errors=True)
