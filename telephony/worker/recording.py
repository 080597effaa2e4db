"""The worker's side of recording a call (``TELEPHONY_RECORDING``: ``recording_policy``).

- ``all`` with the consent beep: ``record_start`` (``play_beep``) on the customer leg when
  the customer answers (``call.event``); without the beep the Dial itself records, and the
  web side sets the flag on the answer.
- ``on_demand``: ``call.record`` starts or stops it for the agent, and answers the call.

``Call.is_recording`` follows what Telnyx was told, and every change is pushed to the
agent's pages like any other call change.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from telephony import exceptions as exc
from telephony.events import push_call
from telephony.models import Call, CallStatus
from telephony.recording_policy import (
    CHANNELS,
    ON_DEMAND,
    recording_beep,
    recording_format,
    recording_policy,
    starts_on_answer,
)
from telephony.services import acall_set_recording
from telephony.worker.adapter import TelnyxAdapter
from telephony.worker.provider import RequestContext

logger = logging.getLogger(__name__)


def _live(call: Call) -> bool:
    """The customer is on the line: the only time a recording can start or stop."""
    return (
        call.status == CallStatus.ANSWERED
        and bool(call.call_control_id)
        and call.customer_ended_at is None
        and not call.hangup_requested
    )


class RecordingOperations:
    """Recording handlers; the base of :class:`telephony.worker.calls.CallOperations`."""

    adapter: TelnyxAdapter

    async def customer_answered(self, ctx: RequestContext, call: Call) -> None:
        """Under ``all`` with the beep, start recording now (once: a fixed ``command_id``)."""
        call = await Call.objects.aget(pk=call.id)
        if not starts_on_answer() or not _live(call) or call.is_recording:
            return
        await self._start(ctx, call, command_id=f"{call.id}:record:answer")

    async def call_record(self, ctx: RequestContext, payload: dict[str, Any]) -> dict[str, Any]:
        """Start (``{"recording": true}``) or stop recording the customer leg; idempotent."""
        want = payload.get("recording")
        if not isinstance(want, bool):
            raise exc.InvalidRequest("call.record needs recording true or false.")
        try:
            call = await Call.objects.aget(pk=uuid.UUID(str(payload.get("call_id"))))
        except (Call.DoesNotExist, ValueError) as e:
            raise exc.NotFound("No such call.") from e
        if recording_policy() != ON_DEMAND:
            raise exc.RecordingDisabled()
        if not _live(call):
            raise exc.CallNotAnswered()
        if call.is_recording != want:
            if want:
                await self._start(ctx, call, command_id=ctx.request_id)
            else:
                await self._stop(ctx, call)
        return (await Call.objects.aget(pk=call.id)).public()

    async def _start(self, ctx: RequestContext, call: Call, *, command_id: str) -> None:
        await self.adapter.start_recording(
            ctx,
            call.call_control_id,
            fmt=recording_format(),
            channels=CHANNELS,
            play_beep=recording_beep(),
            command_id=command_id,
        )
        logger.info(
            "[Telephony Worker] request_id=%s call_id=%s recording started", ctx.request_id, call.id
        )
        if await acall_set_recording(call_id=call.id, recording=True):
            await self._push_recording(call.id)

    async def _stop(self, ctx: RequestContext, call: Call) -> None:
        try:
            await self.adapter.stop_recording(ctx, call.call_control_id, command_id=ctx.request_id)
        except exc.ProviderRejected as e:
            if e.reason != "call_ended":
                raise
            # The call ended under us: so did its recording; the agent is told why.
            if await acall_set_recording(call_id=call.id, recording=False):
                await self._push_recording(call.id)
            raise exc.CallNotAnswered("The call has ended.") from e
        logger.info(
            "[Telephony Worker] request_id=%s call_id=%s recording stopped", ctx.request_id, call.id
        )
        if await acall_set_recording(call_id=call.id, recording=False):
            await self._push_recording(call.id)

    async def _push_recording(self, call_id: Any) -> None:
        call = await Call.objects.aget(pk=call_id)
        await push_call(call.user_id, call.public())
