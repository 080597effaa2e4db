"""The supervisor, with real worker processes, real signals and a real Redis."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from typing import Any

import pytest

from telephony.connections import get_redis, reset_clients
from telephony.keys import Keys
from telephony.models import ServiceEvent
from telephony.procutil import pid_alive, wait_for
from telephony.protocol import Heartbeat, SupervisorRecord
from telephony.state import (
    DEGRADED,
    READY,
    STOPPED,
    ServiceState,
    now_ms,
    read_state,
)
from telephony.supervisor.events import EventSink
from tests.helpers import ProcessTracker, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

HOST = socket.gethostname()
# Workers import the Telnyx SDK (1-2 s alone); on a busy 2-core machine a start can take
# much longer. Waits are generous; nothing asserts a tight timing.
START = 90.0  # as long as TELEPHONY_WORKER_START_TIMEOUT below: slow, not hung
FAST = {
    "TELEPHONY_HEARTBEAT_INTERVAL": "0.2",
    "TELEPHONY_HEARTBEAT_TIMEOUT": "1.0",
    "TELEPHONY_SHUTDOWN_GRACE": "2",
    "TELEPHONY_STATE_CACHE_TTL": "0",
    "TELEPHONY_RECONCILE_INTERVAL": "3600",
    "TELEPHONY_WORKER_START_TIMEOUT": "90",  # a loaded machine is not a hung worker
    "TELNYX_API_KEY": "x",  # no request reaches Telnyx in these tests
    "TELNYX_BASE_URL": "http://127.0.0.1:9/v2",
}


@pytest.fixture
def sup_env(subprocess_env: dict[str, str], settings: Any) -> dict[str, str]:
    """Environment for supervisor subprocesses; the test process reads with the same timings."""
    settings.TELEPHONY_HEARTBEAT_TIMEOUT = 1.0
    settings.TELEPHONY_STATE_CACHE_TTL = 0
    return {**subprocess_env, **FAST}


def start_supervisor(
    procs: ProcessTracker, env: dict[str, str], workers: int = 2, **extra: str
) -> subprocess.Popen[bytes]:
    return procs.manage("telephony_supervisor", "--workers", str(workers), env={**env, **extra})


def sid(sup: subprocess.Popen[bytes]) -> str:
    return f"{HOST}:{sup.pid}"


def record(sup: subprocess.Popen[bytes]) -> SupervisorRecord | None:
    raw = get_redis().get(Keys.supervisor(sid(sup)))
    return SupervisorRecord.decode(raw) if raw else None


def worker_pids(sup: subprocess.Popen[bytes], state: ServiceState | None = None) -> list[int]:
    """Pids of this supervisor's live (heartbeating, serving) workers."""
    state = state or read_state()
    return sorted(w.pid for w in state.workers if w.supervisor_id == sid(sup) and w.serving)


def spare_pids(sup: subprocess.Popen[bytes]) -> list[int]:
    """Pids of this supervisor's idle spares (loaded, beating, taking no requests)."""
    return sorted(
        w.pid
        for w in read_state().workers
        if w.supervisor_id == sid(sup) and w.spare and not w.draining
    )


def beat_of(pid: int) -> Heartbeat:
    return next(w for w in read_state().workers if w.pid == pid)


def wait_ready(
    procs: ProcessTracker, sup: subprocess.Popen[bytes], workers: int, timeout: float = START
) -> list[int]:
    """Wait until the service is ready with ``workers`` of this supervisor's workers."""

    def ready() -> bool:
        state = read_state()
        rec = next((s for s in state.supervisors if s.id == sid(sup)), None)
        return (
            state.status == READY
            and rec is not None
            # It has seen each of them beat, too: "running" alone means one of them. A worker
            # killed before its supervisor saw it beat is a failed start, not a crash.
            and rec.state == "running"
            and rec.alive == workers
            and len(worker_pids(sup, state)) == workers
        )

    ok = wait_for(lambda: sup.poll() is not None or ready(), timeout=timeout, interval=0.1)
    assert ok and sup.poll() is None, f"not ready: {read_state()}\n{procs.output(sup)[-3000:]}"
    return worker_pids(sup)


