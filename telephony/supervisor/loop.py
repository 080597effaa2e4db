"""The telephony supervisor: keeps N workers alive and publishes its part of the state.

One sync loop, woken at once by SIGCHLD/SIGTERM/SIGINT (``signal.set_wakeup_fd``) and at
least every ``TICK`` seconds. Each pass it reaps exited workers (a crash is seen within a
tick), exchanges with Redis (its record out; heartbeats and control commands in), judges
heartbeats (hung workers get SIGTERM, SIGCONT, then SIGKILL after
``TELEPHONY_KILL_GRACE``), replaces workers to recycle or roll them, and starts or stops
workers to match the desired number. Restarts follow :class:`RestartPolicy`. Events are
written by :class:`EventSink` on its own thread, so a slow database never delays a reap.

When the supervisor cannot reach Redis it keeps supervising its children but does not
judge heartbeats (workers cannot beat either); after Redis returns it waits two heartbeat
timeouts before judging again, so the workers can catch up first.
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings

from telephony.procutil import host_id
from telephony.protocol import (
    RUNNING,
    STARTING,
    STOPPED,
    STOPPING,
    ControlCommand,
    LastEvent,
    SupervisorRecord,
)
from telephony.state import now_ms
from telephony.supervisor.children import (
    ACTIVE,
    RETIRING,
    SPARE,
    STANDBY,
    Waker,
    WorkerHandle,
    describe_exit,
    spawn_worker,
)
from telephony.supervisor.events import EventSink
from telephony.supervisor.policy import TICK, RestartPolicy, SupervisorConfig
from telephony.supervisor.pool import MAX_WORKERS, PendingStart, PoolMixin
from telephony.supervisor.preload import PreloadMixin
from telephony.supervisor.store import SupervisorStore
from telephony.supervisor.template import WorkerTemplate

logger = logging.getLogger(__name__)

REDIS_RETRY = 0.5  # while Redis is down, try it this often
# A drained worker still needs a moment to exit (tearing down the SDK's module graph takes
# about a second, more on a busy host): SIGKILL only this long after the shutdown grace.
EXIT_MARGIN = 3.0


class Supervisor(PreloadMixin, PoolMixin):
    """Spawns and watches ``desired`` workers until SIGTERM/SIGINT; see the module doc."""

    def __init__(
        self,
        *,
        workers: int,
        config: SupervisorConfig | None = None,
        spawn: Callable[..., subprocess.Popen[bytes]] = spawn_worker,
        clock: Callable[[], float] = time.monotonic,
        template: WorkerTemplate | bool | None = None,
    ) -> None:
        # ``spawn`` and ``clock`` (monotonic seconds) are replaced by the tests that drive
        # the decisions in-process with fake children and a clock they advance.
        # ``template``: None follows TELEPHONY_WORKER_PRELOAD when ``spawn`` is the real
        # one; False starts every worker cold; a WorkerTemplate (or a fake) is used as is.
        self.sid = f"{host_id()}:{os.getpid()}"
        self.cfg = config or SupervisorConfig.from_settings()
        self.desired = max(0, min(workers, MAX_WORKERS))
        self.spawn = spawn
        self.clock = clock
        self.policy = RestartPolicy(self.cfg.policy, clock=clock)
        self.events = EventSink(self.sid)
        self.store = SupervisorStore(self.sid, heartbeat_timeout=self.cfg.heartbeat_timeout)
        self.children: list[WorkerHandle] = []
        self.pending: list[PendingStart] = []
        self.replace_queue: deque[WorkerHandle] = deque()
        self.standby: WorkerHandle | None = None
        self.replace_not_before = 0.0
        self.spare_not_before = 0.0  # after a failure, spares are replenished after its backoff
        self.rolling = False
        self.state = STARTING
        self.restarts = 0
        self.started_at = now_ms()
        self.last_event: LastEvent | None = None
        self.signals = 0
        self._redis_ok, self._redis_ok_since = True, -math.inf
        self._uncounted = 0  # failures not counted while Redis was down (backoff only)
        self._next_sync = self._next_publish = 0.0
        self._dirty, self._stopped_cleared = True, False
        self._forget: list[str] = []
        self.commands: list[ControlCommand] = []
        self.waker = Waker()
        if template is None:
            template = spawn is spawn_worker and bool(settings.TELEPHONY_WORKER_PRELOAD)
        if template is True:
            template = WorkerTemplate(self.sid, policy=RestartPolicy(self.cfg.policy), clock=clock)
        self.template = template or None
        self.start_timeout = self.cfg.start_timeout
        self._template_hold = False

    # -- life cycle -----------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until SIGTERM/SIGINT, then stop the workers; returns the exit code."""
        self.waker.install(self._on_stop_signal)
        self.events.start()
        self._event("supervisor_started", f"Started workers={self.desired}", desired=self.desired)
        self._start_template()
        while not self.signals:
            try:
                self._tick(self.clock())
            except Exception:
                logger.exception(
                    "[Telephony Supervisor] loop pass crashed sid=%s; continuing", self.sid
                )
            self.waker.sleep(TICK)
        self._shutdown()
        return 0

    def _on_stop_signal(self, signum: int, frame: Any) -> None:
        self.signals += 1
        if self.signals > 1:  # asked twice: no more waiting for drains
            for child in self.children:
                child.kill()

    def _tick(self, now: float) -> None:
        self._reap(now)
        if (self._dirty and self._redis_ok) or now >= self._next_sync:
            self._sync(now)
        self._run_commands()
        self._judge(now)
        self._template_tick(now)
        if not self._holding(now):
            self._replace(now)
            self._reconcile(now)
        for child in self.children:
            if child.escalate(now):
                logger.warning(
                    "[Telephony Supervisor] SIGKILL worker_id=%s: it outlived its grace",
                    child.worker_id,
                )
        if self.state == STARTING and any(c.ready for c in self.children if c.role == ACTIVE):
            self._set_state(RUNNING)

    def _set_state(self, state: str) -> None:
        if state != self.state:
            logger.info("[Telephony Supervisor] sid=%s state %s -> %s", self.sid, self.state, state)
            self.state = state
            self._dirty = True

    def _event(self, kind: str, message: str, *, level: int = logging.INFO, **data: Any) -> None:
        at = now_ms()
        self.last_event = LastEvent(kind=kind, message=message, at=at)
        logger.log(level, "[Telephony Supervisor] %s sid=%s", message, self.sid)
        self.events.emit(kind, message, state=self.state, at=at, **data)
        self._dirty = True

    # -- Redis ----------------------------------------------------------------------------

    def record(self) -> SupervisorRecord:
        """This supervisor's record in Redis (``Keys.supervisor(sid)``)."""
        host, pid = self.sid.rsplit(":", 1)
        return SupervisorRecord(
            id=self.sid,
            host=host,
            pid=int(pid),
            state=self.state,
            desired=self.desired,
            alive=sum(1 for c in self.children if c.role == ACTIVE and c.ready),
            spares=sum(1 for c in self.children if c.role == SPARE and c.ready),
            restarts=self.restarts,
            restarts_in_window=self.policy.in_window(),
            workers=tuple(c.summary() for c in self.children),
            last_event=self.last_event,
            started_at=self.started_at,
            updated_at=now_ms(),
            template_pid=(self.template.pid or 0) if self.template else 0,
            template_state=self.template.state if self.template else "",
        )

    def _sync(self, now: float) -> None:
        publish = self._dirty or now >= self._next_publish
        children = list(self.children)
        forget = list(self._forget)
        try:
            beats, commands = self.store.exchange(
                worker_ids=[c.worker_id for c in children],
                record=self.record() if publish else None,
                forget=forget,
                clear_stopped=not self._stopped_cleared,
            )
        except (redis.RedisError, OSError) as e:
            self._next_sync = now + REDIS_RETRY
            if self._redis_ok:
                self._redis_ok = False
                self._event(
                    "redis_unreachable",
                    f"Redis unreachable ({type(e).__name__}); supervising on, "
                    "heartbeats not judged until it returns",
                    level=logging.WARNING,
                )
            self._dirty = False  # retried at REDIS_RETRY pace, not every tick
            return
        if not self._redis_ok:
            self._redis_ok, self._redis_ok_since, self._uncounted = True, now, 0
            self._event("redis_restored", "Redis reachable again")
        self._stopped_cleared = True
        del self._forget[: len(forget)]
        for child, beat in zip(children, beats, strict=True):
            child.observe(beat)
        self.commands.extend(commands)
        self._next_sync = now + self.cfg.poll_interval
        if publish:
            self._dirty = False
            self._next_publish = now + self.cfg.heartbeat_interval
            self.events.check_state()

    # -- workers --------------------------------------------------------------------------

    def _spawn(self, role: str, **fields: Any) -> WorkerHandle | None:
        try:
            proc = self._start_process(spare=role == SPARE)
        except OSError as e:
            logger.error("[Telephony Supervisor] cannot start a worker sid=%s: %s", self.sid, e)
            return None
        child = WorkerHandle(proc=proc, role=role, started_mono=self.clock(), **fields)
        self.children.append(child)
        self._dirty = True
        return child

    def _reap(self, now: float) -> None:
        exited = [c for c in self.children if c.proc.poll() is not None]
        # All of them out first, so a dead spare is never promoted; then active workers
        # first: when several die at once (a wipe-out), the restart that restores service
        # gets the first, shortest backoff, not a spare's replacement.
        for child in exited:
            self.children.remove(child)
        for child in sorted(exited, key=lambda c: c.role != ACTIVE):
            self._forget.append(child.worker_id)
            code, sig = describe_exit(child.proc.returncode)
            how = f"signal={sig}" if sig else f"code={code}"
            data: dict[str, Any] = {
                "worker_id": child.worker_id,
                "pid": child.pid,
                "code": code,
                "signal": sig,
            }
            if child.role == RETIRING or self.signals:
                self._event("worker_exited", f"Worker exited worker_id={child.worker_id} {how}",
                            expected=True, **data)  # fmt: skip
                continue
            if child is self.standby:
                self.standby = None
            decision, counted = self._decide(child)
            decision = self._no_wait_when_nothing_serves(child, decision)
            why = "hung" if child.hung else child.role if child.role != ACTIVE else "crashed"
            self._event(
                "worker_exited",
                f"Worker exited worker_id={child.worker_id} {how} ({why}); "
                f"{decision.failures_in_window} failures in window"
                + ("" if counted else " (not counted: Redis unreachable)")
                + (f", restart in {decision.delay:.2f} s" if decision.restart else ""),
                level=logging.WARNING,
                expected=False,
                reason=why,
                restart_in=decision.delay if decision.restart else None,
                failures_in_window=decision.failures_in_window,
                counted=counted,
                **data,
            )
            if not decision.restart:
                self._give_up(decision.failures_in_window)
            elif child.role == STANDBY:
                # Its target still serves: try the replacement again after the backoff.
                if child.replaces is not None and child.replaces in self.children:
                    self.replace_queue.appendleft(child.replaces)
                self.replace_not_before = now + decision.delay
            elif child.role == SPARE:
                self.spare_not_before = now + decision.delay
            elif (spare := self._ready_spare()) is not None:
                # Take over at once; a new spare is started after the backoff instead.
                self._use_spare(spare, replaces=child.worker_id, restarts=child.restarts + 1)
                self.spare_not_before = now + decision.delay
            else:
                self.pending.append(
                    PendingStart(now + decision.delay, child.restarts + 1, child.worker_id,
                                 decision.delay)
                )  # fmt: skip

    def _retire(self, child: WorkerHandle, now: float) -> None:
        child.role = RETIRING
        child.terminate(grace=self.cfg.shutdown_grace + EXIT_MARGIN, now=now)
        self._dirty = True

    # -- graceful stop --------------------------------------------------------------------

    def _shutdown(self) -> None:
        """SIGTERM every worker, wait for the drains, SIGKILL leftovers, write the last record."""
        grace = self.cfg.shutdown_grace
        self._set_state(STOPPING)
        self._event(
            "supervisor_stopping", f"Stopping workers={len(self.children)} grace={grace:g}s"
        )
        self.pending.clear()
        self.replace_queue.clear()
        self._stop_template()
        now = self.clock()
        for child in self.children:
            self._retire(child, now)
        deadline = now + grace + EXIT_MARGIN + 1.0
        while self.children and self.clock() < deadline:
            now = self.clock()
            self._reap(now)
            for child in self.children:
                child.escalate(now)
            if now >= self._next_sync:
                self._sync(now)
            self.waker.sleep(TICK)
        for child in self.children:
            logger.error("[Telephony Supervisor] worker_id=%s would not die", child.worker_id)
        self._reap(self.clock())
        self._set_state(STOPPED)
        self._event("supervisor_stopped", "Stopped")
        try:
            last = self.store.finish(record=self.record(), forget=self._forget)
            logger.info(
                "[Telephony Supervisor] Final record written sid=%s last=%s", self.sid, last
            )
        except (redis.RedisError, OSError) as e:
            logger.warning("[Telephony Supervisor] final record not written: %s", type(e).__name__)
        self.events.check_state()
        self.events.close(timeout=5.0)
        self.store.close()
