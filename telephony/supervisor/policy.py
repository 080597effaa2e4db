"""The supervisor's restart policy: exponential backoff with jitter, and restart intensity.

Pure and deterministic given its clock and random source, so the rules are tested in
milliseconds instead of by crashing real processes. The rules (Erlang's "MaxR in MaxT"):

- every unexpected worker exit (crash, or killed because it hung) is one *failure*;
- the failures of the last ``window`` seconds are kept in a sliding window, so a service
  that stays healthy for a whole window is back to a clean slate;
- more than ``max_restarts`` failures inside the window means: give up (``failed``);
- otherwise the replacement starts after ``base * 2**(n - 1)`` seconds (``n`` = failures
  in the window), spread by +/- ``jitter`` so that many supervisors do not restart in
  lock step, and never later than ``cap``.

:class:`SupervisorConfig` gathers these with the supervisor's other timings and limits.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings


@dataclass(frozen=True)
class PolicyConfig:
    """The knobs of :class:`RestartPolicy` (seconds)."""

    max_restarts: int = 3
    window: float = 60.0
    backoff_base: float = 0.5
    backoff_max: float = 10.0
    jitter: float = 0.2

    @classmethod
    def from_settings(cls) -> PolicyConfig:
        """Read the settings now (not at import), so tests and each process can differ."""
        return cls(
            max_restarts=int(settings.TELEPHONY_MAX_RESTARTS),
            window=float(settings.TELEPHONY_RESTART_WINDOW),
            backoff_base=float(settings.TELEPHONY_RESTART_BACKOFF_BASE),
            backoff_max=float(settings.TELEPHONY_RESTART_BACKOFF_MAX),
        )


@dataclass(frozen=True)
class Decision:
    """What to do about one failure: restart after ``delay`` seconds, or give up."""

    restart: bool
    delay: float
    failures_in_window: int


class RestartPolicy:
    """Counts failures in a sliding window and says when, or whether, to restart."""

    def __init__(
        self,
        config: PolicyConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.config = config or PolicyConfig()
        self.clock = clock
        self.rand = rand
        self._failures: deque[float] = deque()
        self.total_failures = 0

    def _prune(self) -> None:
        horizon = self.clock() - self.config.window
        while self._failures and self._failures[0] <= horizon:
            self._failures.popleft()

    def in_window(self) -> int:
        """Failures inside the current window."""
        self._prune()
        return len(self._failures)

    def backoff(self, attempt: int) -> float:
        """Delay before restart number ``attempt`` (0-based) of the current window."""
        cfg = self.config
        raw = cfg.backoff_base * (2 ** min(attempt, 32))
        spread = 1.0 + cfg.jitter * (2.0 * self.rand() - 1.0)
        return max(0.0, min(cfg.backoff_max, raw * spread))

    def on_failure(self) -> Decision:
        """Record one failure now and decide about the replacement."""
        self._prune()
        self._failures.append(self.clock())
        self.total_failures += 1
        n = len(self._failures)
        if n > self.config.max_restarts:
            return Decision(restart=False, delay=0.0, failures_in_window=n)
        return Decision(restart=True, delay=self.backoff(n - 1), failures_in_window=n)

    def reset(self) -> None:
        """Forget the window (an operator's reset after ``failed``)."""
        self._failures.clear()

    def snapshot(self) -> dict[str, Any]:
        return {"in_window": self.in_window(), "total": self.total_failures}


MAX_SPARES = 4
TICK = 0.05  # the supervisor's loop period: the longest a crash goes unnoticed


@dataclass(frozen=True)
class SupervisorConfig:
    """Timings and limits, read from settings when the supervisor is built (seconds).

    ``start_timeout`` (``TELEPHONY_WORKER_START_TIMEOUT``): a worker that has not beaten
    once by then is hung. ``kill_grace`` (``TELEPHONY_KILL_GRACE``): SIGTERM to SIGKILL
    for a hung worker.
    """

    heartbeat_interval: float = 1.0
    heartbeat_timeout: float = 3.0
    start_timeout: float = 30.0
    kill_grace: float = 2.0
    shutdown_grace: float = 10.0
    max_requests: int = 10_000
    max_rss_mb: float = 512.0
    spares: int = 0
    policy: PolicyConfig = field(default_factory=PolicyConfig)

    @classmethod
    def from_settings(cls) -> SupervisorConfig:
        return cls(
            heartbeat_interval=float(settings.TELEPHONY_HEARTBEAT_INTERVAL),
            heartbeat_timeout=float(settings.TELEPHONY_HEARTBEAT_TIMEOUT),
            start_timeout=float(settings.TELEPHONY_WORKER_START_TIMEOUT),
            kill_grace=float(settings.TELEPHONY_KILL_GRACE),
            shutdown_grace=float(settings.TELEPHONY_SHUTDOWN_GRACE),
            max_requests=int(settings.TELEPHONY_WORKER_MAX_REQUESTS),
            max_rss_mb=float(settings.TELEPHONY_WORKER_MAX_RSS_MB),
            spares=max(0, min(int(settings.TELEPHONY_SPARE_WORKERS), MAX_SPARES)),
            policy=PolicyConfig.from_settings(),
        )

    @property
    def poll_interval(self) -> float:
        """How often heartbeats and control commands are read."""
        return max(TICK, min(0.25, self.heartbeat_interval / 2))
