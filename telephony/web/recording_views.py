"""``GET /api/webrtc/recordings/<uuid>/audio``: a stored recording, for the admin's player.

Only for logged-in users holding ``telephony.listen_recording`` (staff or not: 403 without
it), and only from our own verified copy in the ``recordings`` storage: never a redirect to
Telnyx, never a public or guessable URL (the row's random uuid, no file name). Streamed in
chunks with HTTP Range support, so an ``<audio>`` element can seek, and never cached.

Every listen is logged as a :class:`~telephony.models.RecordingListen`. A *listen* is a
request that starts playing from the beginning: one without ``Range`` or whose range starts
at byte 0 (what a player sends when it starts). Seeking asks for ``bytes=N-`` with N > 0 and
is part of the same listen, so moving around a recording logs nothing more.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.core.files.storage import Storage, storages
from django.http import HttpRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase

from telephony import exceptions as exc
from telephony.models import Recording, RecordingListen, RecordingStatus
from telephony.web.api import api_view, plain_error
from telephony.web.ranges import ByteRange, Unsatisfiable, parse_range

logger = logging.getLogger(__name__)

LISTEN_PERMISSION = "telephony.listen_recording"
CONTENT_TYPES = {"mp3": "audio/mpeg", "wav": "audio/wav"}
CHUNK_BYTES = 64 * 1024


async def _chunks(storage: Storage, name: str, part: ByteRange) -> AsyncIterator[bytes]:
    """The bytes of ``part``, read a chunk at a time off the event loop."""
    handle = await sync_to_async(storage.open, thread_sensitive=False)(name, "rb")
    try:
        await sync_to_async(handle.seek, thread_sensitive=False)(part.start)
        left = part.length
        while left > 0:
            data = await sync_to_async(handle.read, thread_sensitive=False)(min(CHUNK_BYTES, left))
            if not data:
                break
            left -= len(data)
            yield data
    finally:
        await sync_to_async(handle.close, thread_sensitive=False)()


def _private(response: HttpResponseBase) -> HttpResponseBase:
    response["Cache-Control"] = "private, no-store"
    response["Accept-Ranges"] = "bytes"
    return response


@api_view("GET")
async def recording_audio_view(request: HttpRequest, recording_id: uuid.UUID) -> HttpResponseBase:
    """The recording's audio, whole (200) or the range asked for (206); 416 past its end."""
    user = request.user
    if not await sync_to_async(user.has_perm)(LISTEN_PERMISSION):
        raise exc.Forbidden("You may not listen to call recordings.")
    recording = await (
        Recording.objects.filter(pk=recording_id, status=RecordingStatus.STORED)
        .exclude(storage_name="")
        .afirst()
    )
    if recording is None:
        raise exc.NotFound("No such recording.")
    storage = storages["recordings"]
    try:
        size = await sync_to_async(storage.size, thread_sensitive=False)(recording.storage_name)
    except OSError as e:
        logger.error(
            "[Telephony Recordings] recording_id=%s file missing from storage: %s",
            recording.id, type(e).__name__,
        )  # fmt: skip
        raise exc.NotFound("The recording's file is missing.") from e
    header = request.headers.get("Range")
    try:
        part = parse_range(header, size)
    except Unsatisfiable:
        refused = plain_error(416, "range_not_satisfiable", "The range is past the recording.")
        refused["Content-Range"] = f"bytes */{size}"
        return _private(refused)
    if part is None or part.start == 0:
        await RecordingListen.objects.acreate(
            recording=recording, user_id=user.pk, byte_range=(header or "")[:64]
        )
        logger.info(
            "[Telephony Recordings] recording_id=%s call_id=%s listened to by user_id=%s",
            recording.id, recording.call_id, user.pk,
        )  # fmt: skip
    whole = ByteRange(0, size - 1)
    response = StreamingHttpResponse(
        _chunks(storage, recording.storage_name, part or whole),
        status=206 if part is not None else 200,
        content_type=CONTENT_TYPES.get(recording.format, "application/octet-stream"),
    )
    response["Content-Length"] = str(part.length if part is not None else size)
    if part is not None:
        response["Content-Range"] = part.content_range(size)
    return _private(response)
