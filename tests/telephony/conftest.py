"""Fixtures for tests that need the Telnyx sandbox and real worker processes."""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers

from devserver.embedded_redis import EmbeddedRedis
from devserver.sandbox.control import SandboxProcess
from telephony.connections import get_async_redis, get_redis, reset_clients
from telephony.keys import Keys
from telephony.layers import channel_layers_config
from telephony.procutil import wait_for
from telephony.protocol import Heartbeat
from telephony.state import now_ms
from telephony.worker import main as worker_main
from telephony.worker.main import TelephonyWorker
from tests.helpers import ProcessTracker, await_until
from tests.telephony.recording_helpers import (  # noqa: F401 (the recording tests' fixtures)
    download_server,
    fake,
    fetcher,
    storage_dir,
)
from tests.telephony.test_webhooks import call, key  # noqa: F401 (also the recording tests')

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


def fake_ready_worker() -> None:
    """A heartbeat with nobody behind it: the state says ready, requests go unanswered."""
    r = get_redis()
    r.set(
        Keys.worker("ghost:1"),
        Heartbeat(id="ghost:1", pid=1).encode(),
        px=60_000,
    )
    r.zadd(Keys.workers(), {"ghost:1": now_ms() + 60_000})


def worker_beat(pid: int) -> Heartbeat | None:
    """The live heartbeat of the worker with this pid, if any."""
    for name in get_redis().scan_iter(match=Keys.worker("*")):
        raw = get_redis().get(name)
        if raw and (beat := Heartbeat.decode(raw)).pid == pid:
            return beat
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


class Workers:
    """``TelephonyWorker`` run inside the test's event loop: no process start, no signals.

    Each has a layer and a ``worker_id`` of its own; ``adapter_factory`` (None: the real
    adapter, built from settings) makes its adapter. All are stopped and awaited at the end.
    """

    def __init__(self) -> None:
        self.tasks: dict[TelephonyWorker, asyncio.Task[None]] = {}
        self.adapter_factory: Callable[[], Any] | None = None

    async def start(
        self, *, concurrency: int = 8, clock: Callable[[], float] = time.time, **kw: Any
    ) -> TelephonyWorker:
        adapter = kw.pop("adapter", None)
        if adapter is None and self.adapter_factory is not None:
            adapter = self.adapter_factory()
        worker = TelephonyWorker(
            adapter=adapter,
            layer=channel_layers.make_backend(DEFAULT_CHANNEL_LAYER),
            concurrency=concurrency,
            clock=clock,
            worker_id=f"test-host:{900_000 + len(self.tasks)}",
            **kw,
        )
        self.tasks[worker] = asyncio.create_task(worker.run(handle_signals=False))
        await await_until(
            lambda: get_async_redis().exists(Keys.worker(worker.worker_id)), timeout=10
        )
        return worker

    async def stop(self, worker: TelephonyWorker) -> None:
        """What SIGTERM does: stop intake, drain, forget the heartbeat."""
        worker.stop()
        await asyncio.wait_for(self.tasks[worker], timeout=15)

    async def stop_all(self) -> None:
        for worker in self.tasks:
            worker.stop()
        await asyncio.wait_for(asyncio.gather(*self.tasks.values()), timeout=15)


@pytest.fixture
async def in_process_workers(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Workers]:
    """In-process workers with short intervals; the real adapter unless a test sets one."""
    # A stop ends intake within one idle pop: 0.1 s here instead of 1 (Redis takes decimals).
    monkeypatch.setattr(worker_main, "INTAKE_IDLE", 0.1)
    settings.TELEPHONY_HEARTBEAT_INTERVAL = 0.05
    settings.TELEPHONY_HEARTBEAT_TIMEOUT = 2.0
    settings.TELEPHONY_RECONCILE_INTERVAL = 3600
    settings.TELEPHONY_SHUTDOWN_GRACE = 5
    settings.TELEPHONY_STATE_CACHE_TTL = 0
    settings.TELEPHONY_ACCOUNT_CREDENTIAL_LIMIT = 1000  # seats: not a free account's 5
    running = Workers()
    try:
        yield running
    finally:
        await running.stop_all()


@pytest.fixture
def sandbox_workers(in_process_workers: Workers, telnyx: SandboxProcess, settings: Any) -> Workers:
    """In-process workers whose real adapter talks to the sandbox."""
    settings.TELNYX_API_KEY = telnyx.api_key
    settings.TELNYX_BASE_URL = telnyx.base_url
    settings.TELNYX_CONNECTION_ID = telnyx.connection_id
    settings.TELNYX_CALL_CONNECTION_ID = telnyx.call_connection_id
    settings.TELNYX_FROM_NUMBER = telnyx.from_number
    return in_process_workers
