"""The supervisor's decisions, in this process: fake children, an injected clock, real Redis.

``Supervisor`` is built with a spawner that hands out fake processes (the test decides
when they exit and what they beat into Redis) and a monotonic clock the test advances;
each ``tick`` is one pass of its loop. Restarts, backoff, intensity, spares, recycling
and hang detection are judged here in milliseconds. What only real processes show
(signals reaching them, PDEATHSIG, stdout) stays in ``test_supervisor.py``.
"""

from __future__ import annotations

import json
import signal
import socket
from typing import Any

import pytest

from telephony import control
from telephony.connections import Keys, get_redis
from telephony.protocol import FAILED, RUNNING
from telephony.state import now_ms
from telephony.supervisor.loop import Supervisor
from telephony.supervisor.policy import PolicyConfig, SupervisorConfig

HOST = socket.gethostname()


class FakeProc:
    """A child process as ``subprocess.Popen`` shows it; the test decides when it exits."""

    def __init__(self, pid: int, *, spare: bool) -> None:
        self.pid = pid
        self.spare = spare
        self.returncode: int | None = None
        self.signals: list[int] = []

    @property
    def worker_id(self) -> str:
        return f"{HOST}:{self.pid}"

    def poll(self) -> int | None:
        return self.returncode

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)
        if sig == signal.SIGKILL:
            self.returncode = -signal.SIGKILL

    def exit(self, code: int = 1) -> None:
        self.returncode = code

    def beat(self, *, age_ms: int = 0, **fields: Any) -> None:
        """Write this worker's heartbeat, as ``TelephonyWorker._beat`` does."""
        beat = {"id": self.worker_id, "pid": self.pid, "beat_at": now_ms() - age_ms}
        beat.update({"handled": 0, "rss_mb": 50.0, "spare": self.spare, **fields})
        get_redis().set(Keys.worker(self.worker_id), json.dumps(beat), px=60_000)


class Spawner:
    """Hands out fake children; remembers every one, in order."""

    def __init__(self) -> None:
        self.procs: list[FakeProc] = []

    def __call__(self, supervisor_id: str, *, spare: bool = False) -> FakeProc:
        proc = FakeProc(4_000_000 + len(self.procs), spare=spare)
        self.procs.append(proc)
        return proc

    def alive(self) -> list[FakeProc]:
        return [p for p in self.procs if p.returncode is None]


class Clock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Events:
    """Stands in for ``EventSink``: keeps what the supervisor emitted."""

    def __init__(self) -> None:
        self.emitted: list[tuple[str, dict[str, Any]]] = []

    def emit(self, kind: str, message: str = "", *, state: str = "", **data: Any) -> None:
        self.emitted.append((kind, data))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [data for k, data in self.emitted if k == kind]

    def check_state(self) -> None:
        pass


class Harness:
    """A supervisor with fake children; ``tick(dt)`` advances the clock and runs one pass."""

    def __init__(self, *, workers: int = 1, rand: float = 0.5, **cfg: Any) -> None:
        policy = PolicyConfig(**{k: cfg.pop(k) for k in list(cfg) if k in POLICY_KEYS})
        config = SupervisorConfig(
            heartbeat_interval=0.05,
            heartbeat_timeout=1.0,
            start_timeout=10.0,
            kill_grace=2.0,
            policy=policy,
            **cfg,
        )
        self.spawner, self.clock, self.events = Spawner(), Clock(), Events()
        self.sup = Supervisor(workers=workers, config=config, spawn=self.spawner, clock=self.clock)
        self.sup.events = self.events  # type: ignore[assignment]
        self.sup.policy.rand = lambda: rand

    def tick(self, dt: float = 0.0) -> None:
        self.clock.now += dt
        self.sup._tick(self.clock.now)

    def serving(self, n: int = 1) -> list[FakeProc]:
        """Start ``n`` workers and let them beat: the supervisor is running."""
        self.tick()
        procs = self.spawner.alive()
        assert len(procs) == n
        for proc in procs:
            proc.beat()
        self.tick(0.05)
        assert self.sup.state == RUNNING
        return procs


POLICY_KEYS = {"max_restarts", "window", "backoff_base", "backoff_max", "jitter"}


@pytest.fixture
def harness():
    made: list[Harness] = []

    def make(**kw: Any) -> Harness:
        made.append(Harness(**kw))
        return made[-1]

    yield make
    for h in made:
        h.sup.store.close()


def test_supervisor__restarts_a_crashed_worker_after_its_backoff(harness) -> None:
    h = harness(backoff_base=0.5, jitter=0.0)
    [first] = h.serving()
    first.exit(-signal.SIGSEGV)
    h.tick()
    [exited] = h.events.of("worker_exited")
    assert (exited["signal"], exited["expected"], exited["restart_in"]) == ("SIGSEGV", False, 0.5)
    h.tick(0.49)
    assert h.spawner.alive() == []  # still backing off
    h.tick(0.01)
    [second] = h.spawner.alive()
    [restarted] = h.events.of("worker_restarted")
    assert restarted["replaces"] == first.worker_id and restarted["pid"] == second.pid
    assert h.sup.restarts == 1 and h.sup.record()["restarts_in_window"] == 1


