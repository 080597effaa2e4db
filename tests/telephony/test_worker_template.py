"""The worker template, with real processes: forked workers serve, share nothing they must
not, survive the template's death (cold fallback), and a rolling restart runs new code.

Each test starts one supervisor whose template loads the SDK once (a few seconds on a busy
machine); the workers themselves are forked in milliseconds.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
from asgiref.sync import async_to_sync

from telephony import control
from telephony.procutil import wait_for
from telephony.web.client import get_telephony_service
from tests.helpers import ProcessTracker
from tests.telephony.test_supervisor import (
    FAST,
    START,
    beat_of,
    events,
    record,
    start_supervisor,
    wait_events,
    wait_ready,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120), pytest.mark.slow]


@pytest.fixture
def tpl_env(subprocess_env: dict[str, str], settings: Any) -> dict[str, str]:
    settings.TELEPHONY_HEARTBEAT_TIMEOUT = 1.0
    settings.TELEPHONY_STATE_CACHE_TTL = 0
    return {**subprocess_env, **FAST, "TELEPHONY_WORKER_PRELOAD": "true"}


def template_of(sup: subprocess.Popen[bytes]) -> psutil.Process:
    """The supervisor's ready template process, as its record names it."""

    def ready() -> bool:
        rec = record(sup)
        return rec is not None and rec.template_state == "ready"

    assert wait_for(ready, timeout=START), f"no ready template: {record(sup)}"
    rec = record(sup)
    assert rec is not None
    return psutil.Process(rec.template_pid)


def sockets(pid: int) -> set[str]:
    """The process's open sockets (``socket:[inode]``): shared ones would be the same."""
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


def test_template__forks_serve_share_nothing_and_a_killed_template_means_cold_starts(
    procs: ProcessTracker, tpl_env: dict[str, str]
) -> None:
    """One supervisor for both halves: each start loads the SDK (seconds on a busy host)."""
    sup = start_supervisor(procs, tpl_env, workers=2, TELEPHONY_RESTART_BACKOFF_BASE="0.05")
    pids = wait_ready(procs, sup, 2)
    template = template_of(sup)
    wait_events("template_ready")
    assert not events("template_fallback"), "the workers should have been forked"
    for pid in pids:  # forked, then re-parented to the supervisor (a child subreaper)
        worker = psutil.Process(pid)
        assert worker.ppid() == sup.pid and worker.pid != template.pid
        assert "--template" in worker.cmdline() and worker.name() == "tel-worker"
    pong = async_to_sync(get_telephony_service().aping)(timeout=5.0)
    assert pong["worker_id"] in {f"{socket.gethostname()}:{p}" for p in pids}
    # Its control socket and the idle self-pipe of the event loop daphne makes at import.
    assert len(sockets(template.pid)) == 3, "the template opened a connection"
    a, b = (sockets(p) for p in pids)
    assert a and b and not a & b, "each worker opens its own connections"
    assert not (a | b) & sockets(template.pid), "the control socket was closed in the fork"
    beats = [beat_of(p) for p in pids]
    assert all(0 < b.uss_mb <= b.pss_mb <= b.rss_mb for b in beats), beats

    template.kill()
    wait_events("template_exited")
    victim = pids[0]
    os.kill(victim, signal.SIGKILL)  # before the template is back: a cold start
    fallback = wait_events("template_fallback")[0]
    assert "template" in fallback.message and fallback.data["pid"] != victim
    cold = fallback.data["pid"]
    assert cold in wait_ready(procs, sup, 2)
    assert "--template" not in psutil.Process(cold).cmdline()  # a plain telephony_worker
    back = wait_events("template_ready", 2, timeout=START)[-1]
    assert back.data["generation"] == 2 and template_of(sup).pid != template.pid


def test_template__rolling_restart_runs_the_new_code(
    procs: ProcessTracker, tpl_env: dict[str, str], tmp_path: Path
) -> None:
    module = tmp_path / "marker_settings.py"
    module.write_text("from config.settings import *  # noqa\nTELEPHONY_WORKER_CONCURRENCY = 7\n")
    env = {
        **tpl_env,
        "DJANGO_SETTINGS_MODULE": "marker_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path]),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    sup = start_supervisor(procs, env, workers=2)
    old = wait_ready(procs, sup, 2)
    assert {beat_of(p).concurrency for p in old} == {7}
    module.write_text("from config.settings import *  # noqa\nTELEPHONY_WORKER_CONCURRENCY = 9\n")
    assert control.request_restart()
    ok = wait_for(lambda: events("rolling_restart", data__phase="finished") != [], timeout=START)
    assert ok, procs.output(sup)[-3000:]
    new = wait_ready(procs, sup, 2)
    assert not set(new) & set(old)
    assert {beat_of(p).concurrency for p in new} == {9}, "a restarted worker ran old code"
    assert [e.data["generation"] for e in events("template_ready")] == [1, 2]


def test_template__closes_connections_and_a_postgresql_pool_before_forking(monkeypatch) -> None:
    from telephony.worker import template

    closed = []

    class Sqlite:
        def close(self) -> None:
            closed.append("sqlite")

    class Postgres(Sqlite):
        def close_pool(self) -> None:  # its pool's threads would not come with a fork
            closed.append("pool")

    monkeypatch.setattr(template.connections, "close_all", lambda: closed.append("all"))
    monkeypatch.setattr(
        template.connections, "all", lambda initialized_only=False: [Sqlite(), Postgres()]
    )
    template.close_databases()
    assert closed == ["all", "pool"]
