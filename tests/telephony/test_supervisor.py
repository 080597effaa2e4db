"""The supervisor, with real worker processes, real signals and a real Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from devserver.embedded_redis import EmbeddedRedis
from telephony.connections import get_redis, reset_clients
from telephony.keys import Keys
from telephony.layers import channel_layers_config
from telephony.models import ServiceEvent
from telephony.procutil import pid_alive, wait_for
from telephony.protocol import Heartbeat, SupervisorRecord
from telephony.state import (
    DEGRADED,
    FAILED,
    READY,
    STOPPED,
    ServiceState,
    now_ms,
    read_state,
)
from telephony.supervisor.events import EventSink
from telephony.web.client import get_telephony_service
from tests.conftest import ProcessTracker

pytestmark = pytest.mark.django_db(transaction=True)

HOST = socket.gethostname()
# Workers import the Telnyx SDK (1-2 s alone); on a busy 2-core machine a start can take
# much longer. Waits are generous; nothing asserts a tight timing.
START = 60.0
FAST = {
    "TELEPHONY_HEARTBEAT_INTERVAL": "0.2",
    "TELEPHONY_HEARTBEAT_TIMEOUT": "1.0",
    "TELEPHONY_SHUTDOWN_GRACE": "2",
    "TELEPHONY_STATE_CACHE_TTL": "0",
    "TELEPHONY_RECONCILE_INTERVAL": "3600",
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
            and rec.state == "running"  # it has seen its workers beat, too
            and len(worker_pids(sup, state)) == workers
        )

    ok = wait_for(lambda: sup.poll() is not None or ready(), timeout=timeout, interval=0.1)
    assert ok and sup.poll() is None, f"not ready: {read_state()}\n{procs.output(sup)[-3000:]}"
    return worker_pids(sup)


def settle() -> None:
    """Let freshly started workers get past their first beat before they are signalled.

    A worker SIGTERMed within milliseconds of its first heartbeat can wedge in its intake
    cancellation (a worker bug, reported); the supervisor SIGKILLs such a worker after its
    grace, but an orphan has nobody to do that.
    """
    time.sleep(1.0)


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
@pytest.mark.timeout(120)
def test_supervisor__replaces_a_worker_killed_with_sigkill(procs, sup_env) -> None:
    sup = start_supervisor(procs, sup_env, workers=2)
    victim = wait_ready(procs, sup, 2)[0]
    os.kill(victim, signal.SIGKILL)
    ok = wait_for(
        lambda: victim not in worker_pids(sup) and len(worker_pids(sup)) == 2, timeout=START
    )
    assert ok, procs.output(sup)[-3000:]
    wait_ready(procs, sup, 2)
    exited = wait_events("worker_exited", worker_id=f"{HOST}:{victim}")[0]
    assert exited.data["signal"] == "SIGKILL" and exited.data["expected"] is False
    restarted = wait_events("worker_restarted")[0]
    assert restarted.data["replaces"] == f"{HOST}:{victim}"
    assert getattr(record(sup), "restarts", None) == 1


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_supervisor__kills_and_replaces_a_stopped_worker(procs, sup_env) -> None:
    sup = start_supervisor(procs, sup_env, workers=1)
    [victim] = wait_ready(procs, sup, 1)
    os.kill(victim, signal.SIGSTOP)
    stopped_at = time.monotonic()
    # Heartbeat timeout (1 s) + kill grace (2 s) + the poll period, with a wide margin.
    assert wait_for(lambda: not pid_alive(victim), timeout=15), procs.output(sup)[-3000:]
    assert time.monotonic() - stopped_at < 15
    hung = wait_events("worker_hung", worker_id=f"{HOST}:{victim}")[0]
    assert "heartbeat" in hung.data["why"]
    [replacement] = wait_ready(procs, sup, 1)
    assert replacement != victim
    assert wait_events("worker_restarted")[0].data["replaces"] == f"{HOST}:{victim}"


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_supervisor__a_spare_takes_over_a_killed_worker_at_once(procs, sup_env) -> None:
    sup = start_supervisor(procs, sup_env, workers=1, TELEPHONY_SPARE_WORKERS="1")
    [victim] = await sync_to_async(wait_ready)(procs, sup, 1)
    assert await sync_to_async(wait_for)(lambda: len(spare_pids(sup)) == 1, timeout=START)
    [spare] = await sync_to_async(spare_pids)(sup)
    state = await sync_to_async(read_state)()
    assert (state.status, state.alive, state.desired) == (READY, 1, 1)  # a spare is not counted
    service = get_telephony_service()
    for _ in range(10):
        await service.aping(timeout=10)
    await asyncio.sleep(0.5)  # a beat later, the counts are in the heartbeats
    assert (await sync_to_async(beat_of)(spare)).handled == 0  # idle: took nothing

    os.kill(victim, signal.SIGKILL)
    took_over = await sync_to_async(wait_for)(lambda: worker_pids(sup) == [spare], timeout=10)
    assert took_over, procs.output(sup)[-3000:]
    assert (await service.aping(timeout=10))["worker_id"] == f"{HOST}:{spare}"
    restarted = (await sync_to_async(wait_events)("worker_restarted"))[0].data
    assert restarted["spare"] is True and restarted["delay"] == 0
    assert restarted["replaces"] == f"{HOST}:{victim}" and restarted["pid"] == spare
    assert getattr(await sync_to_async(record)(sup), "restarts", None) == 1
    # A new spare is started behind it, after the failure's backoff.
    renewed = await sync_to_async(wait_for)(
        lambda: len(spare_pids(sup)) == 1 and spare_pids(sup) != [spare], timeout=START
    )
    assert renewed, procs.output(sup)[-3000:]


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_supervisor__a_killed_spare_is_started_again_and_counts_as_a_failure(
    procs, sup_env
) -> None:
    sup = start_supervisor(procs, sup_env, workers=1, TELEPHONY_SPARE_WORKERS="1")
    [active] = wait_ready(procs, sup, 1)
    assert wait_for(lambda: len(spare_pids(sup)) == 1, timeout=START)
    [spare] = spare_pids(sup)
    os.kill(spare, signal.SIGKILL)
    exited = wait_events("worker_exited", worker_id=f"{HOST}:{spare}")[0].data
    assert exited["reason"] == "spare" and exited["counted"] is True
    assert wait_for(lambda: spare_pids(sup) not in ([], [spare]), timeout=START)
    assert worker_pids(sup) == [active]  # the serving worker was never touched
    assert read_state().status == READY


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_supervisor__crash_loop_backs_off_then_fails_and_reset_resumes(procs, sup_env) -> None:
    from telephony.control import request_reset

    sup = start_supervisor(
        procs,
        sup_env,
        workers=1,
        TELEPHONY_TEST_CRASH_AT_START="1",
        TELEPHONY_MAX_RESTARTS="3",
        TELEPHONY_RESTART_WINDOW="300",
    )
    ok = wait_for(lambda: read_state().status == FAILED, timeout=90, interval=0.1)
    assert ok, f"{read_state()}\n{procs.output(sup)[-3000:]}"
    assert sup.poll() is None  # failed, but still running so that it can be reset
    rec = record(sup)
    assert rec is not None
    assert (rec.state, rec.restarts, rec.restarts_in_window) == ("failed", 3, 4)
    wait_events("restart_intensity_exceeded")
    exits = [e.data for e in wait_events("worker_exited", 4)]
    restarts = [e.data for e in wait_events("worker_restarted", 3)]
    delays = [x["restart_in"] for x in exits[:3]]
    assert exits[3]["restart_in"] is None
    assert delays == sorted(delays) and delays[0] < delays[1] < delays[2], delays
    assert 0.4 <= delays[0] <= 0.6  # base 0.5 s, +/- 20 % jitter
    for exited, restarted in zip(exits, restarts, strict=False):
        # Each replacement started no earlier than its backoff said.
        assert restarted["at"] - exited["at"] >= exited["restart_in"] * 1000 - 20

    assert request_reset(user_id=None) == [sid(sup)]
    reset = wait_events("reset")[0]
    assert reset.data["previous_state"] == "failed"
    # Restarts resume: a new worker is started after the reset, the window starts over.
    started = wait_events("worker_started", 2)[-1]
    assert started.data["at"] >= reset.data["at"]
    assert wait_for(lambda: getattr(record(sup), "state", None) != "failed", timeout=5)
    rec = record(sup)
    assert rec is not None and (rec.restarts_in_window <= 1 or rec.state == "failed")


@pytest.fixture
def own_redis(settings: Any, telephony_redis: str):
    """A Redis of this test's own, on a short socket path, that the test may stop."""
    tmp = Path(tempfile.mkdtemp(prefix="tsr-"))
    server = EmbeddedRedis(tmp / "r.sock").start()
    settings.REDIS_URL = server.url
    settings.CHANNEL_LAYERS = channel_layers_config(server.url, prefix=telephony_redis)
    reset_clients()
    try:
        yield server
    finally:
        reset_clients()
        server.stop()
        for child in tmp.iterdir():
            child.unlink()
        tmp.rmdir()


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_supervisor__survives_a_redis_restart(own_redis, procs, sup_env) -> None:
    env = {**sup_env, "REDIS_URL": own_redis.url, "TELEPHONY_MAX_RESTARTS": "1"}
    sup = start_supervisor(procs, env, workers=2)
    victim, survivor = wait_ready(procs, sup, 2)
    own_redis.stop()
    time.sleep(0.5)
    os.kill(victim, signal.SIGKILL)  # counts: 1 failure, the most allowed here
    # Its replacement cannot write its first beat and exits: that must not count.
    exits = wait_events("worker_exited", 2, timeout=60)
    assert exits[1].data["counted"] is False, [e.message for e in exits]
    assert sup.poll() is None
    own_redis.start()
    reset_clients()
    pids = wait_ready(procs, sup, 2)
    time.sleep(2.5)  # past the recovery grace (2 heartbeat timeouts): judging again
    # The survivor was not judged hung for the beats it could not write meanwhile.
    assert wait_ready(procs, sup, 2) == pids and survivor in pids and victim not in pids
    rec = record(sup)
    assert rec is not None and (rec.state, rec.restarts_in_window) == ("running", 1)
    wait_events("redis_unreachable")
    wait_events("redis_restored")
    assert not events("worker_hung")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_supervisor__sigterm_drains_the_workers_and_reports_stopped(procs, sup_env) -> None:
    sup = start_supervisor(procs, sup_env, workers=2)
    pids = wait_ready(procs, sup, 2)
    settle()
    sup.send_signal(signal.SIGTERM)
    assert sup.wait(timeout=20) == 0, procs.output(sup)[-3000:]
    assert gone(pids)
    state = read_state()
    assert state.status == STOPPED and state.alive == 0
    assert get_redis().exists(Keys.stopped())
    wait_events("supervisor_stopping")
    wait_events("supervisor_stopped")
    assert all(e.data["expected"] for e in events("worker_exited"))
    assert "[Telephony Supervisor] Started workers=2" in procs.output(sup)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_supervisor__sigkill_leaves_no_orphan_worker(procs, sup_env) -> None:
    sup = start_supervisor(procs, sup_env, workers=2)
    pids = wait_ready(procs, sup, 2)
    settle()
    sup.kill()
    sup.wait(timeout=5)
    # PDEATHSIG SIGTERM: the workers drain (grace 2 s) and exit.
    assert wait_for(lambda: gone(pids), timeout=15), [p for p in pids if pid_alive(p)]


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("spares", ["0", "1"])
async def test_supervisor__recycles_at_max_requests_without_failing_a_request(
    procs, sup_env, spares
) -> None:
    limits = {"TELEPHONY_WORKER_MAX_REQUESTS": "20", "TELEPHONY_SPARE_WORKERS": spares}
    sup = start_supervisor(procs, sup_env, workers=2, **limits)
    first = await sync_to_async(wait_ready)(procs, sup, 2)
    service = get_telephony_service()
    ok, failed = 0, []
    recycled: list[ServiceEvent] = []
    old: list[int] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            await service.aping(timeout=10)
            ok += 1
        except Exception as e:
            failed.append(repr(e))
        if ok % 25 == 0:
            recycled = await sync_to_async(events)("worker_recycled")
            old = [p for p in first if f"{HOST}:{p}" in {e.worker_id for e in recycled}]
            if old and gone(old):  # replaced, drained under load, exited
                break
    assert not failed, failed[:5]
    assert old and gone(old), procs.output(sup)[-3000:]
    assert ok > 40 and all(e.data["reason"] == "max_requests" for e in recycled)
    assert await sync_to_async(events)("worker_restarted") == []  # not counted as restarts
    assert getattr(await sync_to_async(record)(sup), "restarts", None) == 0


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_supervisor__two_supervisors_add_up_and_stopping_one_degrades(procs, sup_env) -> None:
    a = start_supervisor(procs, sup_env, workers=1)
    b = start_supervisor(procs, sup_env, workers=1)
    wait_ready(procs, a, 1)
    wait_ready(procs, b, 1)
    state = read_state()
    assert (state.status, state.alive, state.desired) == (READY, 2, 2)
    assert len(state.supervisors) == 2
    settle()
    a.send_signal(signal.SIGTERM)
    seen = []
    while a.poll() is None:
        seen.append(read_state().status)
        time.sleep(0.01)
    assert a.returncode == 0
    # While the stopping supervisor still counts its worker, one of two serves: degraded.
    assert DEGRADED in seen, seen
    # Once it stopped on purpose its share is no longer asked for; b still serves.
    state = read_state()
    assert (state.status, state.alive, state.desired) == (READY, 1, 1)
    assert not get_redis().exists(Keys.stopped())  # not the last one: not "stopped"


def test_supervisor__one_of_two_killed_stays_degraded_until_it_returns(procs, sup_env) -> None:
    a = start_supervisor(procs, sup_env, workers=1)
    b = start_supervisor(procs, sup_env, workers=1)
    wait_ready(procs, a, 1)
    wait_ready(procs, b, 1)
    settle()
    a.kill()  # a host dies: no graceful stop, its worker dies with it
    a.wait(timeout=10)
    assert wait_for(lambda: read_state().alive == 1, timeout=10)
    time.sleep(2.5)  # well past the heartbeat timeout: its record has expired
    state = read_state()
    assert (state.status, state.alive, state.desired) == (DEGRADED, 1, 2)
    assert [s.state for s in state.supervisors].count("lost") == 1
    # Its replacement on that host supersedes it: back to ready, 2 of 2.
    c = start_supervisor(procs, sup_env, workers=1)
    wait_ready(procs, c, 1)
    assert wait_for(lambda: read_state().status == READY, timeout=20)
    state = read_state()
    assert (state.alive, state.desired) == (2, 2)


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
