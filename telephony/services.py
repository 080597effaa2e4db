"""Writes to the record (HackSoft style: services write, selectors read).

Every status change is one conditional UPDATE whose WHERE clause only admits states the
call may move forward from, so concurrent writers (worker reply, webhooks, reconciler,
a timed-out caller) can race freely and a call still never moves backwards.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.db.models import Case, CharField, F, Field, Q, TextField, Value, When
from django.utils import timezone

from telephony.models import TERMINAL, Call, CallStatus, ServiceEvent, can_move

logger = logging.getLogger(__name__)

_TEXT_FIELDS = (CharField, TextField)


def _movable_from(new: str) -> list[str]:
    return [s for s in CallStatus.values if can_move(s, new)]


async def acall_advance(
    *, call_id: uuid.UUID | str, status: str, fields: dict[str, Any] | None = None
) -> bool:
    """Move a call to ``status`` (setting ``fields``) if that is forward; True if it moved.

    A call that ends stops being recorded (Telnyx stops a recording with its call).
    """
    values = {**(fields or {}), "status": status, "updated_at": timezone.now()}
    if status in TERMINAL:
        values["is_recording"] = False
    moved = await Call.objects.filter(id=call_id, status__in=_movable_from(status)).aupdate(
        **values
    )
    if moved:
        logger.info("[Telephony Calls] call_id=%s -> %s", call_id, status)
    return bool(moved)


async def acall_fill(*, call_id: uuid.UUID | str, fields: dict[str, Any]) -> None:
    """Set facts that were still empty (ids, timestamps, causes), whatever the status.

    One UPDATE: each column takes the new value only where it is still empty.
    """
    values = {
        name: Case(
            When(_empty(name), then=Value(value, output_field=_field(name))),
            default=F(name),
        )
        for name, value in fields.items()
        if value not in (None, "")
    }
    if values:
        await Call.objects.filter(id=call_id).aupdate(**values)


def _empty(name: str) -> Q:
    empty = Q(**{f"{name}__isnull": True})
    return empty | Q(**{name: ""}) if _is_text(name) else empty


def _field(name: str) -> Field[Any, Any]:
    """The model field itself, so ``Case`` does not mix e.g. Integer and PositiveInteger."""
    field = Call._meta.get_field(name)
    assert isinstance(field, Field)
    return field


def _is_text(name: str) -> bool:
    return isinstance(_field(name), _TEXT_FIELDS)


async def acall_claim_agent_dial(*, call_id: uuid.UUID | str, now: datetime) -> bool:
    """Take the right to dial the agent leg: True for exactly one caller, ever.

    One conditional UPDATE stamps ``dialed_at`` while the call is still to be dialled and
    no agent leg is known. Only the web side asks for the agent Dial, once per row; a
    second run of it is the same request delivered again (after a Redis failover lost its
    claim), and must not ring the agent a second time.
    """
    claimed = await Call.objects.filter(
        id=call_id,
        status__in=[CallStatus.QUEUED, CallStatus.UNKNOWN],
        dialed_at__isnull=True,
        agent_call_control_id="",
    ).aupdate(dialed_at=now, updated_at=now)
    return bool(claimed)


async def acall_claim_customer_dial(*, call_id: uuid.UUID | str, now: datetime) -> bool:
    """Take the right to dial the customer leg: True for exactly one caller, ever.

    One conditional UPDATE moves the call to ``ringing`` only while the agent leg is up
    and nobody dialled the customer yet, and never once the call ended or a hangup was
    asked for. Two deliveries of the agent's ``call.answered`` (or a worker and the
    reconciler) can race; only one dials.
    """
    claimed = await Call.objects.filter(
        id=call_id,
        status__in=[CallStatus.QUEUED, CallStatus.UNKNOWN, CallStatus.DIALING],
        ringing_at__isnull=True,
        call_control_id="",
        hangup_requested=False,
    ).aupdate(status=CallStatus.RINGING, ringing_at=now, updated_at=now)
    if claimed:
        logger.info("[Telephony Calls] call_id=%s -> ringing (dialling the customer)", call_id)
    return bool(claimed)


async def acall_set_recording(*, call_id: uuid.UUID | str, recording: bool) -> bool:
    """Set the call's recording flag; True if it changed.

    On only while the customer is on the line (``answered``, no hangup asked for): a late
    confirmation never marks an ended call as recording. Off always.
    """
    calls = Call.objects.filter(id=call_id, is_recording=not recording)
    if recording:
        calls = calls.filter(
            status=CallStatus.ANSWERED, hangup_requested=False, customer_ended_at__isnull=True
        )
    changed = await calls.aupdate(is_recording=recording, updated_at=timezone.now())
    if changed:
        logger.info(
            "[Telephony Calls] call_id=%s recording %s", call_id, "on" if recording else "off"
        )
    return bool(changed)


async def acall_create_queued(
    *, user_id: int, to_number: str, from_number: str, request_id: str, deadline: datetime
) -> Call:
    """Write the call as ``queued``: the record exists before any request leaves."""
    return await Call.objects.acreate(
        user_id=user_id,
        to_number=to_number,
        from_number=from_number,
        request_id=request_id,
        deadline=deadline,
        status=CallStatus.QUEUED,
    )


def service_event(
    *, kind: str, message: str = "", state: str = "", user_id: int | None = None, **data: Any
) -> None:
    """Sync twin of :func:`aservice_event`."""
    try:
        ServiceEvent.objects.create(
            kind=kind,
            message=message,
            state=state,
            user_id=user_id,
            supervisor_id=str(data.pop("supervisor_id", "")),
            worker_id=str(data.pop("worker_id", "")),
            data=data,
        )
    except Exception:
        logger.exception("[Telephony Events] could not record event kind=%s", kind)


async def aservice_event(
    *, kind: str, message: str = "", state: str = "", user_id: int | None = None, **data: Any
) -> None:
    """Async twin of :func:`service_event`."""
    await sync_to_async(service_event)(
        kind=kind, message=message, state=state, user_id=user_id, **data
    )
