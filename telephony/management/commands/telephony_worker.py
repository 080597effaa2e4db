"""``python manage.py telephony_worker``: one worker process on channel ``telephony``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Consume channel 'telephony': the only process that talks to Telnyx."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--concurrency", type=int, default=None)
        parser.add_argument(
            "--spare",
            action="store_true",
            help="start fully loaded but idle; SIGUSR1 makes it take requests",
        )
        parser.add_argument(
            "--template",
            action="store_true",
            help="(started by the supervisor) preload, then fork workers on its orders",
        )
        parser.add_argument("--control-fd", type=int, default=None, help=None)

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["template"]:
            if opts["control_fd"] is None:
                raise CommandError("--template needs --control-fd (the supervisor passes it)")
            from telephony.worker.template import serve

            serve(opts["control_fd"])
            return
        from telephony.worker.process import run_worker

        run_worker(concurrency=opts["concurrency"], spare=opts["spare"])