@pytest.mark.parametrize(("rand", "factor"), [(0.0, 0.8), (0.5, 1.0), (1.0, 1.2)])
def test_supervisor__backoff_doubles_within_its_jitter_bounds(harness, rand, factor) -> None:
    h = harness(backoff_base=0.5, jitter=0.2, max_restarts=5, rand=rand)
    h.serving()
    for _ in range(4):
        [proc] = h.spawner.alive()
        proc.exit(1)
        h.tick()
        delay = h.events.of("worker_exited")[-1]["restart_in"]
        h.tick(delay)
        assert len(h.spawner.alive()) == 1  # started exactly when its backoff ended
    delays = [e["restart_in"] for e in h.events.of("worker_exited")]
    assert delays == pytest.approx([0.5 * 2**i * factor for i in range(4)])


def test_supervisor__too_many_failures_fail_until_a_reset(harness) -> None:
    h = harness(max_restarts=3, window=60.0, backoff_base=0.1, jitter=0.0)
    h.serving()
    for _ in range(4):
        [proc] = h.spawner.alive()
        proc.exit(1)
        h.tick()
        h.tick(1.0)
    assert h.sup.state == FAILED
    [gave_up] = h.events.of("restart_intensity_exceeded")
    assert gave_up["failures_in_window"] == 4
    assert h.events.of("worker_exited")[-1]["restart_in"] is None
    h.tick(60.0)
    assert h.spawner.alive() == [] and len(h.spawner.procs) == 4  # no more restarts
    h.sup.reset()
    h.tick()
    [fresh] = h.spawner.alive()
    assert h.sup.state != FAILED and h.sup.policy.in_window() == 0
    fresh.beat()
    h.tick(0.05)
    assert h.sup.state == RUNNING


def test_supervisor__failures_outside_the_window_are_forgotten(harness) -> None:
    h = harness(max_restarts=1, window=10.0, backoff_base=0.1, jitter=0.0)
    h.serving()
    for _ in range(3):  # one failure every 11 s: never two in one window
        [proc] = h.spawner.alive()
        proc.exit(1)
        h.tick()
        h.tick(11.0)
    assert h.sup.state != FAILED and len(h.spawner.alive()) == 1


def test_supervisor__a_ready_spare_takes_over_a_crashed_worker_at_once(harness) -> None:
    h = harness(spares=1, backoff_base=0.5, jitter=0.0)
    [active] = h.serving()
    h.tick()
    [spare] = [p for p in h.spawner.alive() if p.spare]
    spare.beat()
    h.tick(0.05)
    active.exit(-signal.SIGKILL)
    h.tick()
    assert signal.SIGUSR1 in spare.signals  # promoted in the same pass
    [restarted] = h.events.of("worker_restarted")
    assert (restarted["spare"], restarted["delay"], restarted["pid"]) == (True, 0.0, spare.pid)
    assert h.sup.record()["alive"] == 1 and h.sup.restarts == 1
    h.tick(0.4)
    assert h.spawner.alive() == [spare]  # the new spare waits out the failure's backoff
    h.tick(0.1)
    [renewed] = [p for p in h.spawner.alive() if p is not spare]
    assert renewed.spare and len(h.spawner.procs) == 3


def test_supervisor__a_killed_spare_counts_and_is_started_again(harness) -> None:
    h = harness(spares=1, backoff_base=0.5, jitter=0.0)
    [active] = h.serving()
    h.tick()
    [spare] = [p for p in h.spawner.alive() if p.spare]
    spare.exit(-signal.SIGKILL)
    h.tick()
    [exited] = h.events.of("worker_exited")
    assert (exited["reason"], exited["counted"]) == ("spare", True)
    h.tick(0.5)
    assert len([p for p in h.spawner.alive() if p.spare]) == 1
    assert active.signals == []  # the serving worker was never touched


@pytest.mark.parametrize(
    ("beat", "reason"), [({"handled": 20}, "max_requests"), ({"rss_mb": 600.0}, "max_rss")]
)
def test_supervisor__recycles_with_the_replacement_serving_first(harness, beat, reason) -> None:
    h = harness(workers=2, max_requests=20, max_rss_mb=512.0)
    old, other = h.serving(2)
    old.beat(**beat)
    h.tick(0.1)
    [standby] = [p for p in h.spawner.alive() if p not in (old, other)]
    assert old.signals == []  # not before its replacement serves
    h.tick(0.1)
    assert old.signals == []
    standby.beat()
    h.tick(0.1)
    assert old.signals[:1] == [signal.SIGTERM]  # now it drains
    [recycled] = h.events.of("worker_recycled")
    assert (recycled["worker_id"], recycled["new_pid"], recycled["reason"]) == (
        old.worker_id,
        standby.pid,
        reason,
    )
    old.exit(0)
    h.tick(0.1)
    exited = h.events.of("worker_exited")[-1]
    assert exited["expected"] is True and h.sup.restarts == 0
    assert other.signals == [] and len(h.spawner.alive()) == 2


