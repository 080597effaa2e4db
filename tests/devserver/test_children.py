"""serve's child watcher: restart with capped exponential backoff, never give up, stop in
reverse order. Driven by an injected clock and stand-in processes, so it runs in ms."""

from __future__ import annotations

from itertools import count
from typing import Any

from devserver.children import Child, ChildWatcher
from telephony.supervisor.policy import PolicyConfig

CONFIG = PolicyConfig(max_restarts=10**9, window=60.0, backoff_base=0.5, backoff_max=2.0, jitter=0)
_pids = count(100)


class FakeProc:
    """What the watcher uses of a Popen: pid, poll(), returncode."""

    def __init__(self) -> None:
        self.pid = next(_pids)
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def watcher(clock: Clock, lines: list[str]) -> ChildWatcher:
    return ChildWatcher(log=lines.append, config=CONFIG, clock=clock)


def test_watcher__restarts_a_dead_child_after_a_growing_capped_backoff() -> None:
    clock, lines = Clock(), []
    w = watcher(clock, lines)
    child = w.add(Child("sandbox", FakeProc))
    delays = []
    for _ in range(5):
        child.proc.returncode = -9
        assert w.poll() is None
        assert child.restart_at is not None
        delays.append(child.restart_at - clock.now)
        clock.now = child.restart_at - 0.01
        w.poll()
        assert child.proc.returncode == -9  # not yet
        clock.now = child.restart_at
        w.poll()
        assert child.restart_at is None and child.proc.returncode is None
    assert delays == [0.5, 1.0, 2.0, 2.0, 2.0]  # doubling, capped, never giving up
    assert child.restarts == 5
    assert lines[0] == "sandbox exited with code -9; restarting it in 0.5 s"
    assert lines[1] == f"sandbox restarted, pid {child.pid - 4}"


def test_watcher__a_failed_start_is_retried_with_more_backoff() -> None:
    clock, lines = Clock(), []
    attempts: list[int] = []

    def start() -> Any:
        attempts.append(1)
        if len(attempts) == 2:
            raise OSError("address in use")
        return FakeProc()

    w = watcher(clock, lines)
    child = w.add(Child("redis", start))
    child.proc.returncode = 1
    w.poll()
    clock.now = child.restart_at
    w.poll()
    assert child.proc is None and child.restart_at == clock.now + 1.0
    assert lines[-1] == "redis did not start (address in use); restarting it in 1.0 s"
    clock.now = child.restart_at
    w.poll()
    assert child.proc is not None and len(attempts) == 3


def test_watcher__a_dead_critical_child_is_reported_not_restarted() -> None:
    clock, lines = Clock(), []
    w = watcher(clock, lines)
    w.add(Child("redis", FakeProc))
    web = w.add(Child("web", FakeProc, critical=True))
    assert w.poll() is None
    web.proc.returncode = -9
    assert w.poll() is web
    assert web.restart_at is None
    assert lines == ["web exited with code -9; stopping"]


def test_watcher__stops_children_last_started_first() -> None:
    clock, stopped = Clock(), []
    w = watcher(clock, [])
    for name in ("redis", "sandbox", "supervisor", "web"):
        w.add(Child(name, FakeProc, stop=lambda p, n=name: stopped.append(n)))
    w.stop_all()
    assert stopped == ["web", "supervisor", "sandbox", "redis"]
    assert w.children == []
