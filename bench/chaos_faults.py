"""The faults of a chaos run: the schedule, and how each one is injected and undone.

A schedule is a list of :class:`Planned` faults at offsets from the start of the load.
``--short`` uses a fixed schedule with every kind at least once; the full run draws one
from its seed (every kind once in a shuffled order first, then at random). Injection
runs in the main thread; what undoes a fault (clear the sandbox rules, start Redis or a
supervisor again, SIGCONT a stopped worker) is a follow-up due some seconds later, so
faults can overlap. :meth:`Injector.restore` runs every follow-up at once at the end.
"""

from __future__ import annotations

import heapq
import itertools
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.chaos_procs import ProcInfo, Stack, alive

KINDS = (
    "worker_kill",
    "worker_stop",
    "redis_restart",
    "supervisor_kill",
    "sandbox_slow",
    "sandbox_5xx",
    "sandbox_429",
    "sandbox_hang",
    "wipe_out",
    "template_kill",
)
SANDBOX_KINDS = {"sandbox_slow", "sandbox_5xx", "sandbox_429", "sandbox_hang"}
SHORT_SECONDS = 48.0
# A stopped worker the supervisor has not killed by then is resumed by us (and reported).
STOP_SAFETY = 8.0


@dataclass
class Planned:
    """One fault to inject ``at`` seconds into the load."""

    at: float
    kind: str
    params: dict[str, Any] = field(default_factory=dict)


def short_schedule(seconds: float = SHORT_SECONDS) -> list[Planned]:
    """Every kind at least once, fixed, spread over ``seconds`` (48 s as written)."""
    plan = [
        Planned(3, "sandbox_slow", {"operation": "*", "latency_ms": 4000, "duration": 4}),
        Planned(8, "worker_kill"),
        Planned(12, "sandbox_5xx", {"status": 503, "error_rate": 0.5, "duration": 4}),
        Planned(16, "worker_stop", {"cont_after": None}),
        Planned(21, "redis_restart", {"down": 2.0}),
        Planned(26, "worker_stop", {"cont_after": 0.5}),
        Planned(5, "template_kill"),
        Planned(31.5, "wipe_out"),
        Planned(29, "sandbox_429", {"error_rate": 0.5, "duration": 4}),
        Planned(34, "sandbox_hang", {"operation": "DialCall", "duration": 3}),
        Planned(38, "supervisor_kill", {"restart_after": 1.0}),
    ]
    plan.sort(key=lambda p: p.at)
    scale = seconds / SHORT_SECONDS
    for p in plan:
        p.at = round(p.at * scale, 2)
    return plan


def random_schedule(seconds: float, rng: random.Random) -> list[Planned]:
    """Faults every 3-8 s until 8 s before the end; all kinds once first, then at random."""
    plan: list[Planned] = []
    first = list(KINDS)
    rng.shuffle(first)
    t = 3.0
    while t < seconds - 8:
        kind = first.pop() if first else rng.choice(KINDS)
        plan.append(Planned(round(t, 2), kind, _random_params(kind, rng)))
        t += rng.uniform(3.0, 8.0)
    return plan


def _random_params(kind: str, rng: random.Random) -> dict[str, Any]:
    duration = round(rng.uniform(2.0, 6.0), 1)
    if kind == "sandbox_slow":
        op = rng.choice(["*", "DialCall", "CreateTelephonyCredentialToken"])
        return {"operation": op, "latency_ms": rng.randrange(500, 5000), "duration": duration}
    if kind == "sandbox_5xx":
        rate = round(rng.uniform(0.3, 1.0), 2)
        return {"status": rng.choice([500, 503]), "error_rate": rate, "duration": duration}
    if kind == "sandbox_429":
        return {"error_rate": round(rng.uniform(0.3, 1.0), 2), "duration": duration}
    if kind == "sandbox_hang":
        op = rng.choice(["DialCall", "CreateTelephonyCredentialToken", "HangupCall", "*"])
        return {"operation": op, "duration": duration}
    if kind == "worker_stop":
        return {"cont_after": rng.choice([None, 0.5, round(rng.uniform(0.2, 3.0), 1)])}
    if kind == "redis_restart":
        return {"down": round(rng.uniform(0.5, 3.0), 1)}
    if kind == "supervisor_kill":
        return {"restart_after": round(rng.uniform(0.3, 3.0), 1)}
    return {}


