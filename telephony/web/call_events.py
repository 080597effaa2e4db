"""What a verified call webhook tells the record, worked out on the web side alone.

Each call has two legs (``telephony.legs``). The web process never calls Telnyx, but a
webhook already says a lot: which leg, when it rang, answered or ended, why and who
ended it. That goes into the row here, through the forward-only services, so the record
and the agent's page stay right even when no worker is alive; what needs Telnyx (dial
the customer, hang up the other leg) is the worker's, to which the event is forwarded.

Telnyx delivers at least once and not necessarily in order. A late ``call.answered``
never reopens a call; it can only correct its outcome: a customer-leg hangup that came
first made the call ``failed``/``busy``/``no_answer``/``canceled`` (never answered, as
far as we knew); the late answer proves the customer answered, so the call becomes
``completed`` with its talk time (terminal to terminal, not backwards).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from telephony.events import push_call
from telephony.legs import Leg, decode_client_state, hangup_outcome
from telephony.models import Call, CallStatus
from telephony.recording_policy import ON_DEMAND, recording_policy, records_on_dial
from telephony.services import acall_advance, acall_fill, acall_set_recording

if TYPE_CHECKING:
    from telephony.web.webhooks import TelnyxEvent

logger = logging.getLogger(__name__)

# Outcomes a late customer answer may turn into ``completed``: decided only because the
# hangup came first, or settled by the reconciler without seeing the answer.
CORRECTABLE = (CallStatus.FAILED, CallStatus.NO_ANSWER, CallStatus.BUSY, CallStatus.CANCELED)
CORRECTABLE_ERRORS = ("", "ended_unobserved", "customer_leg_failed")


def _leg_of(call: Call, control_id: str) -> Leg | None:
    if control_id and control_id == call.agent_call_control_id:
        return Leg.AGENT
    if control_id and control_id == call.call_control_id:
        return Leg.CUSTOMER
    return None


async def afind_call(event: TelnyxEvent) -> tuple[Call | None, Leg | None]:
    """The call and leg an event is about: by our client_state, else by call_control_id.

    client_state is trusted only when it agrees with what the row already knows of that
    leg's call_control_id; otherwise the id decides.
    """
    control_id = event.text("call_control_id")
    decoded = decode_client_state(event.payload.get("client_state"))
    if decoded is not None:
        call_id, leg = decoded
        call = await Call.objects.filter(pk=call_id).afirst()
        if call is not None:
            if leg is None:  # the single-leg form of older calls: the customer leg
                leg = _leg_of(call, control_id) or Leg.CUSTOMER
            known = call.agent_call_control_id if leg is Leg.AGENT else call.call_control_id
            if not known or known == control_id:
                return call, leg
            logger.warning(
                "[Telephony Webhooks] event_id=%s client_state names call_id=%s %s leg of "
                "another call_control_id; matching by call_control_id",
                event.event_id, call_id, leg.value,
            )  # fmt: skip
    if control_id:
        call = await Call.objects.filter(call_control_id=control_id).afirst()
        call = call or await Call.objects.filter(agent_call_control_id=control_id).afirst()
        if call is not None:
            return call, _leg_of(call, control_id)
    return None, None


async def aapply_event(event: TelnyxEvent, call: Call, leg: Leg) -> None:
    """Apply one call event to its call, then tell the owner's pages if anything changed."""
    before = call.public()
    at = event.occurred_at or timezone.now()
    if event.event_type == "call.initiated":
        await _initiated(event, call, leg, at)
    elif event.event_type == "call.answered" and leg is Leg.AGENT:
        await acall_fill(call_id=call.id, fields={"agent_answered_at": at})
    elif event.event_type in ("call.answered", "call.bridged") and leg is Leg.CUSTOMER:
        if not await acall_advance(
            call_id=call.id, status=CallStatus.ANSWERED, fields={"answered_at": at}
        ):
            await acall_fill(call_id=call.id, fields={"answered_at": at})
        if records_on_dial():  # the Dial said record-from-answer: it records from now
            await acall_set_recording(call_id=call.id, recording=True)
    elif event.event_type == "call.hangup":
        await _hangup(event, call, leg)
    await _make_consistent(call.id)
    after = await Call.objects.aget(pk=call.id)
    logger.info(
        "[Telephony Webhooks] event_id=%s type=%s call_id=%s leg=%s status %s -> %s",
        event.event_id, event.event_type, call.id, leg.value, before["status"], after.status,
    )  # fmt: skip
    if after.public() != before:
        await push_call(after.user_id, after.public())


