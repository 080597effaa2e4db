"""Keeping the supervisor's pool healthy and sized: hang detection, giving up, restarts
due, scaling, replacements and operator commands.

Split from :mod:`telephony.supervisor.loop` (which owns the loop, reaping, Redis and the
graceful stop) to keep each module readable. Replacements (recycling and rolling
restarts) go one at a time: the new worker is started as a ``standby`` and only when it
has beaten once does the old one get SIGTERM (it drains), so capacity never drops.

Spares (``TELEPHONY_SPARE_WORKERS``) are workers started and loaded but idle. A worker
that dies, is due for a restart, or is recycled is replaced by a ready spare at once
(SIGUSR1), and a new spare is started in the background, after the failure's backoff.
A rolling restart does not use them (they run the old code): it retires them and they
are started again once it is over. Spares are started only while every active worker
serves and nothing else is starting, so they never slow down the workers that matter.

Operator commands come from ``telephony.control`` through Redis, as
:class:`~telephony.protocol.ControlCommand` (decoded, so already valid, by the store).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from telephony.protocol import (
    FAILED,
    RESET,
    RESTART,
    RUNNING,
    SCALE,
    STARTING,
    ControlCommand,
    Heartbeat,
)
from telephony.state import now_ms
from telephony.supervisor.children import ACTIVE, SPARE, STANDBY, WorkerHandle
from telephony.supervisor.policy import Decision

if TYPE_CHECKING:
    from telephony.supervisor.policy import RestartPolicy, SupervisorConfig

logger = logging.getLogger(__name__)

MAX_WORKERS = 64
# After Redis returns, heartbeats are judged again only after this many heartbeat timeouts:
# the workers' clients retry with backoff (up to 1 s apart), so their first beat can lag.
RECOVERY_GRACE = 2


@dataclass
class PendingStart:
    """A restart waiting out its backoff."""

    due: float
    restarts: int
    replaces: str
    delay: float


class PoolMixin:
    """The pool-sizing half of :class:`telephony.supervisor.loop.Supervisor`."""

    sid: str
    cfg: SupervisorConfig
    clock: Callable[[], float]
    desired: int
    policy: RestartPolicy
    state: str
    restarts: int
    signals: int
    children: list[WorkerHandle]
    pending: list[PendingStart]
    replace_queue: deque[WorkerHandle]
    standby: WorkerHandle | None
    replace_not_before: float
    spare_not_before: float
    rolling: bool
    commands: list[ControlCommand]
    _redis_ok: bool
    _redis_ok_since: float
    _uncounted: int

    def _spawn(self, role: str, **fields: Any) -> WorkerHandle | None:
        raise NotImplementedError

    def _event(self, kind: str, message: str, *, level: int = logging.INFO, **data: Any) -> None:
        raise NotImplementedError

    def _set_state(self, state: str) -> None:
        raise NotImplementedError

    def _retire(self, child: WorkerHandle, now: float) -> None:
        raise NotImplementedError

    def _start_template(self, *, renew: bool = False) -> None:
        raise NotImplementedError

    def _no_wait_when_nothing_serves(self, child: WorkerHandle, decision: Decision) -> Decision:
        raise NotImplementedError

    # -- health -------------------------------------------------------------------------

    def _decide(self, child: WorkerHandle) -> tuple[Decision, bool]:
        """Restart decision for a failed worker, and whether it counted as a failure.

        A worker that never beat while Redis was unreachable could not have started,
        whatever its code: it is restarted with backoff but does not count towards the
        intensity, or a Redis outage would end in ``failed`` and need an operator.
        """
        if not child.ready and not self._redis_ok:
            delay = self.policy.backoff(self._uncounted)
            self._uncounted += 1
            return Decision(
                restart=True, delay=delay, failures_in_window=self.policy.in_window()
            ), False
        return self.policy.on_failure(), True

    def _give_up(self, failures: int) -> None:
        self.pending.clear()
        for child in self.replace_queue:
            child.replace_reason = ""
        self.replace_queue.clear()
        if self.state == FAILED:
            return
        self._set_state(FAILED)
        cfg = self.cfg.policy
        self._event(
            "restart_intensity_exceeded",
            f"Gave up: {failures} failures within {cfg.window:.0f} s (max {cfg.max_restarts}); "
            "no more restarts until a reset (telephony_status --reset)",
            level=logging.ERROR,
            failures_in_window=failures,
        )

    def _judge(self, now: float) -> None:
        """Hang detection and recycling, from the heartbeats read in the last sync."""
        if (
            not self._redis_ok
            or now - self._redis_ok_since < RECOVERY_GRACE * self.cfg.heartbeat_timeout
        ):
            return
        ts = now_ms()
        for child in self.children:
            if child.term_at is not None:
                continue
            why = child.stale(now_ms_=ts, timeout=self.cfg.heartbeat_timeout,
                              start_timeout=self.cfg.start_timeout, now=now)  # fmt: skip
            if why:
                child.hung = True
                self._event(
                    "worker_hung",
                    f"Worker hung worker_id={child.worker_id}: {why}; SIGTERM, "
                    f"SIGKILL after {self.cfg.kill_grace:g} s",
                    level=logging.WARNING,
                    worker_id=child.worker_id,
                    pid=child.pid,
                    why=why,
                )
                child.terminate(grace=self.cfg.kill_grace, now=now)
            elif child.role == ACTIVE and child.beat and not child.replace_reason:
                reason = self._recycle_reason(child.beat)
                if reason and self.state != FAILED:
                    child.replace_reason = reason
                    self.replace_queue.append(child)

    def _recycle_reason(self, beat: Heartbeat) -> str:
        if beat.handled >= self.cfg.max_requests:
            return "max_requests"
        if beat.rss_mb > self.cfg.max_rss_mb:
            return "max_rss"
        return ""

    # -- desired number -------------------------------------------------------------------

    def _reconcile(self, now: float) -> None:
        """Start restarts that are due; start or retire workers to match ``desired``."""
        if self.signals:
            return
        for start in sorted((p for p in self.pending if p.due <= now), key=lambda p: p.due):
            self.pending.remove(start)
            spare = self._ready_spare()
            if spare is not None:
                self._use_spare(spare, replaces=start.replaces, restarts=start.restarts)
                continue
            child = self._spawn(ACTIVE, restarts=start.restarts)
            if child is not None:
                self.restarts += 1
                self._event(
                    "worker_restarted",
                    f"Worker restarted worker_id={child.worker_id} replaces={start.replaces} "
                    f"after {start.delay:.2f} s",
                    worker_id=child.worker_id,
                    pid=child.pid,
                    replaces=start.replaces,
                    delay=round(start.delay, 3),
                    restarts=start.restarts,
                )
        active = [c for c in self.children if c.role == ACTIVE]
        missing = self.desired - len(active) - len(self.pending)
        if missing > 0 and self.state != FAILED:
            for _ in range(missing):
                spare = self._ready_spare()
                if spare is not None:
                    spare.activate()
                started = spare or self._spawn(ACTIVE)
                if started is not None:
                    self._event(
                        "worker_started",
                        f"Worker started worker_id={started.worker_id}"
                        + (" (a spare)" if started is spare else ""),
                        worker_id=started.worker_id,
                        pid=started.pid,
                        spare=started is spare,
                    )
        elif missing < 0:
            self._shrink(-missing, active, now)
        self._keep_spares(now)

    # -- spares ---------------------------------------------------------------------------

    def _spares(self) -> list[WorkerHandle]:
        return [c for c in self.children if c.role == SPARE and c.term_at is None]

    def _ready_spare(self) -> WorkerHandle | None:
        if self.state == FAILED:
            return None
        return next((c for c in self._spares() if c.ready), None)

    def _use_spare(self, spare: WorkerHandle, *, replaces: str, restarts: int) -> None:
        """A spare takes over from a worker that died: a restart without a cold start."""
        spare.activate()
        spare.restarts = restarts
        self.restarts += 1
        self._event(
            "worker_restarted",
            f"Worker restarted worker_id={spare.worker_id} replaces={replaces} "
            "at once (a spare took over)",
            worker_id=spare.worker_id,
            pid=spare.pid,
            replaces=replaces,
            delay=0.0,
            restarts=restarts,
            spare=True,
        )

    def _keep_spares(self, now: float) -> None:
        """Start the spares that are missing, when nothing more important is starting."""
        missing = self.cfg.spares - len(self._spares())
        if (
            missing <= 0
            or self.desired == 0
            or self.signals
            or self.state == FAILED
            or self.rolling
            or self.pending
            or self.standby is not None
            or now < self.spare_not_before
            or not all(c.ready for c in self.children if c.role == ACTIVE)
        ):
            return
        for _ in range(missing):
            child = self._spawn(SPARE)
            if child is not None:
                logger.info(
                    "[Telephony Supervisor] Spare starting worker_id=%s sid=%s",
                    child.worker_id, self.sid,
                )  # fmt: skip

    def _shrink(self, excess: int, active: list[WorkerHandle], now: float) -> None:
        while excess and self.pending:
            self.pending.pop()
            excess -= 1
        # Prefer workers that do not serve yet, then the youngest.
        victims = sorted(active, key=lambda c: (c.ready, -c.started_mono))[:excess]
        for child in victims:
            logger.info(
                "[Telephony Supervisor] Retiring worker_id=%s (scale down)", child.worker_id
            )
            self._retire(child, now)

    # -- replacements ---------------------------------------------------------------------

    def _replace(self, now: float) -> None:
        """Advance the one replacement in progress, or start the next one."""
        standby = self.standby
        if standby is not None:
            if standby.ready:
                self._promote(standby, now)
            return
        if self.signals or self.state == FAILED or now < self.replace_not_before:
            return
        while self.replace_queue:
            target = self.replace_queue.popleft()
            if target not in self.children or target.role != ACTIVE or target.term_at is not None:
                continue
            spare = self._ready_spare() if target.replace_reason != "rolling_restart" else None
            if spare is not None:
                spare.activate()
                spare.replaces, spare.reason = target, target.replace_reason
                spare.restarts = target.restarts
                self._promote(spare, now)
                return
            self.standby = self._spawn(
                STANDBY, replaces=target, reason=target.replace_reason, restarts=target.restarts
            )
            return
        if self.rolling:
            self.rolling = False
            self._event("rolling_restart", "Rolling restart finished", phase="finished")

    def _promote(self, standby: WorkerHandle, now: float) -> None:
        if standby is self.standby:
            self.standby = None
        standby.role = ACTIVE
        target = standby.replaces
        standby.replaces = None
        old = target.worker_id if target is not None else ""
        if target is not None and target in self.children and target.role == ACTIVE:
            if target.term_at is None:
                self._retire(target, now)
        self._event(
            "worker_recycled",
            f"Worker replaced worker_id={old} by {standby.worker_id} ({standby.reason})",
            worker_id=old,
            new_worker_id=standby.worker_id,
            new_pid=standby.pid,
            reason=standby.reason,
            handled=target.beat.handled if target and target.beat else 0,
        )

    # -- operator commands ----------------------------------------------------------------

    def _run_commands(self) -> None:
        commands, self.commands = self.commands, []
        for command in commands:
            if self.signals:
                return
            user_id = command.user_id
            if command.cmd == RESTART:
                self.rolling_restart(user_id=user_id)
            elif command.cmd == RESET:
                self.reset(user_id=user_id)
            elif command.cmd == SCALE and command.n is not None:
                self.scale(command.n, user_id=user_id)

    def reset(self, *, user_id: int | None = None) -> None:
        """Clear the restart window; from ``failed``, start restarting again."""
        previous = self.state
        self.policy.reset()
        self.replace_not_before = 0.0
        if previous == FAILED:
            ready = any(c.ready for c in self.children if c.role == ACTIVE)
            self._set_state(RUNNING if ready else STARTING)
        self._event(
            "reset",
            f"Reset (was {previous}): restart window cleared",
            user_id=user_id,
            previous_state=previous,
        )

    def rolling_restart(self, *, user_id: int | None = None) -> None:
        """Replace every worker, one at a time, each new one serving before the old stops."""
        if self.state == FAILED:
            self.reset(user_id=user_id)
        targets = [
            c for c in self.children
            if c.role == ACTIVE and c.term_at is None and c.replace_reason != "rolling_restart"
        ]  # fmt: skip
        for child in targets:
            if not child.replace_reason:
                self.replace_queue.append(child)
            child.replace_reason = "rolling_restart"
        for spare in self._spares():  # they run the old code: new ones start afterwards
            self._retire(spare, self.clock())
        self._start_template(renew=True)  # new code first: replacements are forked from it
        self.rolling = True
        self._event(
            "rolling_restart",
            f"Rolling restart of {len(targets)} workers",
            user_id=user_id,
            phase="started",
            workers=[c.pid for c in targets],
        )

    def scale(self, n: int, *, user_id: int | None = None) -> None:
        """Set the desired number of workers of this supervisor (0..MAX_WORKERS)."""
        n = max(0, min(n, MAX_WORKERS))
        previous, self.desired = self.desired, n
        self._event(
            "scaled",
            f"Scaled from {previous} to {n} workers",
            user_id=user_id,
            previous=previous,
            desired=n,
        )
