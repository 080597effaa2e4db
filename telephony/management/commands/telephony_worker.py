"""``python manage.py telephony_worker``: one worker process on channel ``telephony``."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Consume channel 'telephony': the only process that talks to Telnyx."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--concurrency", type=int, default=None)
        parser.add_argument(
            "--spare",
            action="store_true",
            help="start fully loaded but idle; SIGUSR1 makes it take requests",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        if os.environ.get("TELEPHONY_TEST_CRASH_AT_START"):
            # Test knob for the supervisor's restart-intensity tests.
            sys.stderr.write(
                "[Telephony Worker] crashing at start (TELEPHONY_TEST_CRASH_AT_START)\n"
            )
            sys.exit(3)
        from telephony.worker.main import TelephonyWorker

        asyncio.run(TelephonyWorker(concurrency=opts["concurrency"], spare=opts["spare"]).run())
        # Everything is drained and closed: skip the interpreter's slow teardown of the
        # Telnyx SDK's thousands of modules (0.5-1.5 s on every worker exit).
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
