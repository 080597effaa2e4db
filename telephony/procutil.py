"""Helpers for child processes that must never outlive their parent."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def prctl(option: int, value: int) -> bool:
    """``prctl(option, value)`` on Linux; False elsewhere or when the kernel refuses."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    return bool(libc.prctl(option, value, 0, 0, 0) == 0)


PR_SET_NAME = 15
TEMPLATE_NAME = "tel-template"  # the worker template's name in ps and /proc/<pid>/comm


def set_process_name(name: str) -> bool:
    """Set this process's name as ``ps -o comm`` and ``/proc/<pid>/comm`` show it (15 bytes)."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    return bool(libc.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0) == 0)


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """Return a ``preexec_fn`` asking Linux to send ``sig`` when the parent dies.

    This is what keeps children from becoming orphans when their owner is
    SIGKILLed (nothing in the owner runs then). Elsewhere it does nothing.
    """
    parent = os.getpid()

    def _preexec() -> None:
        if prctl(PR_SET_PDEATHSIG, sig):
            if os.getppid() != parent:  # parent already gone before prctl took effect
                os.kill(os.getpid(), sig)

    return _preexec


def stop_process(proc: subprocess.Popen[bytes] | subprocess.Popen[str], *, grace: float) -> int:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL. Returns the exit code."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            return proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def pid_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def wait_for(predicate: Callable[[], bool], *, timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout``; returns the last result."""
    end = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(interval)


def host_id() -> str:
    """This host's name in supervisor and worker ids (``host:pid``): ``TELEPHONY_HOST_ID``,
    else the machine's host name. Distinct per host when several share one Redis."""
    from django.conf import settings

    return str(getattr(settings, "TELEPHONY_HOST_ID", "") or socket.gethostname())


def comm(pid: int) -> str:
    """A process's name as /proc/<pid>/comm has it ("" when it is gone): how the worker
    template (``TEMPLATE_NAME``) is told from its forks, whose argv still says --template."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""
