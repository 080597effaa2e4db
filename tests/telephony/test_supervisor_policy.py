"""The restart policy: backoff, jitter, cap and intensity, on an injected clock."""

from __future__ import annotations

import pytest

from telephony.supervisor.policy import PolicyConfig, RestartPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _policy(rand: float = 0.5, **cfg) -> tuple[RestartPolicy, Clock]:
    clock = Clock()
    config = PolicyConfig(**{"max_restarts": 3, "window": 60.0, **cfg})
    return RestartPolicy(config, clock=clock, rand=lambda: rand), clock


def test_policy__backoff_doubles_from_the_base() -> None:
    policy, _ = _policy(backoff_base=0.5, backoff_max=10.0)
    delays = [policy.on_failure().delay for _ in range(3)]
    assert delays == [0.5, 1.0, 2.0]  # rand 0.5: no jitter


def test_policy__backoff_is_capped() -> None:
    policy, _ = _policy(backoff_base=1.0, backoff_max=3.0, max_restarts=10)
    delays = [policy.on_failure().delay for _ in range(5)]
    assert delays == [1.0, 2.0, 3.0, 3.0, 3.0]


@pytest.mark.parametrize("rand", [0.0, 0.25, 0.999])
def test_policy__jitter_spreads_but_delays_still_grow(rand: float) -> None:
    policy, _ = _policy(rand=rand, backoff_base=0.5, backoff_max=100.0, max_restarts=10)
    delays = [policy.on_failure().delay for _ in range(6)]
    for attempt, delay in enumerate(delays):
        raw = 0.5 * 2**attempt
        assert raw * 0.8 <= delay <= raw * 1.2
    assert delays == sorted(delays) and len(set(delays)) == len(delays)


def test_policy__more_than_max_restarts_in_the_window_gives_up() -> None:
    policy, clock = _policy(max_restarts=3, window=60.0)
    for _ in range(3):
        decision = policy.on_failure()
        assert decision.restart
        clock.now += 5
    decision = policy.on_failure()
    assert not decision.restart and decision.failures_in_window == 4


def test_policy__failures_older_than_the_window_are_forgotten() -> None:
    policy, clock = _policy(max_restarts=3, window=60.0, backoff_base=0.5)
    for _ in range(3):
        policy.on_failure()
    clock.now += 60.001  # healthy for a whole window: a clean slate
    assert policy.in_window() == 0
    decision = policy.on_failure()
    assert decision.restart and decision.failures_in_window == 1 and decision.delay == 0.5


def test_policy__window_slides_one_failure_at_a_time() -> None:
    policy, clock = _policy(max_restarts=2, window=10.0)
    policy.on_failure()  # t=0
    clock.now += 6
    policy.on_failure()  # t=6
    clock.now += 5  # t=11: the first one left the window
    assert policy.in_window() == 1
    assert policy.on_failure().restart  # 2 in window: allowed
    assert not policy.on_failure().restart  # 3 in window: more than 2


def test_policy__reset_clears_the_window_but_keeps_the_total() -> None:
    policy, _ = _policy(max_restarts=1)
    policy.on_failure()
    assert not policy.on_failure().restart
    policy.reset()
    assert policy.in_window() == 0
    assert policy.on_failure().restart
    assert policy.snapshot() == {"in_window": 1, "total": 3}


def test_policy__reads_settings_when_asked(settings) -> None:
    settings.TELEPHONY_MAX_RESTARTS = 7
    settings.TELEPHONY_RESTART_WINDOW = 12.5
    settings.TELEPHONY_RESTART_BACKOFF_BASE = 0.25
    settings.TELEPHONY_RESTART_BACKOFF_MAX = 4.0
    assert PolicyConfig.from_settings() == PolicyConfig(
        max_restarts=7, window=12.5, backoff_base=0.25, backoff_max=4.0
    )
