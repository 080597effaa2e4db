"""Fixtures for the operators' views: users with and without the control permission,
records written to Redis the way supervisors and workers write them, and a real
supervisor when the behaviour lives in the processes."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from telephony.connections import get_redis
from telephony.keys import Keys
from telephony.protocol import (
    BreakerDetail,
    Heartbeat,
    LastEvent,
    LatencySummary,
    SupervisorRecord,
    WorkerSummary,
)
from telephony.state import now_ms
from tests.helpers import ProcessTracker
from tests.telephony.test_supervisor import FAST, sid, wait_ready

HOST = socket.gethostname()


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def make_user(username: str, *, staff: bool, control: bool = False) -> Any:
    user = get_user_model().objects.create_user(username, password="pw", is_staff=staff)
    if control:
        user.user_permissions.add(
            Permission.objects.get(codename="control_service", content_type__app_label="telephony")
        )
    return user


def client_for(user: Any, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


@pytest.fixture
def operator() -> Any:
    """Staff with ``telephony.control_service``."""
    return make_user("operator", staff=True, control=True)


@pytest.fixture
def viewer() -> Any:
    """Staff without the control permission: may look, may not touch."""
    return make_user("viewer", staff=True)


@pytest.fixture
def customer() -> Any:
    """A logged-in user who is not staff."""
    return make_user("customer", staff=False)


def put_supervisor(
    supervisor_id: str,
    *,
    state: str = "running",
    desired: int = 1,
    restarts: int = 0,
    workers: list[WorkerSummary] | None = None,
    lost: bool = False,
) -> SupervisorRecord:
    """A supervisor record as ``SupervisorStore`` publishes it (``lost``: it expired
    without saying it stopped, 30 s ago)."""
    host, pid = supervisor_id.rsplit(":", 1)
    ts = now_ms() - (30_000 if lost else 0)
    rec = SupervisorRecord(
        id=supervisor_id,
        host=host,
        pid=int(pid),
        state=state,
        desired=desired,
        alive=len(workers or []),
        restarts=restarts,
        restarts_in_window=min(restarts, 3),
        workers=tuple(workers or ()),
        last_event=LastEvent(kind="worker_started", message="Worker started", at=ts),
        started_at=ts - 3_600_000,
        updated_at=ts,
        template_pid=int(pid) + 1,  # its preloaded worker template, ready to fork
        template_state="ready",
    )
    r = get_redis()
    # A minute to live, not the real 3 s: a loaded machine may take that long to reach the
    # request; the page judges ages by the timestamps inside.
    if not lost:
        r.set(Keys.supervisor(supervisor_id), rec.encode(), px=60_000)
    r.hset(Keys.supervisors_last(), supervisor_id, rec.encode())
    r.zadd(Keys.supervisors(), {supervisor_id: ts})
    return rec


def put_worker(
    worker_id: str, *, supervisor_id: str = "", beat_age_ms: int = 0, **fields: Any
) -> Heartbeat:
    """A worker heartbeat as ``TelephonyWorker._beat`` writes it (``fields`` override)."""
    host, pid = worker_id.rsplit(":", 1)
    beat = now_ms() - beat_age_ms
    rec = Heartbeat(
        id=worker_id,
        host=host,
        pid=int(pid),
        supervisor_id=supervisor_id,
        started_at=beat - 125_000,
        beat_at=beat,
        handled=40,
        failed=2,
        in_flight=1,
        rss_mb=88.4,
        pss_mb=40.2,
        uss_mb=21.7,
        last_error="timeout",
        breaker="closed",
        breaker_detail=BreakerDetail(failure_rate=0.05, calls=20),
        latency=LatencySummary(window=40, p50_ms=4.0, p99_ms=30.0, errors={"timeout": 2}),
    )
    rec = replace(rec, **fields)
    r = get_redis()
    r.set(Keys.worker(worker_id), rec.encode(), px=60_000)
    r.zadd(Keys.workers(), {worker_id: beat})
    return rec


@pytest.fixture
def users(settings: Any) -> dict[str, Any]:
    """The analytics tests' calls with known answers (tests/dashboard/analytics_data.py),
    read in their time zone; the agents by name."""
    from tests.dashboard.analytics_data import TZ_NAME, make_calls

    settings.TIME_ZONE = TZ_NAME
    return make_calls()


@pytest.fixture
def sup_env(subprocess_env: dict[str, str], settings: Any) -> dict[str, str]:
    """Environment for a real supervisor; this process reads with the same timings."""
    settings.TELEPHONY_HEARTBEAT_TIMEOUT = 1.0
    settings.TELEPHONY_HEARTBEAT_INTERVAL = 0.2
    settings.TELEPHONY_STATE_CACHE_TTL = 0
    return {**subprocess_env, **FAST}


@pytest.fixture
def supervisor(
    procs: ProcessTracker, sup_env: dict[str, str]
) -> Callable[..., tuple[subprocess.Popen[bytes], list[int]]]:
    """Start a real ``telephony_supervisor`` and wait until its workers serve."""

    def start(workers: int = 1) -> tuple[subprocess.Popen[bytes], list[int]]:
        sup = procs.manage("telephony_supervisor", "--workers", str(workers), env=sup_env)
        return sup, wait_ready(procs, sup, workers)

    return start


__all__ = ["HOST", "client_for", "make_user", "put_supervisor", "put_worker", "sid"]
