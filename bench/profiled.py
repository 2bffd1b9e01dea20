"""Run a service's command line under cProfile, every Python thread included; dump the merged stats on exit.

    PROFILED_MODULE=credits_svc PROFILED_OUT=/tmp/credits.prof python -m bench.profiled serve

`python -m cProfile` sees only the main thread, and the services run their
database work on worker threads (`asyncio.to_thread`), so this launcher gives
each thread its own profiler (cProfile's hooks are per thread on Python 3.11),
timing the thread's CPU time by default, and merges them all with pstats when
the module returns (after SIGTERM's drain).
The module runs exactly as `python -m <module> <args>` would: no service code
changes. Used by bench/stack_bench.py --profile.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import runpy
import sys
import threading
import time
from typing import Any

# (thread, its profiler); the main thread's has None: it is stopped before the dump.
_profiles: list[tuple[threading.Thread | None, cProfile.Profile]] = []
_lock = threading.Lock()
_original_run = threading.Thread.run


def _new_profile() -> cProfile.Profile:
    """CPU time of the thread (PROFILED_CLOCK=cpu, the default): waits on the database or a lock cost nothing,
    so the figures say where the CPU goes; PROFILED_CLOCK=wall counts the waits too."""
    if os.environ.get("PROFILED_CLOCK", "cpu") == "wall":
        return cProfile.Profile()
    return cProfile.Profile(time.thread_time)


def _profiled_run(self: threading.Thread) -> None:
    profile = _new_profile()
    with _lock:
        _profiles.append((self, profile))
    profile.enable()
    try:
        _original_run(self)
    finally:
        profile.disable()


def dump(path: str) -> None:
    stats: pstats.Stats | None = None
    with _lock:
        profiles = list(_profiles)
    for thread, profile in profiles:
        if thread is not None and thread.is_alive():
            continue  # still running (a daemon thread): its profiler cannot be read from here
        profile.create_stats()
        if not getattr(profile, "stats", None):
            continue
        if stats is None:
            stats = pstats.Stats(profile)
        else:
            stats.add(profile)
    if stats is not None:
        stats.dump_stats(path)


def main() -> Any:
    module = os.environ["PROFILED_MODULE"]
    out = os.environ["PROFILED_OUT"]
    threading.Thread.run = _profiled_run  # type: ignore[method-assign]
    sys.argv = [module, *sys.argv[1:]]
    main_profile = _new_profile()
    with _lock:
        _profiles.append((None, main_profile))
    main_profile.enable()
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as done:
        return done.code
    finally:
        main_profile.disable()
        dump(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
