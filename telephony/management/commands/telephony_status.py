"""``python manage.py telephony_status``: the service state, and operator actions.

Exit status 0 when the service is available (``ready`` or ``degraded``), 1 otherwise,
so it works as a health check. With an action (``--restart``, ``--reset``, ``--scale``)
the exit status says whether at least one supervisor was reached.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from telephony import exceptions as exc
from telephony.connections import redis_problem, redis_target
from telephony.protocol import Heartbeat
from telephony.state import ServiceState, now_ms, read_state


def _age(ms: Any, now: int) -> str:
    try:
        return f"{max(0, now - int(ms)) / 1000:.1f}s"
    except (TypeError, ValueError):
        return "-"


def _unreachable() -> str:
    """One line on why Redis cannot be used (which host, which setting; no secret)."""
    problem = redis_problem()
    return problem[1] if problem else f"Redis unreachable at {redis_target().describe()}"


class Command(BaseCommand):
    help = (
        "Show the telephony service state (exit 0 when available, 1 otherwise), or send a "
        "control command to the supervisors: --restart (rolling), --reset, --scale N."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the state as JSON")
        actions = parser.add_mutually_exclusive_group()
        actions.add_argument("--restart", action="store_true", help="rolling restart")
        actions.add_argument("--reset", action="store_true", help="reset after 'failed'")
        actions.add_argument("--scale", type=int, metavar="N", help="N workers per supervisor")
        parser.add_argument("--supervisor", metavar="SID", help="only this supervisor")

    def handle(self, *args: Any, **opts: Any) -> None:
        # The state reader logs a warning when Redis is down; here one clear line is enough.
        logging.getLogger("telephony.state").setLevel(logging.ERROR)
        if opts["restart"] or opts["reset"] or opts["scale"] is not None:
            sys.exit(self._act(opts))
        state = read_state()
        if opts["json"]:
            self.stdout.write(json.dumps(state.as_dict(), indent=2, sort_keys=True))
        elif state.reason == "redis_unreachable":
            self.stderr.write(f"error: {_unreachable()}")
        else:
            self._table(state)
        sys.exit(0 if state.available else 1)

    def _act(self, opts: dict[str, Any]) -> int:
        from telephony import control

        sid = opts["supervisor"]
        try:
            if opts["restart"]:
                what, reached = "rolling restart", control.request_restart(supervisor_id=sid)
            elif opts["reset"]:
                what, reached = "reset", control.request_reset(supervisor_id=sid)
            else:
                n = opts["scale"]
                if n < 0:
                    self.stderr.write("error: --scale needs N >= 0")
                    return 1
                what, reached = f"scale to {n}", control.request_scale(n, supervisor_id=sid)
        except exc.ServiceUnavailable:
            self.stderr.write(f"error: {_unreachable()}")
            return 1
        if opts["json"]:
            self.stdout.write(json.dumps({"action": what, "reached": reached}))
        elif reached:
            self.stdout.write(f"{what} sent to: {', '.join(reached)}")
        else:
            self.stderr.write(f"{what}: no live supervisor reached" + (f" ({sid})" if sid else ""))
        return 0 if reached else 1

    def _table(self, state: ServiceState) -> None:
        now = now_ms()
        style = self.style.SUCCESS if state.available else self.style.ERROR
        line = f"Telephony: {style(state.status.upper())}  workers {state.alive}/{state.desired}"
        self.stdout.write(line + (f"  reason: {state.reason}" if state.reason else ""))
        by_sup: dict[str, list[Heartbeat]] = {}
        for w in state.workers:
            by_sup.setdefault(w.supervisor_id, []).append(w)
        for sup in state.supervisors:
            self.stdout.write(
                f"\nSupervisor {sup.id}  {sup.state}  workers {sup.alive}/{sup.desired}  "
                f"restarts {sup.restarts} ({sup.restarts_in_window} in window)  "
                f"updated {_age(sup.updated_at, now)} ago"
            )
            last = sup.last_event
            if last:
                self.stdout.write(f"  last event: {last.kind}: {last.message}")
            self._workers(by_sup.pop(sup.id, []), now)
        for sid, workers in by_sup.items():
            self.stdout.write(f"\nWorkers of {sid or 'no supervisor'}")
            self._workers(workers, now)

    def _workers(self, workers: list[Heartbeat], now: int) -> None:
        if not workers:
            self.stdout.write("  (no live worker)")
            return
        header = f"  {'WORKER':<28} {'PID':>7} {'BEAT':>6} {'HANDLED':>8} {'FAILED':>7} "
        self.stdout.write(header + f"{'IN-FLIGHT':>9} {'RSS MB':>7}  BREAKER")
        for w in sorted(workers, key=lambda w: w.pid):
            flags = " draining" if w.draining else (" spare" if w.spare else "")
            self.stdout.write(
                f"  {w.id:<28} {w.pid:>7} {_age(w.beat_at, now):>6} "
                f"{w.handled:>8} {w.failed:>7} {w.in_flight:>9} "
                f"{w.rss_mb:>7}  {w.breaker}{flags}"
            )
