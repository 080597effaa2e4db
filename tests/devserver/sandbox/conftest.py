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
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import telnyx

from devserver.sandbox.control import SandboxProcess
from telephony.procutil import pid_alive

FAST_CALLS = ["--initiated-after", "0.02", "--answer-after", "0.2", "--talk-time", "0.5"]


def sandbox_env() -> dict[str, str]:
    """The test environment without any real Telnyx settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("TELNYX_", "TELEPHONY_"))}


@dataclass
class Hook:
    """One webhook request as the receiver got it."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class WebhookReceiver:
    """A real HTTP server that records every POST; ``fail[path] = n`` answers 503 n times."""

    port: int = 0
    hooks: list[Hook] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def url(self) -> str:
        """A fresh URL whose deliveries belong to the calling test only."""
        return f"http://127.0.0.1:{self.port}/hooks/{uuid.uuid4().hex}"

    def received(self, url: str) -> list[Hook]:
        path = httpx.URL(url).path
        with self.cond:
            return [h for h in self.hooks if h.path == path]

    def wait(self, url: str, count: int, timeout: float = 10.0) -> list[Hook]:
        """Block until ``count`` deliveries reached ``url``."""
        path = httpx.URL(url).path
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                got = [h for h in self.hooks if h.path == path]
                left = end - time.monotonic()
                if len(got) >= count or left <= 0:
                    return got
                self.cond.wait(left)


@pytest.fixture(scope="session")
def receiver() -> Iterator[WebhookReceiver]:
    """The webhook receiver, a real server on 127.0.0.1."""
    receiver = WebhookReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with receiver.cond:
                if receiver.fail.get(self.path, 0) > 0:
                    receiver.fail[self.path] -= 1
                    status = 503
                else:
                    status = 200
                    hook = Hook(
                        self.path,
                        {k.lower(): v for k, v in self.headers.items()},
                        body,
                        time.time(),
                    )
                    receiver.hooks.append(hook)
                    receiver.cond.notify_all()
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


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
