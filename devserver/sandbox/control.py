"""Drive a sandbox from tests, benchmarks and ``serve``: start it, steer it, stop it.

:class:`SandboxControl` talks to the ``/_sandbox`` endpoints of a sandbox running
anywhere; :class:`SandboxProcess` also owns one as a child process: it starts
``manage.py telnyx_sandbox --port 0``, waits for the ready line and stops it by pid.
The child dies with its owner (``PR_SET_PDEATHSIG``), so a killed test run leaves no
sandbox behind. Synchronous on purpose: fixtures and command-line tools are.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import httpx

from telephony.procutil import die_with_parent

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]


class SandboxError(RuntimeError):
    """The sandbox did not start, or a control request failed."""


class SandboxControl:
    """Client for the control endpoints of a sandbox started elsewhere."""

    def __init__(self, control_url: str, *, timeout: float = 10.0) -> None:
        self.control_url = control_url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        try:
            resp = httpx.request(
                method, f"{self.control_url}/{path}", json=payload, timeout=self.timeout
            )
        except httpx.HTTPError as e:
            raise SandboxError(f"sandbox control {method} {path} failed: {e}") from e
        if resp.status_code >= 400:
            raise SandboxError(f"sandbox control {method} {path}: {resp.status_code} {resp.text}")
        return resp.json()

    def info(self) -> dict[str, Any]:
        """The ready-line data (urls, api key, public key, seeded ids)."""
        data: dict[str, Any] = self._call("GET", "info")
        return data

    def set_fault(self, operation: str = "*", **kw: Any) -> list[dict[str, Any]]:
        """Add or replace the fault rule for an operationId (or ``*``); returns all rules."""
        rules: list[dict[str, Any]] = self._call("POST", "faults", {"operation": operation, **kw})
        return rules

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self._call("DELETE", "faults")

    def log(self) -> list[dict[str, Any]]:
        """The request log, oldest first (see ``requestlog.py`` for the entry shape)."""
        entries: list[dict[str, Any]] = self._call("GET", "log")
        return entries

    def webhooks(self, call_control_id: str | None = None) -> list[dict[str, Any]]:
        """Webhook deliveries so far (optionally for one call)."""
        path = "webhooks" + (f"?call_control_id={call_control_id}" if call_control_id else "")
        items: list[dict[str, Any]] = self._call("GET", path)
        return items

    def set_webhooks(self, **kw: Any) -> dict[str, Any]:
        """Change webhook timing/targets for calls dialled from now on."""
        settings: dict[str, Any] = self._call("POST", "webhooks", kw)
        return settings

    def set_auto_answer(self, delay: float | None) -> None:
        """Agent legs with no browser answered by the sandbox after ``delay`` s (None: off)."""
        self._call("POST", "rtc", {"auto_answer_agents": delay})

    def recordings(self, call_control_id: str | None = None) -> list[dict[str, Any]]:
        """The sandbox's recordings (any state), with file paths (optionally for one call)."""
        path = "recordings" + (f"?call_control_id={call_control_id}" if call_control_id else "")
        items: list[dict[str, Any]] = self._call("GET", path)
        return items

    def downloads(self) -> list[dict[str, Any]]:
        """Recording downloads served, oldest first: ``recording_id``, ``format``,
        ``range`` (the request's header), ``status``, ``bytes`` sent, ``fault``."""
        items: list[dict[str, Any]] = self._call("GET", "downloads")
        return items

    def make_recording(self, call_control_id: str, **kw: Any) -> dict[str, Any]:
        """A completed recording of a known call, made at once: ``seconds`` (10),
        ``format`` (wav), ``channels`` (dual), ``agent_hz`` (600), ``customer_hz`` (1000).
        Its ``call.recording.saved`` goes out as usual."""
        payload = {"call_control_id": call_control_id, **kw}
        rec: dict[str, Any] = self._call("POST", "recordings", payload)
        return rec

    def wait_recording(
        self, call_control_id: str, *, status: str = "completed", timeout: float = 10.0
    ) -> dict[str, Any]:
        """Poll until a recording of the call reaches ``status``; SandboxError on timeout."""
        end = time.monotonic() + timeout
        while True:
            found = [r for r in self.recordings(call_control_id) if r["status"] == status]
            if found:
                return found[0]
            if time.monotonic() > end:
                raise SandboxError(f"no {status} recording for {call_control_id}")
            time.sleep(0.05)

    def set_clock(self, offset_seconds: float) -> None:
        """Date what the sandbox creates next ``offset_seconds`` from now (0: real time)."""
        self._call("POST", "clock", {"offset_seconds": offset_seconds})

    def reset(self, keep_state: bool = False) -> None:
        """Clear log and faults; unless ``keep_state``, also credentials, calls, timing."""
        self._call("POST", "reset", {"keep_state": keep_state})

    def wait_webhooks(
        self, call_control_id: str, count: int, *, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Poll until ``count`` deliveries exist for a call; SandboxError on timeout."""
        end = time.monotonic() + timeout
        while True:
            items = self.webhooks(call_control_id)
            if len(items) >= count:
                return items
            if time.monotonic() > end:
                raise SandboxError(f"{len(items)}/{count} webhooks for {call_control_id}")
            time.sleep(0.05)


class SandboxProcess(SandboxControl):
    """A sandbox running as our child process."""

    def __init__(self, proc: subprocess.Popen[bytes], ready: dict[str, Any]) -> None:
        super().__init__(ready["control_url"])
        self.proc: subprocess.Popen[bytes] | None = proc
        self.pid: int = proc.pid
        self.ready = ready
        self.port: int = ready["port"]
        self.base_url: str = ready["base_url"]
        self.api_key: str = ready["api_key"]
        self.public_key: str = ready["public_key"]
        self.connection_id: str = ready["connection_id"]
        self.call_connection_id: str = ready["call_connection_id"]
        self.from_number: str = ready["from_number"]

    @classmethod
    def start(
        cls,
        *,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        timeout: float = 15,
        stderr: IO[Any] | int | None = None,
    ) -> SandboxProcess:
        """Start ``manage.py telnyx_sandbox --port 0 *args`` and wait for its ready line.

        ``stderr`` (the sandbox's log) is inherited unless a file or ``DEVNULL`` is given.
        """
        argv = [sys.executable, "manage.py", "telnyx_sandbox", "--port", "0", *args]
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env if env is not None else os.environ.copy(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,  # our owner's Ctrl-C is its to pass on, in order
            preexec_fn=die_with_parent(),
        )
        lines: queue.Queue[bytes | None] = queue.Queue()
        threading.Thread(
            target=_pump, args=(proc, lines), name="sandbox-stdout", daemon=True
        ).start()
        try:
            ready = _wait_ready(proc, lines, timeout)
        except BaseException:
            _stop(proc, grace=3.0)
            raise
        logger.info("[Telnyx Sandbox] Child started pid=%s port=%s", proc.pid, ready["port"])
        return cls(proc, ready)

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM, wait ``grace`` seconds, then SIGKILL; returns the exit status."""
        if self.proc is None:
            return None
        code = _stop(self.proc, grace=grace)
        logger.info("[Telnyx Sandbox] Child stopped pid=%s code=%s", self.pid, code)
        return code

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _pump(proc: subprocess.Popen[bytes], lines: queue.Queue[bytes | None]) -> None:
    """Forward the child's stdout lines until EOF, so its pipe never fills up."""
    assert proc.stdout is not None
    with proc.stdout:
        for line in proc.stdout:
            lines.put(line)
    lines.put(None)


def _wait_ready(
    proc: subprocess.Popen[bytes], lines: queue.Queue[bytes | None], timeout: float
) -> dict[str, Any]:
    end = time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        if left <= 0:
            raise SandboxError(f"sandbox pid {proc.pid} not ready after {timeout} s")
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            continue
        if line is None:
            code = proc.wait(timeout=5)
            raise SandboxError(f"sandbox exited with status {code} before it was ready")
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("event") == "ready":
            return data


def _stop(proc: subprocess.Popen[bytes], *, grace: float) -> int:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            break
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            return proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
    return proc.wait()
