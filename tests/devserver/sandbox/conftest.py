"""Fixtures for the sandbox tests: one real sandbox process, a real webhook receiver.

``sandbox_server`` is one ``manage.py telnyx_sandbox`` process for the session, with
short call timings; ``sandbox`` resets it before each test. ``receiver`` is a real HTTP
server on 127.0.0.1 in a thread that records webhooks; each test takes its own path under
it, so deliveries from earlier tests never mix in. ``sdk`` is the official (sync) SDK
and ``api`` a plain httpx client, both pointed at the sandbox with its key.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import httpx
import pytest
import telnyx

from devserver.sandbox.control import SandboxProcess
from telephony.procutil import pid_alive
from tests.helpers import WebhookReceiver, webhook_receiver

FAST_CALLS = ["--initiated-after", "0.02", "--answer-after", "0.2", "--talk-time", "0.5"]


def sandbox_env() -> dict[str, str]:
    """The test environment without any real Telnyx settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("TELNYX_", "TELEPHONY_"))}


@pytest.fixture(scope="session")
def receiver() -> Iterator[WebhookReceiver]:
    """The webhook receiver, a real server on 127.0.0.1."""
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxProcess]:
    """One sandbox process for the whole session, stopped by pid even when tests fail."""
    proc = SandboxProcess.start(args=FAST_CALLS, env=sandbox_env())
    try:
        yield proc
    finally:
        proc.stop(grace=5)
        if pid_alive(proc.pid):
            os.kill(proc.pid, signal.SIGKILL)


@pytest.fixture
def sandbox(sandbox_server: SandboxProcess) -> SandboxProcess:
    """The session sandbox, reset: no credentials, calls, faults or log entries."""
    sandbox_server.reset()
    return sandbox_server


@pytest.fixture
def sdk(sandbox: SandboxProcess) -> Iterator[telnyx.Telnyx]:
    """The official SDK pointed at the sandbox, without retries (tests see each answer)."""
    sdk = telnyx.Telnyx(api_key=sandbox.api_key, base_url=sandbox.base_url, max_retries=0)
    try:
        yield sdk
    finally:
        sdk.close()


@pytest.fixture
def api(sandbox: SandboxProcess) -> Iterator[httpx.Client]:
    """A plain HTTP client with the sandbox's bearer key, for what the SDK cannot send."""
    headers = {"Authorization": f"Bearer {sandbox.api_key}"}
    with httpx.Client(base_url=sandbox.base_url, headers=headers, timeout=10) as c:
        yield c
