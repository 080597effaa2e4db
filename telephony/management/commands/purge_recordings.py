"""``manage.py purge_recordings``: delete recordings past retention (file, Telnyx's copy, row).

Runs on its own (its own adapter and event loop, like ``cleanup_credentials``), so it works
while the workers are down. Age: ``--older-than`` if given, else
``TELEPHONY_RECORDING_RETENTION_DAYS``. Exit status: 0 when nothing failed, 1 when some
recording could not be deleted (one line each on stderr; those rows and files are left as
they were), 2 on bad usage (nothing is deleted then).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from telephony.worker.adapter import TelnyxAdapter
from telephony.worker.breaker import breaker_from_settings
from telephony.worker.hygiene import parse_duration
from telephony.worker.recording_retention import PurgeReport, apurge_recordings, retention_age
from telephony.worker.recordings import RecordingFetcher


def make_adapter() -> TelnyxAdapter | None:
    """The command's own adapter; None without ``TELNYX_API_KEY`` (tests replace this)."""
    if not settings.TELNYX_API_KEY:
        return None
    return TelnyxAdapter(
        api_key=settings.TELNYX_API_KEY,
        base_url=settings.TELNYX_BASE_URL,
        breaker=breaker_from_settings(),
        max_connections=4,
    )


class Command(BaseCommand):
    """Delete recordings older than the retention (see docs/RECORDINGS.md)."""

    help = (
        "Delete call recordings older than --older-than (default: "
        "TELEPHONY_RECORDING_RETENTION_DAYS): Telnyx's copy if we have not deleted it yet, "
        "our stored file, then the row. Needs TELNYX_API_KEY for recordings whose copy at "
        "Telnyx is still there."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """The command's flags."""
        parser.add_argument(
            "--dry-run", action="store_true", help="list what would be deleted; delete nothing"
        )
        parser.add_argument(
            "--older-than",
            metavar="DURATION",
            help="delete recordings received longer ago than this (12h, 30d, 1w)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        """Validate first, then select and delete."""
        older_than: timedelta | None = retention_age()
        if opts["older_than"] is not None:
            try:
                older_than = parse_duration(opts["older_than"])
            except ValueError as e:
                raise CommandError(f"--older-than: {e}.", returncode=2) from None
        if older_than is None:
            raise CommandError(
                "Nothing to purge by: pass --older-than or set TELEPHONY_RECORDING_RETENTION_DAYS.",
                returncode=2,
            )
        report = asyncio.run(self._run(older_than, bool(opts["dry_run"])))
        self._summary(report)
        if not report.ok:
            raise CommandError(
                f"{report.count('failed')} recording(s) could not be deleted.", returncode=1
            )

    async def _run(self, older_than: timedelta, dry_run: bool) -> PurgeReport:
        adapter = None if dry_run else make_adapter()
        fetcher = RecordingFetcher(adapter, worker_id="purge_recordings") if adapter else None
        try:
            return await apurge_recordings(fetcher, older_than=older_than, dry_run=dry_run)
        finally:
            if fetcher is not None:
                await fetcher.aclose()
            if adapter is not None:
                await adapter.aclose()

    def _summary(self, report: PurgeReport) -> None:
        for item in report.items:
            when = item.created_at.strftime("%Y-%m-%d %H:%M:%SZ")
            line = f"{item.id}  {when}  {item.status:<8} {item.storage_name or '-'}"
            if report.dry_run:
                self.stdout.write(f"would delete  {line}")
            elif item.outcome == "failed":
                self.stderr.write(self.style.ERROR(f"FAILED  {line}: {item.error}"))
            elif item.outcome == "busy":
                self.stdout.write(f"skipped (being fetched)  {line}")
        n = len(report.items)
        if report.dry_run:
            self.stdout.write(
                f"Dry run: {n} recording(s) older than {report.older_than} would be deleted; "
                "nothing was deleted."
            )
            return
        line = (
            f"Selected {n} recording(s) older than {report.older_than}: deleted "
            f"{report.count('deleted')}, skipped {report.count('busy')}, failed "
            f"{report.count('failed')}."
        )
        self.stdout.write(self.style.SUCCESS(line) if report.ok else self.style.ERROR(line))
