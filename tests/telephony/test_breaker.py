"""Circuit breaker: failure rate, slow calls, half-open probing; clock injected."""

from __future__ import annotations

from telephony.worker.breaker import CLOSED, HALF_OPEN, OPEN, BreakerConfig, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _breaker(clock: Clock, **kw) -> CircuitBreaker:
    cfg = BreakerConfig(
        **{
            "window": 10,
            "min_calls": 4,
            "failure_rate": 0.5,
            "open_seconds": 5,
            "half_open_probes": 2,
            **kw,
        }
    )
    return CircuitBreaker(cfg, clock=clock)


def test_breaker__opens_at_failure_rate_and_refuses_calls() -> None:
    clock = Clock()
    b = _breaker(clock)
    for ok in (True, False, True, True):
        b.record(success=ok, duration=0.01)
    assert b.state == CLOSED  # 25 % failures
    b.record(success=False, duration=0.01)
    b.record(success=False, duration=0.01)
    assert b.state == OPEN  # 3 of 6
    assert not b.allow()


def test_breaker__needs_min_calls_before_judging() -> None:
    b = _breaker(Clock())
    for _ in range(3):
        b.record(success=False, duration=0.01)
    assert b.state == CLOSED


def test_breaker__opens_on_slow_calls() -> None:
    b = _breaker(Clock(), slow_call_seconds=1.0, slow_rate=0.75)
    for _ in range(4):
        b.record(success=True, duration=2.0)
    assert b.state == OPEN


def test_breaker__half_open_probes_then_closes() -> None:
    clock = Clock()
    b = _breaker(clock)
    for _ in range(4):
        b.record(success=False, duration=0.01)
    clock.t += 5
    assert b.state == HALF_OPEN
    assert b.allow() and b.allow()
    assert not b.allow()  # only two probes at a time
    b.record(success=True, duration=0.01)
    b.record(success=True, duration=0.01)
    assert b.state == CLOSED
    assert b.allow()


def test_breaker__failed_probe_reopens() -> None:
    clock = Clock()
    b = _breaker(clock)
    for _ in range(4):
        b.record(success=False, duration=0.01)
    clock.t += 5
    assert b.allow()
    b.record(success=False, duration=0.01)
    assert b.state == OPEN
    clock.t += 4.9
    assert b.state == OPEN
    clock.t += 0.2
    assert b.state == HALF_OPEN


def test_breaker__operator_can_force_it() -> None:
    b = _breaker(Clock())
    b.forced = "open"
    assert b.state == OPEN and not b.allow()
    b.forced = "closed"
    for _ in range(10):
        b.record(success=False, duration=0.01)
    assert b.state == CLOSED and b.allow()
    b.forced = None
    assert b.state == CLOSED
    assert b.snapshot().opened_count == 0