def test_supervisor__a_stale_heartbeat_gets_sigterm_then_sigkill(harness) -> None:
    h = harness(backoff_base=0.5, jitter=0.0)
    h.tick()
    [hung] = h.spawner.alive()
    hung.beat(age_ms=5_000)  # its last beat, older than the heartbeat timeout (1 s)
    h.tick(0.3)
    assert hung.signals == [signal.SIGTERM, signal.SIGCONT]
    [event] = h.events.of("worker_hung")
    assert "no heartbeat" in event["why"] and event["pid"] == hung.pid
    h.tick(1.9)
    assert signal.SIGKILL not in hung.signals  # within its kill grace (2 s)
    h.tick(0.1)
    assert hung.signals[-1] == signal.SIGKILL
    h.tick()
    assert h.events.of("worker_exited")[0]["reason"] == "hung"
    h.tick(0.5)
    assert len(h.spawner.alive()) == 1  # replaced after the backoff


def test_supervisor__no_first_heartbeat_within_the_start_timeout_is_hung(harness) -> None:
    h = harness()
    h.tick()
    [silent] = h.spawner.alive()
    h.tick(9.9)
    assert silent.signals == []
    h.tick(0.2)
    assert silent.signals[:1] == [signal.SIGTERM]
    assert "no first heartbeat" in h.events.of("worker_hung")[0]["why"]


def test_supervisor__a_worker_that_drains_on_sigterm_is_not_killed(harness) -> None:
    h = harness()
    h.tick()
    [worker] = h.spawner.alive()
    worker.beat(age_ms=5_000)
    h.tick(0.3)
    assert worker.signals[:1] == [signal.SIGTERM]
    worker.exit(0)  # it heard the SIGTERM and drained in time
    h.tick(1.0)
    h.tick(2.0)
    assert signal.SIGKILL not in worker.signals


def serving_pids(h: Harness) -> set[int]:
    """Children that serve: active, beating, not asked to stop."""
    return {c.pid for c in h.sup.children if c.role == "active" and c.ready and c.term_at is None}


def test_control__scale_up_then_down_through_redis(harness) -> None:
    h = harness(workers=1)
    [first] = h.serving()
    assert control.request_scale(2) == [h.sup.sid]  # reaches it through its Redis record
    h.tick(0.1)
    [second] = [p for p in h.spawner.alive() if p is not first]
    second.beat()
    h.tick(0.1)
    assert serving_pids(h) == {first.pid, second.pid} and h.sup.record()["desired"] == 2
    assert (h.events.of("scaled")[0]["previous"], h.events.of("scaled")[0]["desired"]) == (1, 2)
    assert control.request_scale(1) == [h.sup.sid]
    h.tick(0.1)
    assert second.signals[:1] == [signal.SIGTERM] and first.signals == []  # the youngest goes
    second.exit(0)
    h.tick(0.1)
    assert serving_pids(h) == {first.pid} and h.events.of("worker_restarted") == []


@pytest.mark.parametrize("spares", [0, 1])
def test_control__rolling_restart_replaces_each_worker_before_stopping_it(harness, spares) -> None:
    h = harness(workers=2, spares=spares)
    old = h.serving(2)
    h.tick()
    for spare in h.spawner.alive()[2:]:
        spare.beat()
        old.append(spare)
    h.tick(0.05)
    assert control.request_restart(user_id=None) == [h.sup.sid]
    for _ in range(20):  # every pass: start, beat and stop what the supervisor asks for
        h.tick(0.1)
        assert len(serving_pids(h)) >= 2  # capacity never drops
        for proc in h.spawner.alive():
            if proc not in old:
                proc.beat()
            elif signal.SIGTERM in proc.signals:
                proc.exit(0)
    assert not {p.pid for p in old} & serving_pids(h) and all(p.returncode == 0 for p in old)
    recycled = h.events.of("worker_recycled")
    assert [e["reason"] for e in recycled] == ["rolling_restart"] * 2
    assert [e["phase"] for e in h.events.of("rolling_restart")] == ["started", "finished"]
    assert h.sup.restarts == 0
    new_spares = [c for c in h.sup.children if c.role == "spare"]
    assert len(new_spares) == spares and not {c.pid for c in new_spares} & {p.pid for p in old}
