"""The request log: one entry per API request, for tests to audit delivery guarantees.

Each entry records the ``X-Request-Id`` and ``X-Request-Deadline`` our adapter sends,
whether the operation was *executed* (it ran against the sandbox's state and succeeded)
and when, so tests can assert "every request_id executed exactly once" and "none
executed after its deadline". Entry shape::

    {"ts": 1732240000123,          # epoch ms when the request arrived
     "method": "POST", "path": "/v2/calls", "operation": "DialCall",
     "status": 200,                 # status answered; null when no answer was sent (hang)
     "request_id": "...", "deadline": 1732240001000,   # from the headers, else null
     "latency_ms": 200,             # injected latency
     "duration_ms": 201.3,          # measured time in the sandbox
     "fault": null | "status=503" | "hang" | "malformed",
     "executed": true, "executed_at": 1732240000323,   # epoch ms, null if not executed
     "call_control_id": "...", "client_state": "..."}  # a Dial's new call, else null
"""

from __future__ import annotations

import json
import logging
from collections import deque
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)

MAX_ENTRIES = 200_000


class RequestLog:
    """Entries in memory (bounded), optionally appended to a JSON-lines file."""

    def __init__(self, path: Path | None = None) -> None:
        self.entries: deque[dict[str, Any]] = deque(maxlen=MAX_ENTRIES)
        self._file: IO[str] | None = None
        if path is not None:
            self._file = path.open("a", encoding="utf-8")

    def add(self, entry: dict[str, Any]) -> None:
        """Record one request; a failing log file is reported, never raised."""
        self.entries.append(entry)
        if self._file is not None:
            try:
                self._file.write(json.dumps(entry, separators=(",", ":")) + "\n")
                self._file.flush()
            except OSError:
                logger.exception("[Telnyx Sandbox] Cannot write the request log file")

    def clear(self) -> None:
        """Forget the in-memory entries (the file keeps its history)."""
        self.entries.clear()

    def close(self) -> None:
        """Close the log file, if any."""
        if self._file is not None:
            self._file.close()
            self._file = None


def deadline_header(value: str | None) -> int | None:
    """``X-Request-Deadline`` as epoch ms; None when absent or not a number."""
    if not value:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None
