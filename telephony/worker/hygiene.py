"""Deleting the Telnyx credentials we no longer need.

Telnyx caps the number of telephony credentials per account, and every credential is a
SIP login somebody could use, so dead ones must go. Two callers share this module:

- ``manage.py cleanup_credentials`` (operators, cron): runs in its own process with its
  own adapter, so it works while the workers are down;
- :func:`credential_hygiene`, which every worker calls from its reconcile loop: at most
  one worker across all hosts (a Redis lock) and at most once per
  ``TELEPHONY_CREDENTIAL_HYGIENE_INTERVAL`` (a Redis key with that TTL) deletes our
  expired credentials; on every call it also frees the seats of agents away past
  ``TELEPHONY_SEAT_IDLE_SECONDS`` (:func:`telephony.worker.seats.reclaim_idle_seats`).

What may be deleted is decided by :func:`telephony.worker.credentials.select_deletable`, the
same rule the worker applies at the account limit. Every step is safe to repeat or run
concurrently: a delete answered 404 counts as "already gone", and our rows are marked
deleted with a conditional UPDATE. Nothing here handles a SIP password or a token.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from telephony.connections import get_async_redis, release_lock
from telephony.credential_cache import acredential_mark_deleted
from telephony.exceptions import TelephonyError
from telephony.keys import Keys
from telephony.models import Credential
from telephony.services import aservice_event
from telephony.worker.adapter import TelnyxAdapter
from telephony.worker.credentials import select_deletable, tagged
from telephony.worker.provider import CredentialInfo, RequestContext
from telephony.worker.seats import reclaim_idle_seats

logger = logging.getLogger(__name__)

PAGE_SIZE = 250  # the most Telnyx serves per page
DELETE_CONCURRENCY = 4
HYGIENE_LOCK_MS = 600_000
HYGIENE_RETRY_SECONDS = 300.0  # after a failed pass, try again this soon at the latest
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+)([smhdw])")


def parse_duration(text: str) -> timedelta:
    """``30m``, ``12h``, ``7d``, ``1w`` (or combined, ``1d12h``) as a timedelta; ValueError."""
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(
            f"{text!r} is not a duration; use a number and a unit s, m, h, d or w "
            "(e.g. 30m, 12h, 7d, 1w)"
        )
    total = timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in parts))
    if total <= timedelta(0):
        raise ValueError(f"{text!r} must be longer than zero")
    return total


@dataclass
class CleanupItem:
    """One credential selected for deletion, and what became of it."""

    id: str
    sip_username: str
    tag: str
    created_at: datetime | None
    expires_at: datetime | None
    reason: str
    outcome: str = "selected"  # selected | deleted | already_gone | failed
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sip_username": self.sip_username,
            "tag": self.tag,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "reason": self.reason,
            "outcome": self.outcome,
            "error": self.error or None,
        }


@dataclass
class CleanupReport:
    """What one run listed, selected and did; the command prints it, tests read it."""

    run_id: str
    tag: str
    dry_run: bool
    include_untagged: bool
    older_than: timedelta | None
    listed: int = 0
    truncated: bool = False
    items: list[CleanupItem] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for item in self.items if item.outcome == outcome)

    @property
    def counts(self) -> dict[str, int]:
        return {
            "listed": self.listed,
            "selected": len(self.items),
            "deleted": self.count("deleted"),
            "already_gone": self.count("already_gone"),
            "failed": self.count("failed"),
        }

    @property
    def ok(self) -> bool:
        return self.count("failed") == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "tag": self.tag,
            "dry_run": self.dry_run,
            "include_untagged": self.include_untagged,
            "older_than_seconds": self.older_than.total_seconds() if self.older_than else None,
            "truncated": self.truncated,
            "counts": self.counts,
            "items": [item.as_dict() for item in self.items],
        }


class _Run:
    """One cleanup run: each provider call gets its own deadline and a numbered request id."""

    def __init__(self, adapter: TelnyxAdapter, run_id: str, timeout: float) -> None:
        self.adapter, self.run_id, self.timeout = adapter, run_id, timeout
        self._n = 0

    def ctx(self) -> RequestContext:
        self._n += 1
        return RequestContext(f"{self.run_id}-{self._n}", time.time() + self.timeout)

    async def list_all(self, tag: str | None, max_pages: int) -> tuple[list[CredentialInfo], bool]:
        return await self.adapter.list_all_credentials(
            self.ctx, tag=tag, max_pages=max_pages, page_size=PAGE_SIZE
        )

    async def delete(self, item: CleanupItem) -> None:
        try:
            gone_now = await self.adapter.delete_credential(self.ctx(), item.id)
        except TelephonyError as e:
            item.outcome, item.error = "failed", e.reason
            logger.warning(
                "[Telephony Cleanup] run_id=%s credential %s not deleted: %s",
                self.run_id, item.id, e.reason,
            )  # fmt: skip
            return
        item.outcome = "deleted" if gone_now else "already_gone"
        try:
            await acredential_mark_deleted(telnyx_id=item.id, reason=item.reason)
        except Exception as e:  # the delete happened; a re-run records it ("already gone")
            item.outcome, item.error = "failed", f"record_not_updated: {type(e).__name__}"
            logger.warning(
                "[Telephony Cleanup] run_id=%s credential %s deleted but not recorded: %s",
                self.run_id, item.id, type(e).__name__,
            )  # fmt: skip
            return
        logger.info(
            "[Telephony Cleanup] run_id=%s credential %s %s (%s)",
            self.run_id, item.id, item.outcome, item.reason,
        )  # fmt: skip


async def acleanup_credentials(
    adapter: TelnyxAdapter,
    *,
    tag: str | None = None,
    older_than: timedelta | None = None,
    include_untagged: bool = False,
    dry_run: bool = False,
    reasons: Collection[str] | None = None,
    now: datetime | None = None,
    run_id: str | None = None,
    on_item: Callable[[CleanupItem], None] | None = None,
) -> CleanupReport:
    """List the account's credentials, select what may go, and (unless ``dry_run``) delete it.

    ``reasons`` restricts the run to some reasons (the hygiene pass only deletes
    ``expired``). A listing failure raises the provider error before anything is
    deleted; a failed delete is recorded in the report and the run goes on.
    """
    tag = tag or str(settings.TELEPHONY_CREDENTIAL_TAG)
    run = _Run(
        adapter,
        run_id or f"cleanup-{uuid.uuid4().hex[:12]}",
        float(settings.TELEPHONY_REQUEST_TIMEOUT),
    )
    max_pages = int(settings.TELEPHONY_CLEANUP_MAX_PAGES)
    report = CleanupReport(run.run_id, tag, dry_run, include_untagged, older_than)

    ours, truncated = await run.list_all(tag, max_pages)
    info = {c.id: c for c in ours}
    remote = tagged(ours, tag)
    if include_untagged:
        everything, more = await run.list_all(None, max_pages)
        truncated = truncated or more
        others = [c for c in everything if c.id not in info]
        info.update({c.id: c for c in others})
        remote.extend(others)
    report.listed, report.truncated = len(info), truncated
    if truncated:
        logger.warning(
            "[Telephony Cleanup] run_id=%s listing stopped after %d pages", run.run_id, max_pages
        )

    ids = list(info)
    local: dict[str, Credential] = {}
    for start in range(0, len(ids), 500):
        async for row in Credential.objects.filter(telnyx_id__in=ids[start : start + 500]):
            local[row.telnyx_id] = row
    selected = select_deletable(
        remote,
        local,
        tag=tag,
        now=now or timezone.now(),
        older_than=older_than,
        include_untagged=include_untagged,
    )
    remote_tags = {c.id: c.tag for c in remote}
    for d in selected:
        if reasons is not None and d.reason not in reasons:
            continue
        cred = info[d.telnyx_id]
        report.items.append(
            CleanupItem(
                id=cred.id,
                sip_username=cred.sip_username,
                tag=remote_tags[cred.id],
                created_at=cred.created_at,
                expires_at=cred.expires_at,
                reason=d.reason,
            )
        )
    logger.info(
        "[Telephony Cleanup] run_id=%s listed=%d selected=%d dry_run=%s",
        run.run_id, report.listed, len(report.items), dry_run,
    )  # fmt: skip
    if dry_run:
        return report

    slots = asyncio.Semaphore(DELETE_CONCURRENCY)

    async def one(item: CleanupItem) -> None:
        async with slots:
            await run.delete(item)
        if on_item is not None:
            on_item(item)

    await asyncio.gather(*(one(item) for item in report.items))
    return report


async def credential_hygiene(
    adapter: TelnyxAdapter, *, worker_id: str = ""
) -> CleanupReport | None:
    """The workers' periodic pass: free idle seats (every call), and delete our expired
    credentials (once per interval). Never raises.

    Returns the report when this call ran the expired-credential pass, None when another
    worker holds the lock, the interval has not passed yet, hygiene is off (interval <= 0)
    or it failed.
    """
    await reclaim_idle_seats(adapter, worker_id=worker_id)
    interval = float(settings.TELEPHONY_CREDENTIAL_HYGIENE_INTERVAL)
    if interval <= 0:
        return None
    lock, due = Keys.lock("credential_hygiene"), Keys.hygiene_due()
    token = uuid.uuid4().hex
    run_id = f"hygiene-{token[:12]}"
    try:
        r = get_async_redis()
        if not await r.set(lock, token, nx=True, px=HYGIENE_LOCK_MS):
            return None
    except Exception as e:
        logger.warning("[Telephony Hygiene] skipped, Redis unavailable: %s", type(e).__name__)
        return None
    try:
        if not await r.set(due, worker_id or run_id, nx=True, px=int(interval * 1000)):
            return None
        try:
            report = await acleanup_credentials(adapter, reasons={"expired"}, run_id=run_id)
        except TelephonyError as e:
            retry_ms = int(min(interval, HYGIENE_RETRY_SECONDS) * 1000)
            await r.set(due, worker_id or run_id, px=retry_ms)
            logger.warning("[Telephony Hygiene] run_id=%s failed: %s", run_id, e.reason)
            return None
        counts = report.counts
        logger.info("[Telephony Hygiene] run_id=%s worker_id=%s %s", run_id, worker_id, counts)
        if counts["deleted"] or counts["failed"]:
            await aservice_event(
                kind="credentials_cleaned",
                message=f"Deleted {counts['deleted']} expired credentials"
                + (f", {counts['failed']} failed" if counts["failed"] else ""),
                worker_id=worker_id,
                run_id=run_id,
                deleted=[i.id for i in report.items if i.outcome == "deleted"],
                failed=counts["failed"],
            )
        return report
    except Exception:
        logger.exception("[Telephony Hygiene] run_id=%s crashed; continuing", run_id)
        return None
    finally:
        try:
            await release_lock(lock, token)
        except Exception as e:  # the lock's TTL frees it anyway
            logger.warning(
                "[Telephony Hygiene] run_id=%s lock not released: %s", run_id, type(e).__name__
            )
