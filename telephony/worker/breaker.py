"""A circuit breaker around the provider, per worker process.

Closed: calls flow; the last ``window`` outcomes are kept. When at least ``min_calls``
are known and the failure rate or the slow-call rate reaches its threshold, it opens.
Open: calls are refused at once (``CircuitOpen``) for ``open_seconds``. Half-open: a
few probe calls go through; all of them succeeding closes it, any failure reopens it.
An operator can force it open or closed (maintenance switch) through Redis.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from telephony.protocol import BreakerDetail

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True)
class BreakerConfig:
    window: int = 20
    min_calls: int = 10
    failure_rate: float = 0.5
    slow_call_seconds: float = 3.0
    slow_rate: float = 0.8
    open_seconds: float = 10.0
    half_open_probes: int = 3


class CircuitBreaker:
    """Failure-rate and slow-call breaker with half-open probing and an injected clock."""

    def __init__(
        self, config: BreakerConfig | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config or BreakerConfig()
        self.clock = clock
        self.forced: str | None = None
        self._state = CLOSED
        self._opened_at = 0.0
        self._outcomes: deque[tuple[bool, bool]] = deque(maxlen=self.config.window)
        self._probes_in_flight = 0
        self._probe_successes = 0
        self.opened_count = 0

    @property
    def state(self) -> str:
        if self.forced in (OPEN, CLOSED):
            return self.forced
        if self._state == OPEN and self.clock() - self._opened_at >= self.config.open_seconds:
            self._state = HALF_OPEN
            self._probes_in_flight = 0
            self._probe_successes = 0
        return self._state

    @property
    def failure_rate(self) -> float:
        if not self._outcomes:
            return 0.0
        return sum(1 for ok, _ in self._outcomes if not ok) / len(self._outcomes)

    @property
    def slow_rate(self) -> float:
        if not self._outcomes:
            return 0.0
        return sum(1 for _, slow in self._outcomes if slow) / len(self._outcomes)

    def allow(self) -> bool:
        """May a call go to the provider now? (Counts a half-open probe when it may.)"""
        state = self.state
        if state == CLOSED:
            return True
        if state == OPEN:
            return False
        if self._probes_in_flight + self._probe_successes >= self.config.half_open_probes:
            return False
        self._probes_in_flight += 1
        return True

    def record(self, *, success: bool, duration: float) -> None:
        """Record one provider call's outcome."""
        slow = duration >= self.config.slow_call_seconds
        if self.forced in (OPEN, CLOSED):
            return
        if self._state == HALF_OPEN:
            self._probes_in_flight = max(0, self._probes_in_flight - 1)
            if not success or slow:
                self._open()
                return
            self._probe_successes += 1
            if self._probe_successes >= self.config.half_open_probes:
                self._state = CLOSED
                self._outcomes.clear()
            return
        if self._state == OPEN:
            return  # a straggler that started before it opened
        self._outcomes.append((success, slow))
        if len(self._outcomes) >= self.config.min_calls and (
            self.failure_rate >= self.config.failure_rate or self.slow_rate >= self.config.slow_rate
        ):
            self._open()

    def _open(self) -> None:
        self._state = OPEN
        self._opened_at = self.clock()
        self._outcomes.clear()
        self.opened_count += 1

    def snapshot(self) -> BreakerDetail:
        """What the heartbeat publishes."""
        return BreakerDetail(
            state=self.state,
            forced=self.forced,
            failure_rate=round(self.failure_rate, 3),
            slow_rate=round(self.slow_rate, 3),
            calls=len(self._outcomes),
            opened_count=self.opened_count,
        )


def breaker_from_settings() -> CircuitBreaker:
    """A breaker configured from ``TELEPHONY_BREAKER_*`` (read now, not at import)."""
    from django.conf import settings

    return CircuitBreaker(
        BreakerConfig(
            window=int(settings.TELEPHONY_BREAKER_WINDOW),
            min_calls=int(settings.TELEPHONY_BREAKER_MIN_CALLS),
            failure_rate=float(settings.TELEPHONY_BREAKER_FAILURE_RATE),
            slow_call_seconds=float(settings.TELEPHONY_BREAKER_SLOW_CALL_SECONDS),
            slow_rate=float(settings.TELEPHONY_BREAKER_SLOW_RATE),
            open_seconds=float(settings.TELEPHONY_BREAKER_OPEN_SECONDS),
            half_open_probes=int(settings.TELEPHONY_BREAKER_HALF_OPEN_PROBES),
        )
    )
