"""The ready file: how a process started on port 0 tells its parent (a test, the local run) its port."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_ready_file(path: Path, port: int, **ports: int) -> None:
    """Atomically, so that a reader never sees a half-written file; `ports` adds others (`metrics_port`)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps({"port": port, **ports}))
    os.replace(partial, path)
