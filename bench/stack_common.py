"""What bench/stack_bench.py's measurements share: a row of figures, the table, /proc readings."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Measured(Protocol):
    """bench.http_load.LoadResult and bench.credits_bench.Figures both are."""

    @property
    def rate(self) -> float: ...

    def percentile(self, q: float) -> float: ...


@dataclass
class Row:
    """One measurement next to its baseline, both from the same run."""

    name: str
    result: Measured
    baseline_name: str
    baseline: Measured | None
    errors: int = 0
    # CPU milliseconds per operation of each process during the measurement.
    cpu_ms_per_op: dict[str, float] = field(default_factory=dict)
    baseline_cpu_ms_per_op: dict[str, float] = field(default_factory=dict)
    note: str = ""


def ratio(row: Row) -> str:
    if row.baseline is None or not row.baseline.rate:
        return ""
    return f"{row.result.rate / row.baseline.rate:.3f}x"


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'measurement':48} {'ops/s':>8} {'p50 ms':>8} {'p99 ms':>8} | {'baseline':38} "
        f"{'ops/s':>8} {'p50 ms':>8} {'p99 ms':>8} | {'ratio':>7}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        r, b = row.result, row.baseline
        base = (
            f"{row.baseline_name:38} {b.rate:8.0f} {b.percentile(0.5):8.2f} {b.percentile(0.99):8.2f}"
            if b is not None
            else f"{row.baseline_name:38} {'':8} {'':8} {'':8}"
        )
        print(
            f"{row.name:48} {r.rate:8.0f} {r.percentile(0.5):8.2f} {r.percentile(0.99):8.2f} | {base} | {ratio(row):>7}"
        )
        if row.note:
            print(f"    {row.note}")


def print_cpu(rows: list[Row]) -> None:
    """CPU per operation of each process: the cost a request puts on a core, less sensitive to a busy machine."""
    names = sorted({name for row in rows for name in (*row.cpu_ms_per_op, *row.baseline_cpu_ms_per_op)})
    print(f"{'CPU ms per operation':40} " + " ".join(f"{name:>10}" for name in names))
    for row in rows:
        sides = ((row.name, row.cpu_ms_per_op), (f"  baseline: {row.baseline_name}", row.baseline_cpu_ms_per_op))
        for label, figures in sides:
            if figures:
                print(f"{label[:40]:40} " + " ".join(f"{figures.get(n, float('nan')):10.3f}" for n in names))


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_snapshot(pids: Mapping[str, int]) -> dict[str, float]:
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def cpu_per_op(before: Mapping[str, float], after: Mapping[str, float], operations: int) -> dict[str, float]:
    if operations <= 0:
        return {}
    return {name: (after[name] - before[name]) * 1000 / operations for name in before}


def peak_rss_mb(pid: int) -> tuple[float, float]:
    """(VmHWM, VmRSS) in MiB: the peak resident set since the process started, and the current one."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmHWM"], values["VmRSS"]
