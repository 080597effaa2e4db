"""The worker's side of a call: two legs, placed and ended by the workers.

``call.dial`` rings the agent's browser (the agent leg, a SIP dial to their WebRTC
login). When the agent answers, Telnyx's ``call.answered`` reaches the web side, which
forwards it here as ``call.event``; the worker then dials the customer linked to the
agent leg and bridged on answer. A hangup of either leg makes the worker hang up the
other. Media never passes through a worker, so a dead worker costs no conversation:
what it did not do, the next one (or the reconciler) does from the record.

Every step is idempotent: the customer dial is claimed in one conditional UPDATE, a
hangup of an already-ended leg counts as done, and the row only moves forward.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from telephony import exceptions as exc
from telephony.events import push_call
from telephony.legs import Leg, agent_sip_uri, encode_client_state
from telephony.models import Call, CallStatus, Credential, HangupSide
from telephony.recording_policy import dial_record_options
from telephony.services import (
    acall_advance,
    acall_claim_agent_dial,
    acall_claim_customer_dial,
    acall_fill,
)
from telephony.worker.adapter import TelnyxAdapter
from telephony.worker.provider import RequestContext
from telephony.worker.recording import RecordingOperations

logger = logging.getLogger(__name__)


def agent_answer_timeout() -> float:
    """``TELEPHONY_AGENT_ANSWER_TIMEOUT``, read when used (tests change it)."""
    return float(settings.TELEPHONY_AGENT_ANSWER_TIMEOUT)


def _leg_id(call: Call, leg: Leg) -> str:
    return call.agent_call_control_id if leg is Leg.AGENT else call.call_control_id


def _leg_ended(call: Call, leg: Leg) -> datetime | None:
    return call.agent_ended_at if leg is Leg.AGENT else call.customer_ended_at


def _ended_field(leg: Leg) -> str:
    return "agent_ended_at" if leg is Leg.AGENT else "customer_ended_at"


class CallOperations(RecordingOperations):
    """Call handlers; mixed into :class:`telephony.worker.operations.Operations`."""

    adapter: TelnyxAdapter
    worker_id: str

    async def call_dial(self, ctx: RequestContext, payload: dict[str, Any]) -> dict[str, Any]:
        """Ring the agent's browser (the agent leg); the customer is dialled on its answer."""
        call = await self._call(payload)
        if call.status not in (CallStatus.QUEUED, CallStatus.UNKNOWN):
            logger.warning(
                "[Telephony Worker] request_id=%s call_id=%s already %s",
                ctx.request_id, call.id, call.status,
            )  # fmt: skip
            return call.public()
        cred = await (
            Credential.objects.filter(
                user_id=call.user_id, deleted_at__isnull=True, expires_at__gt=timezone.now()
            )
            .order_by("-expires_at")
            .afirst()
        )
        if cred is None:
            fields = {"error_code": "no_credential", "ended_at": timezone.now()}
            await acall_advance(call_id=call.id, status=CallStatus.FAILED, fields=fields)
            await self._push(call.id)
            raise exc.NoCredential()
        if not await acall_claim_agent_dial(call_id=call.id, now=timezone.now()):
            logger.warning(
                "[Telephony Worker] request_id=%s call_id=%s agent leg already dialled once",
                ctx.request_id, call.id,
            )  # fmt: skip
            return (await Call.objects.aget(pk=call.id)).public()
        try:
            result = await self.adapter.dial(
                ctx,
                connection_id=settings.TELNYX_CALL_CONNECTION_ID,
                to=agent_sip_uri(cred.sip_username),
                from_=call.from_number or settings.TELNYX_FROM_NUMBER,
                client_state=encode_client_state(call.id, Leg.AGENT),
                webhook_url=settings.TELNYX_WEBHOOK_URL,
                timeout_secs=max(5, round(agent_answer_timeout())),
            )
        except exc.ProviderTimeout as e:
            # The Dial may have been placed: unknown, not failed. Its webhooks carry our
            # client_state; the reconciler settles it either way.
            await acall_advance(
                call_id=call.id, status=CallStatus.UNKNOWN, fields={"error_code": e.reason}
            )
            await self._push(call.id)
            raise
        except exc.TelephonyError as e:
            fields = {"error_code": e.reason, "ended_at": timezone.now()}
            await acall_advance(call_id=call.id, status=CallStatus.FAILED, fields=fields)
            await self._push(call.id)
            raise
        ids = {
            "agent_call_control_id": result.call_control_id,
            "call_session_id": result.call_session_id,
            "dialed_at": timezone.now(),
        }
        await acall_fill(call_id=call.id, fields=ids)
        await acall_advance(call_id=call.id, status=CallStatus.DIALING)
        call = await Call.objects.aget(pk=call.id)
        if call.is_terminal or call.hangup_requested:
            # Settled while the dial was in flight: leave no leg ringing for nobody.
            await self.hangup_leg(ctx, call, Leg.AGENT)
        logger.info(
            "[Telephony Worker] request_id=%s call_id=%s agent leg dialled", ctx.request_id, call.id
        )
        await self._push(call.id)
        return call.public()

    async def call_event(self, ctx: RequestContext, payload: dict[str, Any]) -> dict[str, Any]:
        """A verified webhook forwarded by the web side (which already updated the row)."""
        call = await self._call(payload)
        try:
            leg = Leg(str(payload.get("leg")))
        except ValueError as e:
            raise exc.InvalidRequest("call.event needs leg agent or customer.") from e
        event_type = str(payload.get("event_type") or "")
        if event_type == "call.answered" and leg is Leg.AGENT:
            await self.agent_answered(ctx, call)
        elif event_type == "call.answered":
            await self.customer_answered(ctx, call)
        elif event_type == "call.hangup":
            await self.hangup_leg(ctx, call, leg.other)
        return {"call_id": str(call.id), "event_type": event_type, "leg": leg.value}

    async def agent_answered(self, ctx: RequestContext, call: Call) -> None:
        """The agent picked up: dial the customer, unless the call is over or too late."""
        if call.is_terminal or call.hangup_requested:
            await self.hangup_leg(ctx, call, Leg.AGENT)
            return
        started = call.dialed_at or call.created_at
        answered = call.agent_answered_at or timezone.now()
        if (answered - started).total_seconds() > agent_answer_timeout():
            await self.agent_timed_out(ctx, call)
            return
        await self.dial_customer(ctx, call)

    async def dial_customer(self, ctx: RequestContext, call: Call) -> None:
        """Dial the customer leg linked to the agent leg, bridged on answer; at most once."""
        if not await acall_claim_customer_dial(call_id=call.id, now=timezone.now()):
            return
        await self._push(call.id)
        try:
            result = await self.adapter.dial(
                ctx,
                connection_id=settings.TELNYX_CALL_CONNECTION_ID,
                to=call.to_number,
                from_=call.from_number or settings.TELNYX_FROM_NUMBER,
                client_state=encode_client_state(call.id, Leg.CUSTOMER),
                webhook_url=settings.TELNYX_WEBHOOK_URL,
                link_to=call.agent_call_control_id,
                bridge_on_answer=True,
                record=dial_record_options(),
            )
        except exc.ProviderTimeout as e:
            # Maybe placed: its webhooks (client_state) or the reconciler will tell.
            await acall_fill(call_id=call.id, fields={"error_code": e.reason})
            raise
        except exc.TelephonyError as e:
            now = timezone.now()
            fields = {
                "error_code": e.reason,
                "ended_at": now,
                "customer_ended_at": now,
                "hangup_side": HangupSide.SYSTEM,
            }
            await acall_advance(call_id=call.id, status=CallStatus.FAILED, fields=fields)
            await self.hangup_leg(ctx, await Call.objects.aget(pk=call.id), Leg.AGENT)
            await self._push(call.id)
            raise
        ids = {"call_control_id": result.call_control_id, "call_session_id": result.call_session_id}
        await acall_fill(call_id=call.id, fields=ids)
        call = await Call.objects.aget(pk=call.id)
        if call.is_terminal or call.hangup_requested:
            await self.hangup_leg(ctx, call, Leg.CUSTOMER)  # the agent gave up meanwhile
        logger.info(
            "[Telephony Worker] request_id=%s call_id=%s customer leg dialled",
            ctx.request_id, call.id,
        )  # fmt: skip

    async def agent_timed_out(self, ctx: RequestContext, call: Call) -> None:
        """The agent did not answer in time: end the agent leg; the customer is never dialled."""
        now = timezone.now()
        fields = {
            "error_code": "agent_no_answer",
            "hangup_cause": "timeout",
            "hangup_side": HangupSide.SYSTEM,
            "ended_at": now,
        }
        moved = await acall_advance(call_id=call.id, status=CallStatus.NO_ANSWER, fields=fields)
        await self.hangup_leg(ctx, await Call.objects.aget(pk=call.id), Leg.AGENT)
        if moved:
            logger.info("[Telephony Worker] call_id=%s agent did not answer in time", call.id)
            await self._push(call.id)

    async def hangup_leg(self, ctx: RequestContext, call: Call, leg: Leg) -> bool:
        """Hang up one leg if it may be up; True once it is known to be down.

        Idempotent: an already-ended leg counts as hung up. Failures are logged and left
        to the reconciler, which tries again (the row says which leg is still open).
        """
        control_id = _leg_id(call, leg)
        if not control_id:
            return False
        if _leg_ended(call, leg) is not None:
            return True
        try:
            await self.adapter.hangup(ctx, control_id, command_id=f"{ctx.request_id}:{leg.value}")
        except exc.TelephonyError as e:
            logger.warning(
                "[Telephony Worker] request_id=%s call_id=%s %s leg not hung up: %s",
                ctx.request_id, call.id, leg.value, e.reason,
            )  # fmt: skip
            return False
        await acall_fill(call_id=call.id, fields={_ended_field(leg): timezone.now()})
        return True

    async def call_hangup(self, ctx: RequestContext, payload: dict[str, Any]) -> dict[str, Any]:
        """The agent hangs up (or cancels): both legs go down, the row settles."""
        call = await self._call(payload)
        if call.is_terminal:
            return call.public()
        await Call.objects.filter(pk=call.id).aupdate(hangup_requested=True)
        call = await Call.objects.aget(pk=call.id)
        for leg in (Leg.CUSTOMER, Leg.AGENT):
            control_id = _leg_id(call, leg)
            if control_id and _leg_ended(call, leg) is None:
                # Errors reach the agent (502): the row is not settled while a leg may be up.
                await self.adapter.hangup(
                    ctx, control_id, command_id=f"{ctx.request_id}:{leg.value}"
                )
                await acall_fill(call_id=call.id, fields={_ended_field(leg): timezone.now()})
        now = timezone.now()
        talk = (now - call.answered_at).total_seconds() if call.answered_at is not None else 0
        fields: dict[str, Any] = {
            "ended_at": now,
            "hangup_cause": call.hangup_cause or "normal_clearing",
            "hangup_side": HangupSide.AGENT,
            "duration_seconds": max(0, int(talk)),
        }
        status = CallStatus.COMPLETED if call.answered_at else CallStatus.CANCELED
        if not await acall_advance(call_id=call.id, status=status, fields=fields):
            await acall_fill(call_id=call.id, fields=fields)
        await self._push(call.id)
        return (await Call.objects.aget(pk=call.id)).public()

    async def call_status(self, ctx: RequestContext, payload: dict[str, Any]) -> dict[str, Any]:
        """The call as recorded, settled first if Telnyx says its legs are down."""
        call = await self._call(payload)
        if not call.is_terminal and (call.call_control_id or call.agent_call_control_id):
            await self.settle(ctx, call)
            call = await Call.objects.aget(pk=call.id)
        return call.public()

    async def settle(self, ctx: RequestContext, call: Call) -> None:
        """Ask Telnyx about each open leg; hang up a leg left alone; end a call with none up."""
        alive: dict[Leg, bool] = {}
        for leg in (Leg.AGENT, Leg.CUSTOMER):
            control_id = _leg_id(call, leg)
            if not control_id or _leg_ended(call, leg) is not None:
                continue
            try:
                alive[leg] = (await self.adapter.call_status(ctx, control_id)).is_alive
            except exc.ProviderRejected as e:
                if e.reason != "provider_not_found":
                    raise
                alive[leg] = False
            if not alive[leg]:
                await acall_fill(call_id=call.id, fields={_ended_field(leg): timezone.now()})
        call = await Call.objects.aget(pk=call.id)
        ended = [leg for leg in Leg if _leg_id(call, leg) and _leg_ended(call, leg) is not None]
        for leg in ended:
            if alive.get(leg.other):
                await self.hangup_leg(ctx, call, leg.other)  # one leg down: end the other
        if any(alive.values()) and not ended:
            return
        status = CallStatus.COMPLETED if call.answered_at else CallStatus.FAILED
        fields: dict[str, Any] = {"ended_at": timezone.now(), "hangup_side": HangupSide.SYSTEM}
        if status == CallStatus.FAILED:
            fields["error_code"] = call.error_code or "ended_unobserved"
        if await acall_advance(call_id=call.id, status=status, fields=fields):
            await self._push(call.id)

    # -- helpers -----------------------------------------------------------------------

    async def _call(self, payload: dict[str, Any]) -> Call:
        try:
            return await Call.objects.aget(pk=uuid.UUID(str(payload.get("call_id"))))
        except (Call.DoesNotExist, ValueError) as e:
            raise exc.NotFound("No such call.") from e

    async def _push(self, call_id: Any) -> None:
        call = await Call.objects.aget(pk=call_id)
        await push_call(call.user_id, call.public())
