"""How the supervisor starts a worker: forked from the preloaded template, else cold.

The template (:mod:`telephony.supervisor.template`) makes a new worker take milliseconds
instead of the seconds a cold ``telephony_worker`` spends importing the Telnyx SDK. This
mixin of :class:`telephony.supervisor.loop.Supervisor` keeps it running and uses it:

- at start and at a rolling restart the pool *holds* (starts nothing) while a new
  template loads, up to the worker start timeout, so every worker it then starts runs the
  code on disk when the restart was asked for: never old code;
- a template that dies or cannot fork is restarted with backoff, and meanwhile each worker
  is started cold, with a ``template_fallback`` event saying so.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable
from typing import Any

from telephony.supervisor.children import ACTIVE, SPARE, WorkerHandle
from telephony.supervisor.policy import Decision
from telephony.supervisor.template import READY, STARTING, TemplateUnavailable, WorkerTemplate

logger = logging.getLogger(__name__)


class PreloadMixin:
    """The template half of the supervisor."""

    sid: str
    spawn: Callable[..., subprocess.Popen[bytes]]
    template: WorkerTemplate | None
    start_timeout: float
    _template_hold: bool
    _dirty: bool
    children: list[WorkerHandle]
    pending: list[Any]

    def _event(self, kind: str, message: str, *, level: int = logging.INFO, **data: Any) -> None:
        raise NotImplementedError

    def _start_template(self, *, renew: bool = False) -> None:
        """Start (or, for a rolling restart, replace) the template; hold the pool meanwhile."""
        if self.template is None:
            return
        if renew:
            old = self.template.pid
            self.template.renew()
            logger.info(
                "[Telephony Supervisor] New worker template generation=%d (old pid=%s retired)",
                self.template.generation, old,
            )  # fmt: skip
        else:
            self.template.adopt_orphans()
            self.template.start()
        self._template_hold = self.template.state == STARTING

    def _holding(self, now: float) -> bool:
        """True while the pool waits for a new template instead of starting workers."""
        template = self.template
        if template is None or not self._template_hold:
            return False
        if template.state == STARTING and now - template.started_at < self.start_timeout:
            return True
        self._template_hold = False
        return False

    def _template_tick(self, now: float) -> None:
        template = self.template
        if template is None:
            return
        change = template.poll(now)
        if change:
            self._dirty = True
        if change == "ready":
            self._event(
                "template_ready",
                f"Worker template ready pid={template.pid} generation={template.generation} "
                f"loaded in {template.load_seconds or 0:.2f} s",
                pid=template.pid,
                generation=template.generation,
                load_seconds=template.load_seconds,
            )
        elif change == "died":
            self._event(
                "template_exited",
                f"Worker template {template.why_down}; workers start cold until it is back "
                f"(restart in {max(0.0, template.restart_at - now):.2f} s)",
                level=logging.WARNING,
                generation=template.generation,
                why=template.why_down,
            )

    def _start_process(self, *, spare: bool) -> subprocess.Popen[bytes] | Any:
        """A new worker process: forked from the template when it is ready, else cold."""
        template = self.template
        if template is None:
            return self.spawn(self.sid, spare=spare)
        try:
            return template.fork(spare=spare)
        except TemplateUnavailable as e:
            why = str(e)
        proc = self.spawn(self.sid, spare=spare)
        self._event(
            "template_fallback",
            f"Cold start of worker pid={proc.pid}: {why}",
            level=logging.WARNING,
            pid=proc.pid,
            why=why,
            template_state=template.state,
        )
        return proc

    def _no_wait_when_nothing_serves(self, child: WorkerHandle, decision: Decision) -> Decision:
        """No backoff for the restart that restores service after a wipe-out.

        When a worker that served dies and nothing serves any more (no active worker, no
        ready spare, no restart already going at once) and the template can fork in
        milliseconds, one restart starts at once. The backoff exists so that a crash loop
        does not burn a cold start's seconds of CPU over and over; a fork costs
        milliseconds, and the restart intensity still counts this failure, so a loop
        still ends in ``failed``. Workers that never served (crashing at start) keep their backoff.
        """
        if (
            not decision.restart
            or child.role != ACTIVE
            or not child.ready
            or any(p.delay == 0.0 for p in self.pending)  # one at once is enough
            or not self.template_ready()
            or any(c.ready and c.role in (ACTIVE, SPARE) for c in self.children)
        ):
            return decision
        return Decision(restart=True, delay=0.0, failures_in_window=decision.failures_in_window)

    def _stop_template(self) -> None:
        if self.template is not None:
            self.template.stop(why="supervisor stopping")

    def template_ready(self) -> bool:
        return self.template is not None and self.template.state == READY
