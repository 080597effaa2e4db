"""The recordings' housekeeping: resume what a dead worker left, retry remote deletes,
and delete what is past retention.

Two callers share it, like credential hygiene (:mod:`.hygiene`):

- :func:`recording_hygiene`, from every worker's reconcile loop. Every step claims each
  row with the same lease a fetch uses, so workers on any number of hosts may run it at
  once without stepping on each other or on a fetch in progress;
- ``manage.py purge_recordings`` (:func:`apurge_recordings`), in its own process.

Deleting a recording goes Telnyx's copy first (if we have not deleted it already), then
our file, then the row. A failure at any step leaves the rest as it was (a storage error
leaves the row and the file) and is reported; the next pass tries again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from telephony.models import Recording, RecordingStatus
from telephony.services import aservice_event
from telephony.worker.recording_store import recordings_storage
from telephony.worker.recordings import LEASE, MAX_ATTEMPTS, RecordingFetcher

logger = logging.getLogger(__name__)

RESUME_CONCURRENCY = 2  # background resumptions per worker at once
FRESH_ROW_GRACE = timedelta(seconds=60)  # a new row's own fetch request is likely in flight
PASS_LIMIT = 200  # rows purged per hygiene pass
REMOTE_RETRY = timedelta(minutes=10)  # between attempts at deleting one Telnyx copy
NO_REMOTE_COPY = ("gone_at_provider", "unresolvable", "duplicate")


def retention_age() -> timedelta | None:
    """``TELEPHONY_RECORDING_RETENTION_DAYS`` as a timedelta; None keeps everything."""
    days = settings.TELEPHONY_RECORDING_RETENTION_DAYS
    return timedelta(days=float(days)) if days else None


@dataclass
class PurgeItem:
    """One recording selected for deletion, and what became of it."""

    id: uuid.UUID
    telnyx_recording_id: str
    created_at: datetime
    status: str
    storage_name: str
    outcome: str = "selected"  # selected | deleted | busy | failed
    error: str = ""


@dataclass
class PurgeReport:
    """What one purge selected and did; the command prints it, the hygiene pass logs it."""

    run_id: str
    older_than: timedelta
    dry_run: bool
    items: list[PurgeItem] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for item in self.items if item.outcome == outcome)

    @property
    def ok(self) -> bool:
        return self.count("failed") == 0


async def apurge_recordings(
    fetcher: RecordingFetcher | None,
    *,
    older_than: timedelta,
    dry_run: bool = False,
    now: datetime | None = None,
    limit: int | None = None,
    run_id: str | None = None,
) -> PurgeReport:
    """Delete every recording created before ``now - older_than`` (unless ``dry_run``).

    ``fetcher`` reaches Telnyx; None (no API key) fails the rows whose copy at Telnyx is
    still there, and deletes the others.
    """
    now = now or timezone.now()
    report = PurgeReport(run_id or f"purge-{uuid.uuid4().hex[:12]}", older_than, dry_run)
    rows = Recording.objects.filter(created_at__lt=now - older_than).order_by("created_at")
    async for row in rows[:limit] if limit else rows:
        report.items.append(
            PurgeItem(row.id, row.telnyx_recording_id, row.created_at, row.status, row.storage_name)
        )
    logger.info(
        "[Telephony Recordings] run_id=%s purge older than %s: %d selected, dry_run=%s",
        report.run_id, older_than, len(report.items), dry_run,
    )  # fmt: skip
    if not dry_run:
        for item in report.items:
            await _purge_one(fetcher, item, report.run_id, now)
    return report


async def _purge_one(
    fetcher: RecordingFetcher | None, item: PurgeItem, run_id: str, now: datetime
) -> None:
    lease = now + LEASE
    claimed = await Recording.objects.filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now), pk=item.id
    ).aupdate(lease_until=lease)
    if not claimed:
        item.outcome = "busy"  # a fetch (or another purge) holds it: the next pass decides
        return
    row = await Recording.objects.aget(pk=item.id)
    if row.remote_deleted_at is None and row.error_code not in NO_REMOTE_COPY:
        reason = "no_api_key" if fetcher is None else await fetcher.delete_remote(row, run_id)
        if reason and reason not in NO_REMOTE_COPY:
            await _fail(item, lease, f"Telnyx's copy not deleted: {reason}")
            return
    if row.storage_name:
        try:
            await asyncio.to_thread(_delete_file, row.storage_name)
        except Exception as e:
            await _fail(item, lease, f"storage error: {type(e).__name__}: {e}")
            return
    await Recording.objects.filter(pk=item.id, lease_until=lease).adelete()
    item.outcome = "deleted"
    logger.info(
        "[Telephony Recordings] run_id=%s recording_id=%s deleted (file %s)",
        run_id, item.id, row.storage_name or "-",
    )  # fmt: skip


def _delete_file(name: str) -> None:
    storage = recordings_storage()
    if storage.exists(name):
        storage.delete(name)


async def _fail(item: PurgeItem, lease: datetime, error: str) -> None:
    item.outcome, item.error = "failed", error[:300]
    await Recording.objects.filter(pk=item.id, lease_until=lease).aupdate(lease_until=None)
    logger.warning("[Telephony Recordings] recording_id=%s not purged: %s", item.id, item.error)


async def resume_lapsed(fetcher: RecordingFetcher, *, now: datetime) -> list[uuid.UUID]:
    """Start background fetches of pending rows nobody holds (a worker died, or no worker
    was up when the webhook came); they ask Telnyx for fresh links and resume the spool."""
    unclaimed = Recording.objects.filter(
        Q(lease_until__lt=now) | Q(lease_until__isnull=True, created_at__lt=now - FRESH_ROW_GRACE),
        status=RecordingStatus.PENDING,
    )
    # Workers that keep dying on it (a crash, an OOM kill) never reach their own give-up.
    if given_up := await unclaimed.filter(attempts__gte=MAX_ATTEMPTS).aupdate(
        status=RecordingStatus.FAILED, error_code="gave_up", lease_until=None
    ):
        logger.warning("[Telephony Recordings] %d recording(s) given up after %d attempts",
                       given_up, MAX_ATTEMPTS)  # fmt: skip
    room = RESUME_CONCURRENCY - len(fetcher.tasks)
    if room <= 0:
        return []
    ids = [pk async for pk in unclaimed.order_by("created_at").values_list("id", flat=True)[:room]]
    for pk in ids:
        logger.info("[Telephony Recordings] recording_id=%s pending and unclaimed: resuming", pk)
        fetcher.spawn(pk)
    return ids


async def retry_remote_deletes(fetcher: RecordingFetcher, *, now: datetime, limit: int = 20) -> int:
    """Delete Telnyx's copies that an earlier delete failed to remove; how many went.

    Each row is claimed for ``REMOTE_RETRY`` first: one worker at a time tries it, and a
    delete that keeps failing (credentials, an outage) is tried again that much later,
    not on every pass.
    """
    done = 0
    due = Recording.objects.filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now),
        status=RecordingStatus.STORED,
        remote_deleted_at__isnull=True,
    ).order_by("stored_at")
    async for row in due[:limit]:
        lease = now + REMOTE_RETRY
        if not await Recording.objects.filter(pk=row.pk, lease_until=row.lease_until).aupdate(
            lease_until=lease
        ):
            continue  # another worker took it
        if not await fetcher.delete_remote(row, f"hygiene-{row.id}"):
            done += 1
            await Recording.objects.filter(pk=row.pk, lease_until=lease).aupdate(lease_until=None)
    return done


async def recording_hygiene(
    fetcher: RecordingFetcher, *, now: datetime | None = None
) -> dict[str, Any]:
    """One pass of every step; never raises (the reconcile loop calls it every interval)."""
    now = now or timezone.now()
    result: dict[str, Any] = {"resumed": [], "remote_deleted": 0, "purged": None}
    try:
        result["resumed"] = await resume_lapsed(fetcher, now=now)
        if settings.TELEPHONY_RECORDING_DELETE_REMOTE:
            result["remote_deleted"] = await retry_remote_deletes(fetcher, now=now)
        if (age := retention_age()) is not None:
            report = await apurge_recordings(
                fetcher,
                older_than=age,
                now=now,
                limit=PASS_LIMIT,
                run_id=f"retention-{fetcher.worker_id}",
            )
            result["purged"] = report
            if not report.ok:
                failed = [i for i in report.items if i.outcome == "failed"]
                await aservice_event(
                    kind="recordings_purge_failed",
                    message=f"Retention: {len(failed)} recording(s) could not be deleted",
                    worker_id=fetcher.worker_id,
                    failures=[{"id": str(i.id), "error": i.error} for i in failed],
                )
    except Exception:
        logger.exception("[Telephony Recordings] hygiene pass crashed; continuing")
    return result
