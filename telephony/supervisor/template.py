"""The supervisor's end of the worker template (see :mod:`telephony.worker.template`).

:class:`WorkerTemplate` starts ``telephony_worker --template``, talks to it over a socket
pair, and hands out :class:`ForkedWorker` handles, which behave like the
``subprocess.Popen`` of a cold-started worker: the supervisor is a child subreaper, so a
forked worker is re-parented to it and reaped with ``waitpid`` like any child of its own.

The template moves between ``down`` (not running; restarted with backoff), ``starting``
(loading: seconds) and ``ready``. A template that dies, answers garbage or does not
answer in time is killed and marked down: the caller falls back to a cold start.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings

from telephony.procutil import PR_SET_CHILD_SUBREAPER, die_with_parent, prctl
from telephony.supervisor.policy import RestartPolicy

DOWN, STARTING, READY = "down", "starting", "ready"
FORK_TIMEOUT = 2.0  # seconds to wait for a fork's answer: it takes milliseconds


class TemplateUnavailable(Exception):
    """The template cannot fork a worker now; the message says why (for the event)."""


class ForkedWorker:
    """A worker forked by the template, as ``subprocess.Popen`` shows a child."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.args = ["<forked from the worker template>"]

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # not ours after all (re-parenting failed): lost status
                self.returncode = 255
                return self.returncode
            if pid == self.pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        end = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if end is not None and time.monotonic() >= end:
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
            time.sleep(0.01)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        # A zombie keeps its pid until we reap it, so this never hits a recycled pid.
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


def launch_template(supervisor_id: str, control_fd: int) -> subprocess.Popen[bytes]:
    """Start ``manage.py telephony_worker --template`` on ``control_fd`` (dies with us)."""
    argv = [
        sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "telephony_worker",
        "--template", "--control-fd", str(control_fd),
    ]  # fmt: skip
    env = {**os.environ, "TELEPHONY_SUPERVISOR_ID": supervisor_id}
    return subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        pass_fds=(control_fd,),
        preexec_fn=die_with_parent(signal.SIGTERM),
    )


class WorkerTemplate:
    """One template process at a time, replaced by :meth:`renew` or after it dies."""

    def __init__(
        self,
        supervisor_id: str,
        *,
        policy: RestartPolicy,
        clock: Callable[[], float] = time.monotonic,
        launch: Callable[[str, int], subprocess.Popen[bytes]] = launch_template,
    ) -> None:
        self.sid = supervisor_id
        self.policy = policy  # backoff only: a template's deaths never make the pool `failed`
        self.clock = clock
        self.launch = launch
        self.state = DOWN
        self.generation = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self.started_at = 0.0
        self.load_seconds: float | None = None
        self.why_down = "not started"
        self.failures = 0
        self.restart_at = 0.0
        self._buf = b""

    @staticmethod
    def adopt_orphans() -> bool:
        """Make this process a child subreaper (so forked workers become its children)."""
        return prctl(PR_SET_CHILD_SUBREAPER, 1)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        """Start a new template process (a new generation: the code on disk now)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.proc = self.launch(self.sid, theirs.fileno())
        except OSError as e:
            ours.close()
            self._down(f"cannot start: {e}")
            return
        finally:
            theirs.close()
        ours.setblocking(False)
        self.sock, self._buf = ours, b""
        self.generation += 1
        self.state, self.started_at, self.load_seconds = STARTING, self.clock(), None

    def renew(self) -> None:
        """Retire the running template and start one from the current code."""
        self.stop()
        self.failures, self.restart_at = 0, 0.0
        self.start()

    def stop(self, *, why: str = "retired") -> None:
        """End the template (closing the socket ends it; SIGKILL makes sure)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None
        self.state, self.why_down = DOWN, why

    def poll(self, now: float) -> str:
        """Advance: notice ``ready`` or death, restart after backoff. Returns what changed:
        ``"ready"``, ``"died"``, ``"started"`` or ``""``."""
        if self.state == DOWN:
            if now >= self.restart_at:
                self.start()
                return "started" if self.state == STARTING else ""
            return ""
        assert self.proc is not None
        if self.proc.poll() is not None:
            self._down(f"exited with code {self.proc.returncode}")
            return "died"
        if self.state == STARTING:
            message = self._read(0.0)
            if message is not None:
                if "ready" in message:
                    self.state = READY
                    self.failures = 0
                    self.load_seconds = float(message["ready"].get("load_seconds", 0.0))
                    return "ready"
                self._down(f"said {message!r} instead of ready")
                return "died"
        return ""

    def fork(self, *, spare: bool) -> ForkedWorker:
        """A new worker from the template; :class:`TemplateUnavailable` if it cannot."""
        if self.state != READY or self.sock is None:
            raise TemplateUnavailable(f"template {self.state} ({self.why_down})")
        try:
            self.sock.sendall(json.dumps({"fork": {"spare": spare}}).encode() + b"\n")
            answer = self._read(FORK_TIMEOUT)
        except OSError as e:
            answer = {"error": f"control socket: {type(e).__name__}"}
        if answer is None:
            answer = {"error": f"no answer within {FORK_TIMEOUT:g} s"}
        pid = answer.get("pid")
        if not isinstance(pid, int) or pid <= 0:
            why = str(answer.get("error") or f"bad answer {answer!r}")
            self._kill(why)
            raise TemplateUnavailable(f"template could not fork: {why}")
        return ForkedWorker(pid)

    def _read(self, timeout: float) -> dict[str, Any] | None:
        """One JSON line from the template, waiting up to ``timeout`` seconds; None if none
        came (or the socket closed: :meth:`poll` then sees the exit)."""
        assert self.sock is not None
        end = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = end - time.monotonic()
            ready, _, _ = select.select([self.sock], [], [], max(0.0, left))
            if not ready:
                return None
            try:
                chunk = self.sock.recv(4096)
            except BlockingIOError:
                continue
            if not chunk:
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            message = json.loads(line)
        except ValueError:
            message = {"error": "unreadable answer"}
        return message if isinstance(message, dict) else {"error": "unreadable answer"}

    def _kill(self, why: str) -> None:
        self.stop(why=why)
        self._down(why)

    def _down(self, why: str) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self.state, self.why_down = DOWN, why
        self.restart_at = self.clock() + self.policy.backoff(self.failures)
        self.failures += 1
