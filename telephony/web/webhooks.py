"""Telnyx call webhooks: verify them, store each once, and apply them to the call record.

Telnyx signs ``f"{telnyx-timestamp}|{raw body}"`` with ed25519 and sends the base64
signature in ``telnyx-signature-ed25519``; ``TELNYX_PUBLIC_KEY`` is base64 of the raw
32-byte key the portal shows. Anything unsigned, badly signed or older (or newer) than
``TELEPHONY_WEBHOOK_TOLERANCE`` seconds is refused before a byte of it is stored, so a
captured webhook cannot be replayed later and nobody can forge call outcomes.

Telnyx delivers at least once and not necessarily in order. So every event is stored
once under its ``data.id`` (a replay is a no-op), applied to the row through the
forward-only services (:mod:`telephony.web.call_events`), and forwarded once to the
workers as a fire-and-forget ``call.event``: they do what needs Telnyx (dial the
customer leg when the agent answers, hang up the other leg when one ends). Recording
events go to :mod:`telephony.web.recording_events` (a row, then a ``recording.fetch``).

Web side only: this module never imports the Telnyx SDK.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import IntegrityError
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from telephony.exceptions import InvalidSignature, StaleTimestamp, WebhookRejected
from telephony.legs import Leg
from telephony.models import WebhookEvent
from telephony.protocol import CHANNEL, NO_REPLY, Request
from telephony.web.call_events import aapply_event, afind_call, arecording_saved
from telephony.web.recording_events import (
    RECORDING_EVENTS,
    afind_recording_call,
    areceive_recording_event,
)

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"
CALL_EVENTS = frozenset({"call.initiated", "call.answered", "call.bridged", "call.hangup"})
EVENT_NAMESPACE = uuid.UUID("6f1c1a57-2b8e-4c53-9d0e-7a2f8d1e4b90")  # request ids of call.event


def max_body_bytes() -> int:
    return int(settings.TELEPHONY_WEBHOOK_MAX_BYTES)


@functools.lru_cache(maxsize=8)
def _verify_key(public_key: str) -> VerifyKey:
    raw = base64.b64decode(public_key.strip(), validate=True)
    if len(raw) != 32:
        raise ValueError("an ed25519 public key is 32 bytes")
    return VerifyKey(raw)


def verify_signature(
    body: bytes,
    *,
    signature: str | None,
    timestamp: str | None,
    public_key: str,
    now: float | None = None,
    tolerance: float | None = None,
) -> None:
    """Raise :class:`InvalidSignature` or :class:`StaleTimestamp` unless Telnyx signed this."""
    if not public_key:
        logger.error("[Telephony Webhooks] TELNYX_PUBLIC_KEY is not set: refusing every webhook")
        raise InvalidSignature("Webhook signatures cannot be checked here.", reason="no_public_key")
    try:
        key = _verify_key(public_key)
    except (ValueError, binascii.Error):
        logger.error("[Telephony Webhooks] TELNYX_PUBLIC_KEY is not a base64 ed25519 key")
        raise InvalidSignature(
            "Webhook signatures cannot be checked here.", reason="bad_public_key"
        ) from None
    if not signature or not timestamp:
        raise InvalidSignature(
            f"The {SIGNATURE_HEADER} and {TIMESTAMP_HEADER} headers are required.",
            reason="missing_headers",
        )
    stamp = timestamp.strip()
    if not stamp.isdigit() or len(stamp) > 12:
        raise InvalidSignature(f"{TIMESTAMP_HEADER} must be unix seconds.", reason="bad_timestamp")
    try:
        sig = base64.b64decode(signature.strip(), validate=True)
        key.verify(stamp.encode() + b"|" + body, sig)
    except (binascii.Error, ValueError, BadSignatureError):
        raise InvalidSignature(reason="bad_signature") from None
    window = float(tolerance if tolerance is not None else settings.TELEPHONY_WEBHOOK_TOLERANCE)
    if abs((time.time() if now is None else now) - int(stamp)) > window:
        raise StaleTimestamp(reason="stale_timestamp")


@dataclass(frozen=True)
class TelnyxEvent:
    """The parts of a webhook body we use; ``body`` is all of it, as stored."""

    event_id: str
    event_type: str
    occurred_at: datetime | None
    payload: dict[str, Any]
    body: dict[str, Any]

    def text(self, name: str, limit: int = 128) -> str:
        value = self.payload.get(name)
        return value[:limit] if isinstance(value, str) else ""

    def moment(self, name: str) -> datetime | None:
        return parse_time(self.payload.get(name))


def parse_time(value: Any) -> datetime | None:
    """An aware datetime from Telnyx's ISO-8601 strings; None for anything else."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_event(body: bytes) -> TelnyxEvent:
    """The event in a (verified) body; :class:`WebhookRejected` if it is not one."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRejected("The webhook body is not valid JSON.", reason="bad_json") from None
    data = doc.get("data") if isinstance(doc, dict) else None
    event_id = data.get("id") if isinstance(data, dict) else None
    event_type = data.get("event_type") if isinstance(data, dict) else None
    if (
        not isinstance(data, dict)
        or not isinstance(event_id, str)
        or not isinstance(event_type, str)
        or not 0 < len(event_id) <= 64
        or not 0 < len(event_type) <= 64
    ):
        raise WebhookRejected(
            "The webhook needs data.id and data.event_type (1-64 characters each).",
            reason="no_event",
        )
    payload = data.get("payload")
    return TelnyxEvent(
        event_id=event_id,
        event_type=event_type,
        occurred_at=parse_time(data.get("occurred_at")),
        payload=payload if isinstance(payload, dict) else {},
        body=doc,
    )


async def areceive_event(event: TelnyxEvent) -> bool:
    """Store a verified event once, apply it, forward it to the workers; False on a replay.

    If applying fails the stored event is removed again, so Telnyx's retry is applied
    rather than taken for a replay (applying twice is harmless: updates only move forward).
    A replay is neither applied nor forwarded: it changes nothing.
    """
    if event.event_type in RECORDING_EVENTS:
        call, leg = await afind_recording_call(event)
    else:
        call, leg = await afind_call(event)
    try:
        stored = await WebhookEvent.objects.acreate(
            event_id=event.event_id,
            event_type=event.event_type,
            occurred_at=event.occurred_at,
            call=call,
            payload=event.body,
        )
    except IntegrityError:
        logger.info("[Telephony Webhooks] event_id=%s replayed; ignored", event.event_id)
        return False
    call_id = call.id if call is not None else None
    if event.event_type in RECORDING_EVENTS:
        if event.event_type == "call.recording.saved" and call is not None:
            await arecording_saved(call, leg)  # the call's recording flag
        await _applied(stored, areceive_recording_event(event, call))
        return True
    if event.event_type not in CALL_EVENTS:
        logger.info(
            "[Telephony Webhooks] event_id=%s type=%s call_id=%s stored, not applied",
            event.event_id, event.event_type, call_id,
        )  # fmt: skip
        return True
    if call is None or leg is None:
        logger.warning(
            "[Telephony Webhooks] event_id=%s type=%s for no known call (call_control_id=%s)",
            event.event_id, event.event_type, event.text("call_control_id"),
        )  # fmt: skip
        return True
    await _applied(stored, aapply_event(event, call, leg))
    await aforward_event(event, call.id, leg)
    return True


async def _applied(stored: WebhookEvent, applying: Coroutine[Any, Any, None]) -> None:
    """Await ``applying``; if it fails, forget the event so Telnyx's retry is applied."""
    try:
        await applying
    except Exception:
        await WebhookEvent.objects.filter(pk=stored.pk).adelete()
        raise


