"""The ready file: how a process started on port 0 tells its parent (a test, the local run) its port."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_ready_file(path: Path, port: int) -> None:
    """Atomically, so that a reader never sees a half-written file."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps({"port": port}))
    os.replace(partial, path)
