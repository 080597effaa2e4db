"""The child processes of ``serve``, watched the way the supervisor watches its workers.

``make run`` promises that the web app stays up whatever happens to telephony. So a dead
embedded Redis, sandbox or supervisor is restarted (same socket, port and arguments)
after an exponential backoff with a cap, using the supervisor's own
:class:`~telephony.supervisor.policy.RestartPolicy` without its give-up rule: a
development server should keep trying, and the web process answers fast 503s meanwhile.
Only the web process is *critical*: when it dies there is nothing left to serve, so
``serve`` stops.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings

from telephony.procutil import stop_process
from telephony.supervisor.policy import PolicyConfig, RestartPolicy

Proc = subprocess.Popen[bytes]


def policy_config() -> PolicyConfig:
    """The supervisor's backoff settings, but never giving up."""
    return PolicyConfig(
        max_restarts=sys.maxsize,
        window=float(settings.TELEPHONY_RESTART_WINDOW),
        backoff_base=float(settings.TELEPHONY_RESTART_BACKOFF_BASE),
        backoff_max=float(settings.TELEPHONY_RESTART_BACKOFF_MAX),
    )


@dataclass
class Child:
    """One process ``serve`` owns: how to (re)start it, how to stop it, and its history.

    ``start`` starts a fresh process and returns it (raising when it cannot);
    ``stop`` stops a running one gracefully. A ``critical`` child is not restarted:
    its death ends ``serve``.
    """

    name: str
    start: Callable[[], Proc]
    stop: Callable[[Proc], object] = field(default=lambda p: stop_process(p, grace=10.0))
    critical: bool = False
    proc: Proc | None = None
    restart_at: float | None = None
    restarts: int = 0
    policy: RestartPolicy | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None


class ChildWatcher:
    """Starts children in order, restarts the ones that die, stops them in reverse order.

    ``poll`` is called from ``serve``'s main loop; it never sleeps, except inside a
    child's own ``start`` (waiting for Redis to answer or the sandbox's ready line).
    ``log`` receives one line per exit and per restart.
    """

    def __init__(
        self,
        *,
        log: Callable[[str], None],
        config: PolicyConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.children: list[Child] = []
        self.log = log
        self.config = config or policy_config()
        self.clock = clock

    def add(self, child: Child) -> Child:
        """Start ``child`` now and watch it from here on."""
        child.policy = RestartPolicy(self.config, clock=self.clock)
        child.proc = child.start()
        self.children.append(child)
        return child

    def get(self, name: str) -> Child | None:
        return next((c for c in self.children if c.name == name), None)

    def poll(self) -> Child | None:
        """Handle exits and due restarts; return a critical child that died, if any."""
        now = self.clock()
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self._restart(child)
                continue
            if child.proc is None or child.proc.poll() is None:
                continue
            code = child.proc.returncode
            if child.critical:
                self.log(f"{child.name} exited with code {code}; stopping")
                return child
            self._schedule(child, f"{child.name} exited with code {code}")
        return None

    def _schedule(self, child: Child, why: str) -> None:
        assert child.policy is not None
        delay = child.policy.on_failure().delay
        child.restart_at = self.clock() + delay
        self.log(f"{why}; restarting it in {delay:.1f} s")

    def _restart(self, child: Child) -> None:
        child.restart_at = None
        try:
            child.proc = child.start()
        except Exception as e:  # a failed start is one more failure: back off and retry
            child.proc = None
            self._schedule(child, f"{child.name} did not start ({e})")
            return
        child.restarts += 1
        self.log(f"{child.name} restarted, pid {child.proc.pid}")

    def stop_all(self) -> None:
        """Stop every child, last started first (the web process before Redis)."""
        for child in reversed(self.children):
            child.restart_at = None
            if child.proc is not None:
                child.stop(child.proc)
        self.children.clear()
