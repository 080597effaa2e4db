"""``manage.py cleanup_credentials``: delete Telnyx credentials we no longer need.

Runs on its own (its own adapter and event loop), so it works while the workers are
down. Exit status: 0 when nothing failed, 1 when a deletion or the listing failed,
2 on bad usage (nothing is deleted then). Never prints a SIP password or a token.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from telephony.exceptions import TelephonyError
from telephony.worker.adapter import TelnyxAdapter
from telephony.worker.breaker import breaker_from_settings
from telephony.worker.hygiene import (
    CleanupItem,
    CleanupReport,
    acleanup_credentials,
    parse_duration,
)

COLUMNS = ("ID", "SIP USERNAME", "TAG", "CREATED", "EXPIRES", "REASON")
OUTCOME_LABELS = {"deleted": "deleted", "already_gone": "already gone", "failed": "FAILED"}


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


def _row(item: CleanupItem) -> tuple[str, ...]:
    return (
        item.id,
        item.sip_username,
        item.tag or "(untagged)",
        _when(item.created_at),
        _when(item.expires_at),
        item.reason,
    )


def render_table(items: list[CleanupItem]) -> str:
    """A fixed-width table of the selected credentials."""
    rows = [COLUMNS, *(_row(i) for i in items)]
    widths = [max(len(r[c]) for r in rows) for c in range(len(COLUMNS))]
    lines = ("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows)
    return "\n".join(line.rstrip() for line in lines)


class Command(BaseCommand):
    """Delete our expired, old or orphaned Telnyx credentials (see docs/CREDENTIALS.md)."""

    help = (
        "Delete Telnyx telephony credentials we no longer need: ours (tagged "
        "TELEPHONY_CREDENTIAL_TAG) that are expired, orphaned (not in our database, or "
        "marked deleted there) or older than --older-than. A credential whose latest "
        "token is still valid is kept unless --older-than selects it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """The command's flags."""
        parser.add_argument(
            "--dry-run", action="store_true", help="show what would be deleted; delete nothing"
        )
        parser.add_argument(
            "--older-than",
            metavar="DURATION",
            help="also delete ours created longer ago than this (30m, 12h, 7d, 1w), in use or not",
        )
        parser.add_argument(
            "--include-untagged",
            action="store_true",
            help="also consider credentials without our tag (Telnyx does not report other "
            "tags, so: every other credential on the account); deletes those that are "
            "expired, not in our database, or older than --older-than",
        )
        parser.add_argument(
            "--json", action="store_true", help="print a machine-readable report instead"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        """Validate everything first, then list, select and delete."""
        older_than: timedelta | None = None
        if opts["older_than"] is not None:
            try:
                older_than = parse_duration(opts["older_than"])
            except ValueError as e:
                raise CommandError(f"--older-than: {e}.", returncode=2) from None
        if not settings.TELNYX_API_KEY:
            raise CommandError(
                "TELNYX_API_KEY is not set: nothing to clean up without a Telnyx account "
                "(set TELNYX_API_KEY and TELNYX_BASE_URL to point at the sandbox).",
                returncode=2,
            )
        as_json, dry_run = bool(opts["json"]), bool(opts["dry_run"])
        progress = None if as_json or dry_run else self._progress
        try:
            report = asyncio.run(
                self._run(
                    older_than=older_than,
                    include_untagged=bool(opts["include_untagged"]),
                    dry_run=dry_run,
                    on_item=progress,
                )
            )
        except TelephonyError as e:
            raise CommandError(
                f"Could not list credentials at Telnyx ({e.reason}): {e.message} "
                "Nothing was deleted.",
                returncode=1,
            ) from None
        if as_json:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        else:
            self._summary(report)
        if not report.ok:
            raise CommandError(f"{report.counts['failed']} deletion(s) failed.", returncode=1)

    async def _run(self, **kw: Any) -> CleanupReport:
        adapter = TelnyxAdapter(
            api_key=settings.TELNYX_API_KEY,
            base_url=settings.TELNYX_BASE_URL,
            breaker=breaker_from_settings(),
            max_connections=8,
        )
        try:
            return await acleanup_credentials(adapter, **kw)
        finally:
            await adapter.aclose()

    def _progress(self, item: CleanupItem) -> None:
        label = OUTCOME_LABELS.get(item.outcome, item.outcome)
        line = f"{label:<12}  {item.id}  {item.sip_username}  ({item.reason})"
        if item.error:
            line += f": {item.error}"
        self.stdout.write(self.style.ERROR(line) if item.outcome == "failed" else line)

    def _summary(self, report: CleanupReport) -> None:
        c = report.counts
        scope = f"tag {report.tag}" + (" and untagged" if report.include_untagged else "")
        if report.dry_run:
            if report.items:
                self.stdout.write(render_table(report.items))
            self.stdout.write(
                f"Dry run: {c['selected']} of {c['listed']} listed credentials ({scope}) "
                "would be deleted; nothing was deleted."
            )
        else:
            line = (
                f"Listed {c['listed']} ({scope}), selected {c['selected']}, deleted "
                f"{c['deleted']}, already gone {c['already_gone']}, failed {c['failed']}."
            )
            self.stdout.write(self.style.SUCCESS(line) if report.ok else self.style.ERROR(line))
        if report.truncated:
            self.stderr.write(
                "Warning: the listing was cut off at TELEPHONY_CLEANUP_MAX_PAGES; "
                "run again for the rest."
            )
