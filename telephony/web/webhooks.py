"""Telnyx call webhooks: verify them, store each once, and apply them to the call record.

Telnyx signs ``f"{telnyx-timestamp}|{raw body}"`` with ed25519 and sends the base64
signature in ``telnyx-signature-ed25519``; ``TELNYX_PUBLIC_KEY`` is base64 of the raw
32-byte key the portal shows. Anything unsigned, badly signed or older (or newer) than
``TELEPHONY_WEBHOOK_TOLERANCE`` seconds is refused before a byte of it is stored, so a
captured webhook cannot be replayed later and nobody can forge call outcomes.

Telnyx delivers at least once and not necessarily in order. So every event is stored
once under its ``data.id`` (a replay is a no-op), and applied through the forward-only
services: a late ``call.answered`` never reopens a call that already hung up. What it
can do is correct the record: a ``call.hangup`` that arrived first made the call
``failed`` (never answered, as far as we knew); the late ``call.answered`` proves it
was answered, so the call becomes ``completed`` with its answer time and talk duration
(both terminal, so this is not moving backwards).

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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError
from django.utils import timezone
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from telephony.events import push_call
from telephony.exceptions import InvalidSignature, StaleTimestamp, WebhookRejected
from telephony.models import Call, CallStatus, WebhookEvent
from telephony.services import acall_advance, acall_fill

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"
CALL_EVENTS = frozenset({"call.initiated", "call.answered", "call.bridged", "call.hangup"})
# Failed calls a late call.answered may turn into completed ones: failed only because
# the hangup came first, or settled by the reconciler without seeing the answer.
CORRECTABLE_ERRORS = ("", "ended_unobserved")


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


def call_id_from_client_state(value: Any) -> uuid.UUID | None:
    """Our call id from ``client_state`` (base64 of its text); None for anything else."""
    if not isinstance(value, str) or not value or len(value) > 256:
        return None
    try:
        return uuid.UUID(base64.b64decode(value, validate=True).decode("ascii"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None


async def afind_call(event: TelnyxEvent) -> Call | None:
    """The call an event is about: by our id in client_state, else by call_control_id."""
    control_id = event.text("call_control_id")
    call_id = call_id_from_client_state(event.payload.get("client_state"))
    if call_id is not None:
        call = await Call.objects.filter(pk=call_id).afirst()
        if call is not None and (not call.call_control_id or call.call_control_id == control_id):
            return call
        if call is not None:
            logger.warning(
                "[Telephony Webhooks] event_id=%s client_state names call_id=%s of another "
                "call_control_id; matching by call_control_id",
                event.event_id, call_id,
            )  # fmt: skip
    if control_id:
        return await Call.objects.filter(call_control_id=control_id).afirst()
    return None


async def areceive_event(event: TelnyxEvent) -> bool:
    """Store a verified event once and apply it; False when it was a replay.

    If applying fails the stored event is removed again, so Telnyx's retry is applied
    rather than taken for a replay (applying twice is harmless: updates only move forward).
    """
    call = await afind_call(event)
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
    if event.event_type not in CALL_EVENTS:
        logger.info(
            "[Telephony Webhooks] event_id=%s type=%s call_id=%s stored, not applied",
            event.event_id, event.event_type, call_id,
        )  # fmt: skip
        return True
    if call is None:
        logger.warning(
            "[Telephony Webhooks] event_id=%s type=%s for no known call (call_control_id=%s)",
            event.event_id, event.event_type, event.text("call_control_id"),
        )  # fmt: skip
        return True
    try:
        await aapply_event(event, call)
    except Exception:
        await WebhookEvent.objects.filter(pk=stored.pk).adelete()
        raise
    return True


async def aapply_event(event: TelnyxEvent, call: Call) -> None:
    """Apply one call event to its call, then tell the owner's pages if anything changed."""
    before = call.public()
    if event.event_type == "call.initiated":
        await acall_fill(
            call_id=call.id,
            fields={
                "call_control_id": event.text("call_control_id"),
                "call_session_id": event.text("call_session_id"),
            },
        )
        await acall_advance(call_id=call.id, status=CallStatus.RINGING)
    elif event.event_type in ("call.answered", "call.bridged"):
        answered_at = event.occurred_at or timezone.now()
        if not await acall_advance(
            call_id=call.id, status=CallStatus.ANSWERED, fields={"answered_at": answered_at}
        ):
            await acall_fill(call_id=call.id, fields={"answered_at": answered_at})
    else:
        await _hangup(event, call)
    await _make_consistent(call.id)
    after = await Call.objects.aget(pk=call.id)
    logger.info(
        "[Telephony Webhooks] event_id=%s type=%s call_id=%s status %s -> %s",
        event.event_id, event.event_type, call.id, before["status"], after.status,
    )  # fmt: skip
    if after.public() != before:
        await push_call(after.user_id, after.public())


async def _hangup(event: TelnyxEvent, call: Call) -> None:
    row = await Call.objects.aget(pk=call.id)
    ended_at = event.moment("end_time") or event.occurred_at or timezone.now()
    answered = row.answered_at is not None or row.status == CallStatus.ANSWERED
    if row.answered_at is not None:
        duration = _seconds(row.answered_at, ended_at)
    elif answered and event.moment("start_time"):
        duration = _seconds(event.moment("start_time"), ended_at)
    else:
        duration = 0
    fields: dict[str, Any] = {
        "ended_at": ended_at,
        "duration_seconds": duration,
        "hangup_cause": event.text("hangup_cause", 64) or "unspecified",
    }
    status = CallStatus.COMPLETED if answered else CallStatus.FAILED
    if not await acall_advance(call_id=call.id, status=status, fields=fields):
        await acall_fill(call_id=call.id, fields=fields)
    logger.info(
        "[Telephony Webhooks] event_id=%s call_id=%s hangup cause=%s source=%s",
        event.event_id, call.id, fields["hangup_cause"], event.text("hangup_source") or "-",
    )  # fmt: skip


async def _make_consistent(call_id: uuid.UUID) -> None:
    """An answered call that ended is ``completed`` with its talk time, whatever the order.

    Conditional on what was read, so concurrent deliveries cannot undo each other.
    """
    row = await Call.objects.aget(pk=call_id)
    if row.answered_at is None or row.ended_at is None:
        return
    duration = _seconds(row.answered_at, row.ended_at)
    if row.status == CallStatus.FAILED and row.error_code in CORRECTABLE_ERRORS:
        fixed = await Call.objects.filter(
            pk=call_id, status=CallStatus.FAILED, error_code__in=CORRECTABLE_ERRORS
        ).aupdate(
            status=CallStatus.COMPLETED,
            error_code="",
            duration_seconds=duration,
            updated_at=timezone.now(),
        )
        if fixed:
            logger.info(
                "[Telephony Calls] call_id=%s failed -> completed (answer reported late)", call_id
            )
    elif row.status == CallStatus.COMPLETED and not row.duration_seconds and duration:
        await Call.objects.filter(pk=call_id, duration_seconds=row.duration_seconds).aupdate(
            duration_seconds=duration
        )


def _seconds(start: datetime | None, end: datetime) -> int:
    return max(0, int((end - start).total_seconds())) if start else 0
