"""One supervised worker process: how it is started, signalled and judged.

A worker is ``active`` (counts towards the desired number), ``standby`` (a replacement
started before the worker it replaces is stopped, for recycling and rolling restarts),
``spare`` (fully loaded but idle; SIGUSR1 makes it active the moment an active worker
dies, instead of waiting seconds for a cold start) or ``retiring`` (asked to stop on
purpose: it drains and its exit is not a failure).
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from telephony.procutil import die_with_parent, host_id
from telephony.protocol import Heartbeat, WorkerSummary
from telephony.state import now_ms

ACTIVE = "active"
STANDBY = "standby"
SPARE = "spare"
RETIRING = "retiring"


def spawn_worker(supervisor_id: str, *, spare: bool = False) -> subprocess.Popen[bytes]:
    """Start ``manage.py telephony_worker`` as a child that dies with this process.

    PDEATHSIG (SIGTERM) is what stops the workers when the supervisor is SIGKILLed:
    nothing in the supervisor runs then. The worker stays in our process group, so
    whoever stops the group stops it too.
    """
    argv = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "telephony_worker"]
    if spare:
        argv.append("--spare")
    env = {**os.environ, "TELEPHONY_SUPERVISOR_ID": supervisor_id}
    return subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        close_fds=True,
        preexec_fn=die_with_parent(signal.SIGTERM),
    )


class Waker:
    """Sleeps until a timeout or a signal, whichever comes first.

    ``signal.set_wakeup_fd`` makes every signal (SIGCHLD included) write a byte to a
    socket the loop sleeps on, so a child's death or SIGTERM wakes it at once.
    """

    def __init__(self) -> None:
        self._r: socket.socket | None = None
        self._w: socket.socket | None = None  # kept referenced: the fd must stay open

    def install(self, on_stop: Callable[[int, Any], None]) -> None:
        """Route SIGTERM/SIGINT to ``on_stop`` and let SIGCHLD wake the sleeper (main thread)."""
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)
        signal.set_wakeup_fd(self._w.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGCHLD, lambda *_: None)

    def sleep(self, seconds: float) -> None:
        if self._r is None:
            time.sleep(seconds)
            return
        select.select([self._r], [], [], seconds)
        try:
            while self._r.recv(512):
                pass
        except (BlockingIOError, InterruptedError):
            pass


def describe_exit(code: int) -> tuple[int | None, str | None]:
    """``(exit code, signal name)`` of a Popen return code."""
    if code < 0:
        try:
            return None, signal.Signals(-code).name
        except ValueError:
            return None, f"signal {-code}"
    return code, None


@dataclass(eq=False)
class WorkerHandle:
    """A worker process as the supervisor sees it."""

    proc: subprocess.Popen[bytes]
    restarts: int = 0
    role: str = ACTIVE
    reason: str = ""
    replaces: WorkerHandle | None = None
    started_mono: float = field(default_factory=time.monotonic)
    started_at: int = field(default_factory=now_ms)
    beat: Heartbeat | None = None
    beat_at: int = 0
    hung: bool = False
    replace_reason: str = ""  # queued for (or being) replaced: recycle or rolling restart
    term_at: float | None = None
    kill_at: float | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def worker_id(self) -> str:
        return f"{host_id()}:{self.proc.pid}"

    @property
    def ready(self) -> bool:
        """It has beaten at least once: the SDK is loaded and it takes requests."""
        return self.beat is not None

    def observe(self, beat: Heartbeat | None) -> None:
        """Take a heartbeat read from Redis (None: the key is gone, never written, or
        unreadable)."""
        if beat is not None and beat.beat_at >= self.beat_at:
            self.beat, self.beat_at = beat, beat.beat_at

    def stale(self, *, now_ms_: int, timeout: float, start_timeout: float, now: float) -> str:
        """Why this worker counts as hung, or ``""``."""
        if self.ready:
            age = (now_ms_ - self.beat_at) / 1000.0
            return f"no heartbeat for {age:.1f} s" if age > timeout else ""
        if now - self.started_mono > start_timeout:
            return f"no first heartbeat within {start_timeout:.0f} s"
        return ""

    def activate(self) -> None:
        """Make a ready spare take requests: SIGUSR1 (its handler is installed before its
        first beat, so only a spare that has beaten may get it)."""
        assert self.role == SPARE and self.ready
        self.role = ACTIVE
        self._signal(signal.SIGUSR1)

    def terminate(self, *, grace: float, now: float) -> None:
        """SIGTERM (it drains), SIGCONT (a stopped process could not act on it), then SIGKILL
        once ``grace`` has passed (see :meth:`escalate`)."""
        if self.term_at is None:
            self.term_at = now
            self.kill_at = now + grace
        self._signal(signal.SIGTERM)
        self._signal(signal.SIGCONT)

    def escalate(self, now: float) -> bool:
        """SIGKILL if it outlived its grace; True when it did."""
        if self.kill_at is not None and now >= self.kill_at and self.proc.poll() is None:
            self._signal(signal.SIGKILL)
            self.kill_at = None
            return True
        return False

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        if self.proc.returncode is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass

    def summary(self) -> WorkerSummary:
        """This worker in the supervisor's record."""
        return WorkerSummary(
            pid=self.pid,
            worker_id=self.worker_id,
            started_at=self.started_at,
            restarts=self.restarts,
            role=self.role,
            ready=self.ready,
        )