class Injector:
    """Injects planned faults into a :class:`Stack` and undoes them when due."""

    def __init__(self, stack: Stack, rng: random.Random) -> None:
        self.stack = stack
        self.rng = rng
        self.log: list[dict[str, Any]] = []
        self._due: list[tuple[float, int, str, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._active: dict[int, tuple[str, dict[str, Any]]] = {}  # sandbox rules in force
        self.t0 = time.time()

    # -- bookkeeping --------------------------------------------------------------------

    def _note(self, kind: str, **detail: Any) -> dict[str, Any]:
        now = time.time()
        entry = {"kind": kind, "at": now, "t": round(now - self.t0, 2), **detail}
        self.log.append(entry)
        print(f"  [{entry['t']:6.1f}s] fault {kind} {_brief(detail)}", flush=True)
        return entry

    def _later(self, seconds: float, label: str, fn: Callable[[], None]) -> None:
        heapq.heappush(self._due, (time.monotonic() + seconds, next(self._seq), label, fn))

    def tick(self) -> None:
        """Run the follow-ups that are due."""
        while self._due and self._due[0][0] <= time.monotonic():
            _, _, _, fn = heapq.heappop(self._due)
            fn()

    def restore(self) -> None:
        """Undo every fault now: follow-ups in order, sandbox clean, Redis and supervisor up."""
        while self._due:
            _, _, _, fn = heapq.heappop(self._due)
            fn()
        assert self.stack.sandbox is not None
        self.stack.sandbox.clear_faults()
        if not self.stack.redis_running():
            self.stack.start_redis()
        if not self.stack.supervisor_running():
            self.stack.start_supervisor()

    # -- injection ------------------------------------------------------------------------

    def inject(self, planned: Planned) -> None:
        getattr(self, planned.kind)(**planned.params)

    def _pick_worker(self) -> ProcInfo | None:
        workers = [w for w in self.stack.workers() if w.state != "T"]
        return self.rng.choice(workers) if workers else None

    def worker_kill(self) -> None:
        w = self._pick_worker()
        if w is None:
            self._note("worker_kill", skipped="no running worker")
            return
        os.kill(w.pid, signal.SIGKILL)
        self._note("worker_kill", pid=w.pid)

    def wipe_out(self) -> None:
        """SIGKILL every worker and spare of the supervisor at once (an OOM kill, a bad deploy)."""
        pids = [w.pid for w in self.stack.workers()]
        if not pids:
            self._note("wipe_out", skipped="no worker running")
            return
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        self._note("wipe_out", pids=pids)

    def template_kill(self) -> None:
        """SIGKILL the worker template: workers start cold until the supervisor restarts it."""
        template = self.stack.template()
        if template is None:
            self._note("template_kill", skipped="no template running")
            return
        os.kill(template.pid, signal.SIGKILL)
        self._note("template_kill", pid=template.pid)

    def worker_stop(self, cont_after: float | None) -> None:
        w = self._pick_worker()
        if w is None:
            self._note("worker_stop", skipped="no running worker")
            return
        key = (w.pid, w.starttime)
        os.kill(w.pid, signal.SIGSTOP)
        entry = self._note("worker_stop", pid=w.pid, cont_after=cont_after)
        stopped = time.monotonic()

        def resume() -> None:
            if alive(key):
                os.kill(key[0], signal.SIGCONT)
                entry["outcome"] = f"resumed by us after {time.monotonic() - stopped:.1f} s"
            else:
                entry["outcome"] = "killed by the supervisor"

        self._later(cont_after if cont_after is not None else STOP_SAFETY, "sigcont", resume)

    def redis_restart(self, down: float) -> None:
        if not self.stack.redis_running():
            self._note("redis_restart", skipped="Redis already down")
            return
        self.stack.stop_redis()
        entry = self._note("redis_restart", down=down)

        def up() -> None:
            self.stack.start_redis()
            entry["restarted_at"] = time.time()

        self._later(down, "redis start", up)

    def supervisor_kill(self, restart_after: float) -> None:
        workers = [w.pid for w in self.stack.workers()]
        pid = self.stack.kill_supervisor()
        if pid is None:
            self._note("supervisor_kill", skipped="no supervisor running")
            return
        entry = self._note("supervisor_kill", pid=pid, workers=workers, restart_after=restart_after)

        def up() -> None:
            if not self.stack.supervisor_running():
                self.stack.start_supervisor()
                assert self.stack.supervisor is not None
                entry["new_pid"] = self.stack.supervisor.pid

        self._later(restart_after, "supervisor start", up)

    def _sandbox(self, kind: str, operation: str, duration: float, **rule: Any) -> None:
        sandbox = self.stack.sandbox
        assert sandbox is not None
        sandbox.set_fault(operation, **rule)
        entry = self._note(kind, operation=operation, duration=duration, **rule)
        index = len(self.log) - 1
        self._active[index] = (operation, rule)

        def clear() -> None:
            # Rules overlap (an operation's rule overrides '*' key by key): start from a
            # clean table and put back the rules still in force, oldest first.
            self._active.pop(index, None)
            sandbox.clear_faults()
            for op, kept in self._active.values():
                sandbox.set_fault(op, **kept)
            entry["cleared_at"] = time.time()

        self._later(duration, f"clear {kind}", clear)

    def sandbox_slow(self, operation: str, latency_ms: int, duration: float) -> None:
        self._sandbox("sandbox_slow", operation, duration, latency_ms=latency_ms)

    def sandbox_5xx(self, status: int, error_rate: float, duration: float) -> None:
        self._sandbox("sandbox_5xx", "*", duration, status=status, error_rate=error_rate)

    def sandbox_429(self, error_rate: float, duration: float) -> None:
        self._sandbox(
            "sandbox_429", "*", duration, status=429, error_rate=error_rate, retry_after=1
        )

    def sandbox_hang(self, operation: str, duration: float) -> None:
        self._sandbox("sandbox_hang", operation, duration, hang=True)


def _brief(detail: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in detail.items() if v is not None)