def settle(pids: list[int]) -> None:
    """Let freshly started workers get past their first beat before they are signalled.

    A worker SIGTERMed within milliseconds of its first heartbeat can wedge in its intake
    cancellation (a worker bug, reported); the supervisor SIGKILLs such a worker after its
    grace, but an orphan has nobody to do that. Waits for a second beat of each.
    """
    first = {pid: beat_of(pid).beat_at for pid in pids}
    wait_until(lambda: all(beat_of(p).beat_at > first[p] for p in pids), timeout=10)


def events(kind: str, **filters: Any) -> list[ServiceEvent]:
    """Events of one kind, oldest first (the supervisor writes them from a thread)."""
    return list(ServiceEvent.objects.filter(kind=kind, **filters).order_by("id"))


def wait_events(kind: str, n: int = 1, timeout: float = 10.0, **filters: Any) -> list[ServiceEvent]:
    assert wait_for(lambda: len(events(kind, **filters)) >= n, timeout=timeout), (
        f"fewer than {n} {kind} events: {[e.kind for e in ServiceEvent.objects.order_by('id')]}"
    )
    return events(kind, **filters)


def gone(pids: list[int]) -> bool:
    return not any(pid_alive(p) for p in pids)


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_supervisor__replaces_a_sigkilled_worker_and_survives_a_redis_restart(
    own_redis, procs, sup_env
) -> None:
    # The window outlasts the test on a loaded machine: the one failure must stay in it.
    env = {
        **sup_env,
        "REDIS_URL": own_redis.url,
        "TELEPHONY_MAX_RESTARTS": "1",
        "TELEPHONY_RESTART_WINDOW": "600",
    }
    sup = start_supervisor(procs, env, workers=2)
    victim, survivor = wait_ready(procs, sup, 2)
    own_redis.stop()
    wait_events("redis_unreachable")  # the supervisor noticed before the kill
    os.kill(victim, signal.SIGKILL)  # counts: 1 failure, the most allowed here
    # Its replacement cannot write its first beat and exits: that must not count.
    exits = wait_events("worker_exited", 2, timeout=60)
    assert [e.data["counted"] for e in exits[:2]] == [True, False], [e.message for e in exits]
    # The kill is seen as one, a crash (it also stands for "replaces a SIGKILLed worker").
    assert exits[0].worker_id == f"{HOST}:{victim}"
    assert exits[0].data["signal"] == "SIGKILL" and exits[0].data["expected"] is False
    assert wait_events("worker_restarted")[0].data["replaces"] == f"{HOST}:{victim}"
    assert sup.poll() is None
    own_redis.start()
    reset_clients()
    pids = wait_ready(procs, sup, 2)
    # Past the recovery grace (2 heartbeat timeouts: judging again), a heartbeat timeout more.
    restored_at = wait_events("redis_restored")[0].data["at"]
    wait_until(lambda: now_ms() > restored_at + 3_000, timeout=10, interval=0.1)
    # The survivor was not judged hung for the beats it could not write meanwhile.
    assert wait_ready(procs, sup, 2) == pids and survivor in pids and victim not in pids
    rec = record(sup)
    assert rec is not None and (rec.state, rec.restarts_in_window) == ("running", 1)
    assert rec.restarts == 2  # the victim's replacement, and its own after the outage
    wait_events("redis_unreachable")
    wait_events("redis_restored")
    assert not events("worker_hung")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_supervisor__sigterm_drains_the_workers_and_reports_stopped(procs, sup_env) -> None:
    sup = start_supervisor(procs, sup_env, workers=1)  # one proves it; two cost a start more
    pids = wait_ready(procs, sup, 1)
    settle(pids)
    sup.send_signal(signal.SIGTERM)
    assert sup.wait(timeout=20) == 0, procs.output(sup)[-3000:]
    assert gone(pids)
    state = read_state()
    assert state.status == STOPPED and state.alive == 0
    assert get_redis().exists(Keys.stopped())
    wait_events("supervisor_stopping")
    wait_events("supervisor_stopped")
    assert all(e.data["expected"] for e in events("worker_exited"))
    assert "[Telephony Supervisor] Started workers=1" in procs.output(sup)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_supervisor__sigkill_leaves_no_orphan_worker(procs, sup_env) -> None:
    sup = start_supervisor(procs, sup_env, workers=1)
    pids = wait_ready(procs, sup, 1)
    settle(pids)
    sup.kill()
    sup.wait(timeout=5)
    # PDEATHSIG SIGTERM: the workers drain (grace 2 s) and exit.
    assert wait_for(lambda: gone(pids), timeout=15), [p for p in pids if pid_alive(p)]


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_supervisor__two_supervisors_add_up_a_lost_one_degrades_a_stopped_one_leaves(
    procs, sup_env
) -> None:
    a = start_supervisor(procs, sup_env, workers=1)
    b = start_supervisor(procs, sup_env, workers=1)
    settle(wait_ready(procs, a, 1) + wait_ready(procs, b, 1))
    state = read_state()
    assert (state.status, state.alive, state.desired) == (READY, 2, 2)
    assert len(state.supervisors) == 2

    a.kill()  # a host dies: no graceful stop, its worker dies with it
    a.wait(timeout=10)
    assert wait_for(lambda: read_state().alive == 1, timeout=10)

    # Its record expires a heartbeat timeout after its last write: then it counts as lost.
    def a_is_lost() -> ServiceState | None:
        state = read_state()
        return state if [r.state for r in state.supervisors].count("lost") == 1 else None

    state = wait_until(a_is_lost, timeout=10)
    assert (state.status, state.alive, state.desired) == (DEGRADED, 1, 2)
    # Its replacement on that host supersedes it: back to ready, 2 of 2.
    c = start_supervisor(procs, sup_env, workers=1)
    settle(wait_ready(procs, c, 1))
    assert wait_for(lambda: read_state().status == READY, timeout=20)
    state = read_state()
    assert (state.alive, state.desired) == (2, 2)

    b.send_signal(signal.SIGTERM)
    seen = []
    while b.poll() is None:
        seen.append(read_state().status)
        time.sleep(0.01)
    assert b.returncode == 0
    # While the stopping supervisor still counts its worker, one of two serves: degraded.
    assert DEGRADED in seen, seen
    # Once it stopped on purpose its share is no longer asked for; c still serves.
    state = read_state()
    assert (state.status, state.alive, state.desired) == (READY, 1, 1)
    assert not get_redis().exists(Keys.stopped())  # not the last one: not "stopped"


def test_event_sink__writes_events_and_records_a_state_change_once() -> None:
    def sink(sid_: str) -> EventSink:
        s = EventSink(sid_)
        s.start()
        return s

    a = sink("h:1")
    a.emit("worker_started", "Worker started", state="starting", worker_id="h:5", at=7)
    a.check_state()
    a.close()
    b = sink("h:2")
    b.check_state()  # the same aggregated state, already recorded by h:1
    b.close()
    [started] = events("worker_started")
    assert (started.supervisor_id, started.worker_id, started.data) == ("h:1", "h:5", {"at": 7})
    assert [e.state for e in events("state_changed")] == ["unavailable"]
    r = get_redis()
    r.set(Keys.worker("h:9"), Heartbeat(id="h:9").encode(), px=60_000)
    r.zadd(Keys.workers(), {"h:9": now_ms() + 60_000})
    for sid_ in ("h:1", "h:2"):
        s = sink(sid_)
        s.check_state()
        s.close()
    changes = events("state_changed")
    assert [(e.state, e.supervisor_id) for e in changes] == [
        ("unavailable", "h:1"),
        ("ready", "h:1"),
    ]
    assert changes[1].data["previous"] == "unavailable" and changes[1].data["healthy"] is True