async def arecording_saved(call: Call, leg: Leg | None) -> None:
    """Telnyx saved a recording of this call: it is not recording it any more.

    Except for a live call under ``on_demand``: there the agent's own start and stop set
    the flag, and a saved recording may be the one before a restart (its webhook can
    arrive after the new start); clearing the flag then would hide a running recording.
    """
    if leg is Leg.AGENT:
        return
    row = await Call.objects.aget(pk=call.id)
    if recording_policy() == ON_DEMAND and row.status == CallStatus.ANSWERED:
        return
    if await acall_set_recording(call_id=call.id, recording=False):
        await push_call(row.user_id, (await Call.objects.aget(pk=call.id)).public())


async def _initiated(event: TelnyxEvent, call: Call, leg: Leg, at: datetime) -> None:
    ids: dict[str, Any] = {"call_session_id": event.text("call_session_id")}
    if leg is Leg.AGENT:
        ids |= {"agent_call_control_id": event.text("call_control_id"), "dialed_at": at}
        await acall_fill(call_id=call.id, fields=ids)
        await acall_advance(call_id=call.id, status=CallStatus.DIALING)
    else:
        ids |= {"call_control_id": event.text("call_control_id"), "ringing_at": at}
        await acall_fill(call_id=call.id, fields=ids)
        await acall_advance(call_id=call.id, status=CallStatus.RINGING)


async def _hangup(event: TelnyxEvent, call: Call, leg: Leg) -> None:
    row = await Call.objects.aget(pk=call.id)
    ended_at = event.moment("end_time") or event.occurred_at or timezone.now()
    cause = event.text("hangup_cause", 64) or "unspecified"
    source = event.text("hangup_source", 16)
    answered = row.answered_at is not None or row.status == CallStatus.ANSWERED
    outcome = hangup_outcome(
        leg,
        cause=cause,
        source=source,
        answered=answered,
        customer_dialed=bool(row.ringing_at or row.call_control_id),
    )
    ended_field = "agent_ended_at" if leg is Leg.AGENT else "customer_ended_at"
    await acall_fill(call_id=call.id, fields={ended_field: ended_at})
    if outcome.status is None:  # our own hangup of this leg: the other leg's news decides
        return
    fields: dict[str, Any] = {
        "ended_at": ended_at,
        "hangup_cause": cause,
        "duration_seconds": _seconds(row.answered_at, ended_at) if row.answered_at else 0,
    }
    if outcome.side:
        fields["hangup_side"] = outcome.side
    if outcome.error_code:
        fields["error_code"] = outcome.error_code
    if not await acall_advance(call_id=call.id, status=outcome.status, fields=fields):
        await acall_fill(call_id=call.id, fields=fields)
    logger.info(
        "[Telephony Webhooks] event_id=%s call_id=%s %s leg hangup cause=%s source=%s",
        event.event_id, call.id, leg.value, cause, source or "-",
    )  # fmt: skip


async def _make_consistent(call_id: uuid.UUID) -> None:
    """An answered call that ended is ``completed`` with its talk time, whatever the order.

    Conditional on what was read, so concurrent deliveries cannot undo each other.
    """
    row = await Call.objects.aget(pk=call_id)
    if row.answered_at is None or row.ended_at is None:
        return
    duration = _seconds(row.answered_at, row.ended_at)
    if row.status in CORRECTABLE and row.error_code in CORRECTABLE_ERRORS:
        fixed = await Call.objects.filter(
            pk=call_id, status=row.status, error_code__in=CORRECTABLE_ERRORS
        ).aupdate(
            status=CallStatus.COMPLETED,
            error_code="",
            duration_seconds=duration,
            updated_at=timezone.now(),
        )
        if fixed:
            logger.info(
                "[Telephony Calls] call_id=%s %s -> completed (answer reported late)",
                call_id, row.status,
            )  # fmt: skip
    elif row.status == CallStatus.COMPLETED and not row.duration_seconds and duration:
        await Call.objects.filter(pk=call_id, duration_seconds=row.duration_seconds).aupdate(
            duration_seconds=duration
        )


def _seconds(start: datetime | None, end: datetime) -> int:
    return max(0, int((end - start).total_seconds())) if start else 0
