"""uvicorn for the project's HTTP processes (the gateway, the Stripe sandbox, benchmark endpoints).

`ReadyServer` announces its port once listening (the ready file, and an
optional callback) and exits 0 after a SIGTERM or SIGINT drain: plain uvicorn
re-raises the signal after draining, which would end the process as "killed".
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Generator, Mapping
from pathlib import Path

import uvicorn

from svckit.ready_file import write_ready_file

log = logging.getLogger(__name__)


class ReadyServer(uvicorn.Server):
    def __init__(
        self,
        config: uvicorn.Config,
        ready_file: Path | None = None,
        on_listening: Callable[[int], None] = lambda port: None,
        ready_ports: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__(config)
        self.ready_file = ready_file
        self.on_listening = on_listening
        # Other ports to announce in the ready file beside "port" (the gateway's "metrics_port").
        self.ready_ports = dict(ready_ports or {})

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.started:
            return
        port = self.servers[0].sockets[0].getsockname()[1]
        self.on_listening(port)
        log.info("listening", extra={"address": f"{self.config.host}:{port}"})
        if self.ready_file is not None:
            write_ready_file(self.ready_file, port, **self.ready_ports)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
