"""What ``call.recording.saved`` and ``call.recording.error`` webhooks do, on the web side.

Telnyx's download links in ``call.recording.saved`` live 10 minutes, and the web process
never calls Telnyx nor downloads anything. So a saved recording becomes a ``pending``
:class:`~telephony.models.Recording` row at once (one per Telnyx recording, so a replay
changes nothing), and a fire-and-forget ``recording.fetch`` hands the row and the link to
the workers (:mod:`telephony.worker.recordings`), which bring the file into our storage.
The row exists before any worker is asked: if none is alive, the workers' hygiene pass
finds the pending row later and asks Telnyx for fresh links.

A recording of a call we do not know still gets its row (``call=None``) and the webhook is
acknowledged: it is recorded, never retried forever. Download links are secrets: they go
to the workers over the channel layer and nowhere else, never into a log line.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import IntegrityError

from telephony.events import push_call
from telephony.legs import Leg, decode_client_state
from telephony.models import Call, Recording, RecordingStatus
from telephony.protocol import CHANNEL, NO_REPLY, Request
from telephony.web.call_events import afind_call

if TYPE_CHECKING:
    from telephony.web.webhooks import TelnyxEvent

logger = logging.getLogger(__name__)

RECORDING_EVENTS = frozenset({"call.recording.saved", "call.recording.error"})
FETCH_NAMESPACE = uuid.UUID("0b7f8f55-6c1e-4f0a-9a43-2d51c1f3e6a2")  # request ids of fetches
URL_LIFETIME = timedelta(minutes=10)  # Telnyx: recording_urls "are valid for 10 minutes"
# A queued fetch older than this is stale: the links are dead, hygiene takes the row over.
FETCH_TIMEOUT = 600.0
FORMATS = ("mp3", "wav")


async def areceive_recording_event(event: TelnyxEvent, call: Call | None) -> None:
    """Apply a verified, first-seen recording webhook to the record."""
    if event.event_type == "call.recording.saved":
        row, url = await arecording_saved(event, call)
        if row.status == RecordingStatus.PENDING:
            await aforward_fetch(event, row, url)
    else:
        await arecording_error(event, call)


async def afind_recording_call(event: TelnyxEvent) -> tuple[Call | None, Leg | None]:
    """The call (and leg, when known) a recording event is about. With a call_control_id,
    as for call events; the spec's recording events carry none, so then our client_state
    (signed by Telnyx, set by us) names it alone, and failing that the call session."""
    if event.text("call_control_id"):
        found, leg = await afind_call(event)
        if found is not None:
            return found, leg
    decoded = decode_client_state(event.payload.get("client_state"))
    if decoded is not None and (call := await Call.objects.filter(pk=decoded[0]).afirst()):
        return call, decoded[1]
    session = event.text("call_session_id")
    if session and (call := await Call.objects.filter(call_session_id=session).afirst()):
        return call, None
    return None, None


def recording_key(event: TelnyxEvent) -> str:
    """The row's unique key: Telnyx's recording id when the webhook carries one; else the
    leg and start time, which name the recording as well (and are the same in a replay)."""
    if rid := event.text("recording_id"):
        return rid
    leg, started = event.text("call_leg_id"), event.moment("recording_started_at")
    if leg and started:
        return f"leg:{leg}:{started.isoformat()}"[:128]
    return f"event:{event.event_id}"


def pick_url(payload: dict[str, Any]) -> tuple[str, str]:
    """(format, download URL): the configured format if Telnyx sent it, else the other."""
    urls = payload.get("recording_urls")
    urls = urls if isinstance(urls, dict) else {}
    wanted = str(settings.TELEPHONY_RECORDING_FORMAT)
    for fmt in (wanted, *(f for f in FORMATS if f != wanted)):
        if isinstance(urls.get(fmt), str) and urls[fmt]:
            return fmt, urls[fmt]
    return wanted, ""


async def arecording_saved(event: TelnyxEvent, call: Call | None) -> tuple[Recording, str]:
    """Create the ``pending`` row (or find the one a replay or another delivery made)."""
    fmt, url = pick_url(event.payload)
    started, ended = event.moment("recording_started_at"), event.moment("recording_ended_at")
    channels = event.text("channels", 8)
    fields: dict[str, Any] = {
        "call": call,
        "call_control_id": event.text("call_control_id"),
        "call_session_id": event.text("call_session_id"),
        "call_leg_id": event.text("call_leg_id"),
        "channels": channels if channels in ("single", "dual") else "",
        "format": fmt,
        "started_at": started,
        "ended_at": ended,
        "duration_seconds": (ended - started).total_seconds() if started and ended else None,
    }
    key = recording_key(event)
    try:
        row, created = await Recording.objects.aget_or_create(
            telnyx_recording_id=key, defaults=fields
        )
    except IntegrityError:  # a concurrent delivery created it between our read and insert
        row, created = await Recording.objects.aget(telnyx_recording_id=key), False
    logger.info(
        "[Telephony Recordings] event_id=%s recording_id=%s telnyx_recording_id=%s call_id=%s "
        "%s (status %s, %s, link %s)",
        event.event_id, row.id, key, call.id if call else None,
        "created" if created else "already known", row.status, fmt, "given" if url else "missing",
    )  # fmt: skip
    if call is None:
        logger.warning(
            "[Telephony Recordings] event_id=%s recording_id=%s is of no known call "
            "(call_session_id=%s); kept without a call",
            event.event_id, row.id, event.text("call_session_id") or "-",
        )  # fmt: skip
    return row, url


async def arecording_error(event: TelnyxEvent, call: Call | None) -> None:
    """Telnyx could not record: say so on the call (shown in the admin), recording off."""
    reason = event.text("reason", 200) or "unknown"
    code = event.text("code", 40)
    text = f"{reason} ({code})" if code else reason
    if call is None:
        logger.warning(
            "[Telephony Recordings] event_id=%s call.recording.error for no known call "
            "(call_session_id=%s): %s",
            event.event_id, event.text("call_session_id") or "-", text,
        )  # fmt: skip
        return
    before = call.public()
    await Call.objects.filter(pk=call.id).aupdate(recording_error=text[:255], is_recording=False)
    logger.warning(
        "[Telephony Recordings] event_id=%s call_id=%s recording failed at Telnyx: %s",
        event.event_id, call.id, text,
    )  # fmt: skip
    after = await Call.objects.aget(pk=call.id)
    if after.public() != before:
        await push_call(after.user_id, after.public())


async def aforward_fetch(event: TelnyxEvent, row: Recording, url: str) -> None:
    """Ask the workers to fetch the file, without waiting and never raising.

    The request id derives from the event id, so a duplicate delivery through the layer
    runs once; the row's lease makes any second fetch of the same recording a no-op.
    """
    expires = (event.occurred_at + URL_LIFETIME).timestamp() if event.occurred_at else None
    message = Request.new(
        "recording.fetch",
        reply_to=NO_REPLY,
        timeout=FETCH_TIMEOUT,
        request_id=str(uuid.uuid5(FETCH_NAMESPACE, event.event_id)),
        payload={"recording_id": str(row.id), "url": url, "url_expires_at": expires},
    )
    try:
        layer = get_channel_layer()
        if layer is None:
            raise RuntimeError("no channel layer")
        await layer.send(CHANNEL, message.encode())
    except Exception as e:  # the row is pending: the workers' hygiene pass fetches it
        logger.warning(
            "[Telephony Recordings] event_id=%s recording_id=%s fetch not forwarded: %s",
            event.event_id, row.id, type(e).__name__,
        )  # fmt: skip
