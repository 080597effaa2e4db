"""The recording pipeline's calls to Telnyx: fresh links, finding an id, deleting a copy.

``call.recording.saved`` as the spec describes it names no recording id, only the leg,
the session and the start; such a row is keyed ``leg:<call_leg_id>:<start>`` until the
first call here finds Telnyx's id through ``GET /v2/recordings?filter[call_leg_id]=...``
and stores it. Download links are secrets: nothing here logs one.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError

from telephony import exceptions as exc
from telephony.models import Recording
from telephony.worker.provider import RecordingsApi, RequestContext

logger = logging.getLogger(__name__)


def has_telnyx_id(row: Recording) -> bool:
    """False while the row's key is our stand-in (``leg:``/``event:``), not Telnyx's id."""
    return not row.telnyx_recording_id.startswith(("leg:", "event:"))


def request_ctx(rid: str, step: str) -> RequestContext:
    """A context for one Telnyx call of a fetch or purge, with its own deadline."""
    timeout = float(settings.TELEPHONY_REQUEST_TIMEOUT)
    return RequestContext(f"{rid}-{step}", time.time() + timeout)


async def fresh_url(api: RecordingsApi, row: Recording, rid: str) -> str:
    """A fresh download link in the row's format, via ``GET /v2/recordings/{id}``."""
    if not has_telnyx_id(row):
        await resolve_id(api, row, rid)
    try:
        info = await api.get_recording(request_ctx(rid, "refresh"), row.telnyx_recording_id)
    except exc.ProviderRejected as e:
        if e.reason == "provider_not_found":
            raise exc.RecordingFetchFailed(
                "Telnyx no longer has this recording.", reason="gone_at_provider"
            ) from None
        raise
    url = info.download_urls.get(row.format) or next(iter(info.download_urls.values()), "")
    if not url:
        raise exc.RecordingFetchFailed("Telnyx gave no download link.", reason="no_download_url")
    if info.duration_millis is not None:
        seconds = info.duration_millis / 1000
        await Recording.objects.filter(pk=row.pk).aupdate(duration_seconds=seconds)
    return url


async def resolve_id(api: RecordingsApi, row: Recording, rid: str) -> None:
    """Find and store Telnyx's id of a recording whose webhook named only its leg and start."""
    if not row.call_leg_id and not row.call_session_id:
        raise exc.RecordingFetchFailed(
            "Nothing names this recording at Telnyx.", reason="unresolvable"
        )
    found = await api.list_recordings(
        request_ctx(rid, "resolve"),
        call_leg_id=row.call_leg_id,
        call_session_id=row.call_session_id,
    )
    match = [r for r in found if row.started_at is None or r.started_at == row.started_at]
    if len(match) != 1:
        raise exc.RecordingFetchFailed(
            f"{len(match)} recordings at Telnyx match this leg and start.", reason="unresolvable"
        )
    try:
        await Recording.objects.filter(pk=row.pk).aupdate(telnyx_recording_id=match[0].id)
    except IntegrityError:  # another delivery named it by its id: that row is the one
        raise exc.RecordingFetchFailed(
            "Another row already holds this recording.", reason="duplicate"
        ) from None
    row.telnyx_recording_id = match[0].id


async def delete_remote(api: RecordingsApi, row: Recording, rid: str, *, now: datetime) -> str:
    """Delete Telnyx's copy and record it; "" when done (or already gone), else why not."""
    try:
        if not has_telnyx_id(row):
            await resolve_id(api, row, rid)
        await api.delete_recording(request_ctx(rid, "delete"), row.telnyx_recording_id)
    except exc.TelephonyError as e:
        logger.warning(
            "[Telephony Recordings] request_id=%s recording_id=%s Telnyx's copy not deleted: %s",
            rid, row.id, e.reason,
        )  # fmt: skip
        return e.reason
    await Recording.objects.filter(pk=row.pk).aupdate(remote_deleted_at=now)
    logger.info(
        "[Telephony Recordings] request_id=%s recording_id=%s Telnyx's copy deleted", rid, row.id
    )
    return ""
