"""Shares of a py-spy profile (``--format raw``: one ``frame;frame;... count`` per line).

    python -m bench.spy_summary /tmp/503.txt get_user sessions/backends db/backends

For each marker, the share of the busy samples whose stack has a frame containing it
(a sample may count under several markers). Idle samples are left out: a thread waiting
for work in a thread pool, or asyncio's loop waiting in ``select``/``epoll``.
"""

from __future__ import annotations

import sys
from pathlib import Path

IDLE_LEAVES = ("_worker (concurrent/futures/thread.py", "select (selectors.py")


def shares(path: Path, markers: list[str]) -> tuple[int, dict[str, float]]:
    busy = 0
    hits = dict.fromkeys(markers, 0)
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if any(idle in frames[-1] for idle in IDLE_LEAVES):
            continue
        busy += int(count)
        for marker in markers:
            if marker in stack:
                hits[marker] += int(count)
    return busy, {m: (n / busy if busy else 0.0) for m, n in hits.items()}


def main() -> None:
    path, *markers = sys.argv[1:]
    busy, found = shares(Path(path), markers)
    print(f"{busy} busy samples")
    for marker, share in found.items():
        print(f"{share:7.1%}  {marker}")


if __name__ == "__main__":
    main()
