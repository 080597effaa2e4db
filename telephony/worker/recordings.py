"""``recording.fetch``: bring a recording Telnyx saved into our storage, exactly once.

The steps, each safe to repeat:

1. **Claim** the ``pending`` row with one conditional UPDATE: a lease (``lease_until``)
   that no other worker holds or whose holder died (it lapsed), counting ``attempts``.
   A replayed webhook or a second worker finds the lease held and does nothing.
2. **Download** into a spool file under ``VAR_DIR`` (:mod:`.recording_download`:
   streamed, sha256 on the way, capped at ``TELEPHONY_RECORDING_MAX_BYTES``, checked
   against Content-Length, resumed with ``Range``), renewing the lease as bytes arrive.
   An expired link (403/404/410, or older than its 10 minutes) is replaced by fresh ones
   from ``GET /v2/recordings/{id}``, and the spool resumes where it stopped.
3. **Store** under a deterministic name (``YYYY/MM/<row uuid>.<format>``): a leftover of
   a worker that died at this step is replaced, never joined by a second file; then read
   back from the storage and **verified** (size and sha256).
4. **Mark** the row ``stored``, only while our lease still holds; drop the spool.
5. Only then, with ``TELEPHONY_RECORDING_DELETE_REMOTE``, delete Telnyx's copy and set
   ``remote_deleted_at`` (the hygiene pass retries a delete that failed).

A failure worth retrying (connection cut, Telnyx down, the deadline) leaves the row
``pending`` with its lease pushed out by a backoff; the hygiene pass
(:mod:`.recording_retention`) resumes it when the lease lapses. A file too large, a
recording Telnyx no longer has, or too many attempts make it ``failed`` with a code.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from telephony import exceptions as exc
from telephony.models import Recording, RecordingStatus
from telephony.worker import recording_remote as remote
from telephony.worker.provider import RecordingsApi, RequestContext
from telephony.worker.recording_download import discard_spool, download_to_spool, spool_lock
from telephony.worker.recording_store import store_verified

logger = logging.getLogger(__name__)

LEASE = timedelta(seconds=120)  # renewed while bytes arrive; lapses soon after a death
RENEW_EVERY = 30.0  # seconds between lease renewals during a download
MAX_ATTEMPTS = 8  # then the row is failed (``gave_up``)
MAX_REFRESHES = 2  # fresh links asked for per attempt
PERMANENT_REASONS = ("gone_at_provider", "unresolvable", "duplicate")
URL_MARGIN = 15.0  # seconds: a link this close to its expiry counts as expired


def backoff(attempts: int) -> timedelta:
    """How long a failed attempt waits before the hygiene pass may retry: 30 s doubling."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


def spool_path(row: Recording) -> Path:
    return Path(settings.VAR_DIR) / "recording-spool" / f"{row.id}.{row.format or 'bin'}.part"


def storage_name(row: Recording) -> str:
    """Deterministic: the same recording always lands on the same name."""
    return f"{row.created_at:%Y/%m}/{row.id}.{row.format or 'bin'}"


class Lease:
    """Our claim on a row: the ``lease_until`` we wrote is the token every guarded
    UPDATE matches, so a worker whose lease was taken over can change nothing."""

    def __init__(self, pk: uuid.UUID, until: datetime) -> None:
        self.pk, self.until, self.renewed_at = pk, until, time.monotonic()

    async def renew(self, now: datetime, *, force: bool = False) -> None:
        """Push the lease out (at most every ``RENEW_EVERY`` unless forced)."""
        if not force and time.monotonic() - self.renewed_at < RENEW_EVERY:
            return
        until = now + LEASE
        if not await Recording.objects.filter(pk=self.pk, lease_until=self.until).aupdate(
            lease_until=until
        ):
            raise exc.RecordingFetchFailed("Our lease was taken over.", reason="lease_lost")
        self.until, self.renewed_at = until, time.monotonic()


