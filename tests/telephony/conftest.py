"""Fixtures for tests that need the Telnyx sandbox and real worker processes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devserver.sandbox.control import SandboxProcess
from telephony.connections import Keys, get_redis
from telephony.procutil import wait_for
from telephony.state import now_ms
from tests.conftest import ProcessTracker

FAST = {
    "TELEPHONY_HEARTBEAT_INTERVAL": "0.2",
    "TELEPHONY_HEARTBEAT_TIMEOUT": "1.0",
    "TELEPHONY_SHUTDOWN_GRACE": "2",
    "TELEPHONY_STATE_CACHE_TTL": "0",
}


@pytest.fixture(scope="session")
def telnyx_server() -> Iterator[SandboxProcess]:
    """One sandbox process for the session (stopped by pid at the end)."""
    sandbox = SandboxProcess.start(
        args=["--answer-after", "0.2", "--talk-time", "1.0", "--credential-limit", "1000"]
    )
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def telnyx(telnyx_server: SandboxProcess) -> Iterator[SandboxProcess]:
    """The sandbox with a clean slate: no state, faults or log from other tests."""
    telnyx_server.reset()
    yield telnyx_server
    telnyx_server.clear_faults()


@pytest.fixture
def worker_env(
    subprocess_env: dict[str, str], telnyx: SandboxProcess, settings: Any
) -> dict[str, str]:
    """Environment for worker subprocesses: the sandbox, short intervals."""
    settings.TELEPHONY_HEARTBEAT_TIMEOUT = 1.0
    settings.TELEPHONY_STATE_CACHE_TTL = 0
    settings.TELNYX_FROM_NUMBER = telnyx.from_number
    return {
        **subprocess_env,
        **FAST,
        "TELNYX_API_KEY": telnyx.api_key,
        "TELNYX_BASE_URL": telnyx.base_url,
        "TELNYX_CONNECTION_ID": telnyx.connection_id,
        "TELNYX_CALL_CONNECTION_ID": telnyx.call_connection_id,
        "TELNYX_FROM_NUMBER": telnyx.from_number,
        # The session sandbox allows 1000 credentials: so many seats, not a free account's 5.
        "TELEPHONY_ACCOUNT_CREDENTIAL_LIMIT": "1000",
    }


def fake_ready_worker() -> None:
    """A heartbeat with nobody behind it: the state says ready, requests go unanswered."""
    r = get_redis()
    r.set(
        Keys.worker("ghost:1"),
        json.dumps({"id": "ghost:1", "pid": 1, "breaker": "closed"}),
        px=60_000,
    )
    r.zadd(Keys.workers(), {"ghost:1": now_ms() + 60_000})


def worker_beat(pid: int) -> dict[str, Any] | None:
    """The live heartbeat of the worker with this pid, if any."""
    for key in get_redis().scan_iter(match=Keys.worker("*")):
        raw = get_redis().get(key)
        if raw and json.loads(raw).get("pid") == pid:
            return json.loads(raw)
    return None


@pytest.fixture
def start_worker(
    procs: ProcessTracker, worker_env: dict[str, str]
) -> Callable[..., subprocess.Popen[bytes]]:
    """Start a real ``telephony_worker`` and wait for its first heartbeat."""

    def start(
        *args: str, env: dict[str, str] | None = None, wait: bool = True
    ) -> subprocess.Popen[bytes]:
        proc = procs.manage("telephony_worker", *args, env={**worker_env, **(env or {})})
        if wait:
            ok = wait_for(
                lambda: proc.poll() is not None or worker_beat(proc.pid) is not None, timeout=30
            )
            assert ok and proc.poll() is None, f"worker did not start:\n{procs.output(proc)}"
        return proc

    return start
