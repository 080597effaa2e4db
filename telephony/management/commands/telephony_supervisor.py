"""``python manage.py telephony_supervisor --workers N``: run and watch N telephony workers."""

from __future__ import annotations

import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = (
        "Spawn N telephony workers and keep them alive: restart crashed or hung ones with "
        "backoff, recycle them, publish the service state. SIGTERM/SIGINT stops gracefully."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            help="number of workers (default: TELEPHONY_WORKERS)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        from telephony.connections import MISCONFIGURED, redis_problem, redis_target
        from telephony.supervisor.loop import MAX_WORKERS, Supervisor

        workers = opts["workers"] if opts["workers"] is not None else settings.TELEPHONY_WORKERS
        if not 0 <= int(workers) <= MAX_WORKERS:
            raise CommandError(f"--workers must be between 0 and {MAX_WORKERS}")
        # A wrong password or master name is fatal at start-up; so are Sentinels that do
        # not answer. A plain Redis that is down is not: the supervisor supervises on and
        # publishes once it returns (the outage handling it also uses while running).
        problem = redis_problem()
        if problem and (problem[0] == MISCONFIGURED or redis_target().is_sentinel):
            raise CommandError(problem[1])
        code = Supervisor(workers=int(workers)).run()
        if code:
            sys.exit(code)