class RecordingFetcher:
    """Claims, downloads, stores and verifies recordings for one worker."""

    def __init__(
        self,
        adapter: RecordingsApi,
        *,
        worker_id: str,
        now: Callable[[], datetime] = timezone.now,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.adapter, self.worker_id, self.now = adapter, worker_id, now
        self._http = http
        self.tasks: set[asyncio.Task[Any]] = set()

    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(30.0, connect=5.0), follow_redirects=True
            )
        return self._http

    async def aclose(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()

    # -- the operation -------------------------------------------------------------------

    async def recording_fetch(self, ctx: RequestContext, payload: dict[str, Any]) -> dict[str, Any]:
        """``recording.fetch``: payload ``recording_id``, ``url``, ``url_expires_at``."""
        try:
            row_id = uuid.UUID(str(payload.get("recording_id")))
        except ValueError:
            raise exc.InvalidRequest("recording.fetch needs recording_id.") from None
        url = payload.get("url") if isinstance(payload.get("url"), str) else ""
        expires = payload.get("url_expires_at")
        expires_at = float(expires) if isinstance(expires, int | float) else None
        return await self.fetch(row_id, url=url or "", url_expires_at=expires_at, ctx=ctx)

    def spawn(self, row_id: uuid.UUID) -> asyncio.Task[dict[str, Any]]:
        """Fetch in the background (the hygiene pass resuming a row); tracked for shutdown."""
        task = asyncio.create_task(self.fetch(row_id), name=f"recording-{row_id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def fetch(
        self,
        row_id: uuid.UUID,
        *,
        url: str = "",
        url_expires_at: float | None = None,
        ctx: RequestContext | None = None,
    ) -> dict[str, Any]:
        """Claim the row and bring its file in; what happened, as a JSON-safe dict."""
        rid = ctx.request_id if ctx else f"fetch-{row_id}"
        lease = await self._claim(row_id)
        if lease is None:
            row = await Recording.objects.filter(pk=row_id).afirst()
            state = row.status if row else "missing"
            logger.info(
                "[Telephony Recordings] request_id=%s recording_id=%s not claimed (%s, or "
                "another worker holds it)", rid, row_id, state,
            )  # fmt: skip
            return {"recording_id": str(row_id), "status": state, "claimed": False}
        row = await Recording.objects.aget(pk=row_id)
        try:
            result = await self._fetch_claimed(row, lease, rid, url, url_expires_at)
        except exc.TelephonyError as e:
            return await self._failed(row, lease, rid, e)
        except asyncio.CancelledError:  # the deadline or a stop: let another attempt resume soon
            await asyncio.shield(self._release(lease, self.now()))
            raise
        except Exception:
            logger.exception(
                "[Telephony Recordings] request_id=%s recording_id=%s crashed", rid, row.id
            )
            return await self._failed(row, lease, rid, exc.RecordingFetchFailed(reason="crashed"))
        return result

    async def _fetch_claimed(
        self, row: Recording, lease: Lease, rid: str, url: str, expires_at: float | None
    ) -> dict[str, Any]:
        spool = spool_path(row)
        if expires_at is not None and time.time() > expires_at - URL_MARGIN:
            url = ""  # do not even try a link past its lifetime
        with spool_lock(spool):
            return await self._fetch_locked(row, lease, rid, url, spool)

    async def _fetch_locked(
        self, row: Recording, lease: Lease, rid: str, url: str, spool: Path
    ) -> dict[str, Any]:
        async def renew(_size: int = 0) -> None:
            await lease.renew(self.now())

        refreshes = 0
        while True:
            if not url:
                if refreshes >= MAX_REFRESHES:
                    raise exc.RecordingFetchFailed("Fresh links expired too.", reason="url_expired")
                url = await remote.fresh_url(self.adapter, row, rid)
                refreshes += 1
            try:
                got = await download_to_spool(
                    self.http(),
                    url,
                    spool,
                    max_bytes=int(settings.TELEPHONY_RECORDING_MAX_BYTES),
                    on_progress=renew,
                )
                break
            except exc.RecordingLinkExpired:
                logger.info(
                    "[Telephony Recordings] request_id=%s recording_id=%s link expired; "
                    "asking Telnyx for fresh ones", rid, row.id,
                )  # fmt: skip
                url = ""
        await lease.renew(self.now(), force=True)  # the store and the check get a fresh lease
        name = storage_name(row)
        await asyncio.to_thread(store_verified, name, spool, got.size, got.sha256)
        stored = await Recording.objects.filter(
            pk=row.pk, status=RecordingStatus.PENDING, lease_until=lease.until
        ).aupdate(
            status=RecordingStatus.STORED,
            size_bytes=got.size,
            sha256=got.sha256,
            storage_name=name,
            stored_at=self.now(),
            lease_until=None,
            error_code="",
        )
        discard_spool(spool)
        if not stored:
            raise exc.RecordingFetchFailed("Our lease was taken over.", reason="lease_lost")
        logger.info(
            "[Telephony Recordings] request_id=%s recording_id=%s stored as %s: %d bytes, "
            "sha256 %s (resumed at %d)", rid, row.id, name, got.size, got.sha256, got.resumed_from,
        )  # fmt: skip
        if settings.TELEPHONY_RECORDING_DELETE_REMOTE:
            await self.delete_remote(row, rid)
        return {"recording_id": str(row.id), "status": RecordingStatus.STORED, "claimed": True}

    async def delete_remote(self, row: Recording, rid: str) -> str:
        """Delete Telnyx's copy and record it; "" when done, else why not (logged)."""
        return await remote.delete_remote(self.adapter, row, rid, now=self.now())

    # -- the lease -------------------------------------------------------------------------

    async def _claim(self, row_id: uuid.UUID) -> Lease | None:
        now = self.now()
        until = now + LEASE
        won = await Recording.objects.filter(
            Q(lease_until__isnull=True) | Q(lease_until__lt=now),
            pk=row_id,
            status=RecordingStatus.PENDING,
        ).aupdate(lease_until=until, attempts=F("attempts") + 1)
        return Lease(row_id, until) if won else None

    async def _release(self, lease: Lease, until: datetime) -> None:
        await Recording.objects.filter(pk=lease.pk, lease_until=lease.until).aupdate(
            lease_until=until
        )

    async def _failed(
        self, row: Recording, lease: Lease, rid: str, err: exc.TelephonyError
    ) -> dict[str, Any]:
        attempts = (await Recording.objects.values_list("attempts", flat=True).aget(pk=row.pk)) or 0
        permanent = getattr(err, "permanent", False) or err.reason in PERMANENT_REASONS
        if err.reason == "lease_lost":
            status = RecordingStatus.PENDING
        elif permanent or attempts >= MAX_ATTEMPTS:
            status = RecordingStatus.FAILED
            await Recording.objects.filter(pk=row.pk, lease_until=lease.until).aupdate(
                status=status, error_code=err.reason if permanent else "gave_up", lease_until=None
            )
            discard_spool(spool_path(row))
        else:
            status = RecordingStatus.PENDING
            await Recording.objects.filter(pk=row.pk, lease_until=lease.until).aupdate(
                error_code=err.reason, lease_until=self.now() + backoff(attempts)
            )
        logger.warning(
            "[Telephony Recordings] request_id=%s recording_id=%s attempt %d failed: %s (%s); %s",
            rid, row.id, attempts, err.reason, err.message,
            "given up" if status == RecordingStatus.FAILED else "will resume",
        )  # fmt: skip
        return {"recording_id": str(row.id), "status": status, "claimed": True, "error": err.reason}