async def aforward_event(event: TelnyxEvent, call_id: uuid.UUID, leg: Leg) -> None:
    """Hand the event to the workers (``call.event``), without waiting and never raising.

    Its request id derives from the event id, so a duplicate delivery through the layer
    is executed once. Its deadline is the request timeout: a worker back later than that
    leaves the rest to the reconciler, which works from the record.
    """
    message = Request.new(
        "call.event",
        reply_to=NO_REPLY,
        timeout=float(settings.TELEPHONY_REQUEST_TIMEOUT),
        request_id=str(uuid.uuid5(EVENT_NAMESPACE, event.event_id)),
        payload={
            "call_id": str(call_id),
            "leg": leg.value,
            "event_id": event.event_id,
            "event_type": event.event_type,
            "occurred_at": event.occurred_at.isoformat() if event.occurred_at else None,
            "call_control_id": event.text("call_control_id"),
            "hangup_cause": event.text("hangup_cause", 64),
            "hangup_source": event.text("hangup_source", 16),
        },
    )
    try:
        layer = get_channel_layer()
        if layer is None:
            raise RuntimeError("no channel layer")
        await layer.send(CHANNEL, message.encode())
    except Exception as e:  # the record is written: the reconciler does the rest
        logger.warning(
            "[Telephony Webhooks] event_id=%s call_id=%s not forwarded to the workers: %s",
            event.event_id, call_id, type(e).__name__,
        )  # fmt: skip
