"""A worker process's own life: how it runs and ends, and what its memory costs.

Shared by the two ways a worker starts: a cold ``manage.py telephony_worker`` and a fork of
the template (:mod:`telephony.worker.template`).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import NoReturn


def run_worker(*, concurrency: int | None, spare: bool) -> NoReturn:
    """Serve until stopped, then end the process at once (exit code 0)."""
    if os.environ.get("TELEPHONY_TEST_CRASH_AT_START"):
        # Test knob for the supervisor's restart-intensity tests.
        sys.stderr.write("[Telephony Worker] crashing at start (TELEPHONY_TEST_CRASH_AT_START)\n")
        sys.stderr.flush()
        os._exit(3)
    import uvloop

    from telephony.worker.main import TelephonyWorker

    # uvloop: the worker's event loop in C. py-spy had the asyncio loop's own scheduling
    # and socket writes at a fifth of the worker's CPU per request (docs/BENCHMARKS.md §11).
    uvloop.run(TelephonyWorker(concurrency=concurrency, spare=spare).run())
    # Everything is drained and closed: skip the interpreter's slow teardown of the
    # Telnyx SDK's thousands of modules (0.5-1.5 s on every worker exit).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@dataclass(frozen=True)
class Memory:
    """A process's memory in MB: resident, proportional (shared pages split between their
    sharers) and unique (pages no other process maps: what it would free by exiting)."""

    rss_mb: float = 0.0
    pss_mb: float = 0.0
    uss_mb: float = 0.0


_USS_FIELDS = ("Private_Clean", "Private_Dirty", "Private_Hugetlb")


def memory(pid: int | str = "self") -> Memory:
    """Read ``/proc/<pid>/smaps_rollup`` (Linux 4.14+); zeros where it cannot be read."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            lines = f.read().splitlines()
    except OSError:
        return Memory()
    kb: dict[str, int] = {}
    for line in lines[1:]:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            kb[name] = int(parts[0])
    uss = sum(kb.get(name, 0) for name in _USS_FIELDS)
    return Memory(
        rss_mb=round(kb.get("Rss", 0) / 1024, 1),
        pss_mb=round(kb.get("Pss", 0) / 1024, 1),
        uss_mb=round(uss / 1024, 1),
    )


MEMORY_EVERY = 5.0  # seconds: reading smaps_rollup walks the page tables (ms for 175 MB)
_last: tuple[float, Memory] = (-MEMORY_EVERY, Memory())


def own_memory() -> Memory:
    """This process's :func:`memory`, read at most every ``MEMORY_EVERY`` seconds (heartbeats
    come every second and run on the event loop)."""
    global _last
    now = time.monotonic()
    if now - _last[0] >= MEMORY_EVERY:
        _last = (now, memory())
    return _last[1]
