"""Debian's Chromium for browser tests (Playwright cannot download its own browser here)."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
MISSING = f"{CHROMIUM} is missing: `make test` installs it (apt-get install -y chromium)"
