"""Helpers every kind of test shares: free ports, real processes killed by pid, condition
waits with deadlines, and a real webhook receiver.

One copy of each, so a fix (a port race, a process group left behind) lands everywhere.
Nothing here sleeps for a fixed time: waits poll a condition until a deadline.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


# -- waiting on conditions -------------------------------------------------------------------


def wait_until(
    predicate: Callable[[], object], *, timeout: float, interval: float = 0.02, message: str = ""
) -> Any:
    """Poll ``predicate`` until it returns something truthy; that value is returned.

    Raises ``AssertionError`` (with ``message``, or the last value) at the deadline, so a
    test reads ``wait_until(lambda: ..., timeout=5)`` without an ``assert`` around it.
    """
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= end:
            raise AssertionError(
                message or f"condition not met within {timeout} s (last: {value!r})"
            )
        time.sleep(interval)


async def await_until(
    predicate: Callable[[], object | Awaitable[object]],
    *,
    timeout: float,
    interval: float = 0.01,
    message: str = "",
) -> Any:
    """:func:`wait_until` for async tests: the predicate may be sync or async."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= end:
            raise AssertionError(
                message or f"condition not met within {timeout} s (last: {value!r})"
            )
        await asyncio.sleep(interval)


# -- real processes ---------------------------------------------------------------------------


def kill_group(proc: subprocess.Popen[Any], *, grace: float = 3.0) -> None:
    """Stop ``proc``'s whole process group by pid: SIGTERM, then SIGKILL after ``grace``.

    The process must have been started with ``start_new_session=True``, so its group id
    is its pid and nothing but it and its children are in it.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        try:
            proc.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue
    try:  # whatever is left of the group (a worker of a killed supervisor) goes too
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass


class ProcessTracker:
    """Starts real processes in their own process group and kills every one by pid."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, argv: list[str], *, env: dict[str, str], name: str = "proc", **kw: Any
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` with its output in a log file of its own (see :meth:`output`)."""
        log = open(self.log_dir / f"{name}-{len(self.procs)}.log", "wb")
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=kw.pop("stdout", log),
            stderr=kw.pop("stderr", subprocess.STDOUT),
            start_new_session=True,
            **kw,
        )
        proc.log_path = log.name  # type: ignore[attr-defined]
        log.close()
        self.procs.append(proc)
        return proc

    def manage(
        self, *args: str, env: dict[str, str], name: str | None = None, **kw: Any
    ) -> subprocess.Popen[bytes]:
        """Start ``python manage.py <args>``."""
        return self.start([sys.executable, "manage.py", *args], env=env, name=name or args[0], **kw)

    def output(self, proc: subprocess.Popen[bytes]) -> str:
        """Everything the process wrote so far (stdout and stderr)."""
        return Path(proc.log_path).read_text(errors="replace")  # type: ignore[attr-defined]

    def cleanup(self) -> None:
        """Kill every process started here, by pid, with its group."""
        for proc in self.procs:
            kill_group(proc)


# -- a webhook receiver -----------------------------------------------------------------------


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
        path = urlsplit(url).path
        with self.cond:
            return [h for h in self.hooks if h.path == path]

    def wait(self, url: str, count: int, timeout: float = 10.0) -> list[Hook]:
        """Block until ``count`` deliveries reached ``url`` (fewer at the deadline)."""
        path = urlsplit(url).path
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                got = [h for h in self.hooks if h.path == path]
                left = end - time.monotonic()
                if len(got) >= count or left <= 0:
                    return got
                self.cond.wait(left)

    def _post(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self.cond:
            if self.fail.get(path, 0) > 0:
                self.fail[path] -= 1
                return 503
            self.hooks.append(Hook(path, headers, body, time.time()))
            self.cond.notify_all()
            return 200


@contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """Run a :class:`WebhookReceiver` on a free port of 127.0.0.1 in a thread."""
    receiver = WebhookReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            self.send_response(receiver._post(self.path, headers, body))
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


def run_bench(module: str, args: list[str], report_path: Path, *, timeout: float) -> BenchRun:
    """``python -m <module> <args> --report <report_path>`` in its own process group,
    killed with the group if it is still there; its JSON report and output."""
    argv = [sys.executable, "-m", module, *args, "--report", str(report_path)]
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # only if it is still there
        except ProcessLookupError:
            pass
        proc.wait()
    text = output.decode(errors="replace")[-4000:]
    assert report_path.exists(), text
    return BenchRun(json.loads(report_path.read_text()), text, proc.returncode)


@dataclass
class BenchRun:
    report: dict[str, Any]
    output: str  # its last 4000 characters, for failure messages
    returncode: int
