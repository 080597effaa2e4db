"""Two-leg calls, in process: signed webhooks through the real view and channel layer,
the worker's operations driven with a fake adapter that records what it was asked.

Each test plays Telnyx: it posts the webhooks Telnyx would send (shaped like the spec's
``call.initiated/answered/bridged/hangup``), then plays the worker by taking the
forwarded ``call.event`` requests off channel ``telephony`` and handing them to
:class:`Operations`. "Every worker dead" is the same with the messages thrown away.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.test import AsyncClient
from django.utils import timezone
from nacl.signing import SigningKey

from telephony import exceptions as exc
from telephony.events import user_group
from telephony.legs import Leg, decode_client_state
from telephony.models import Call, CallStatus, Credential, WebhookEvent
from telephony.protocol import CHANNEL, NO_REPLY, Request
from telephony.worker.operations import Operations
from telephony.worker.provider import CallInfo, DialResult, RequestContext
from telephony.worker.reconciler import reconcile_once

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]

URL = "/api/webrtc/webhooks/telnyx"
TO = "+12025550143"


# -- a fake Telnyx adapter --------------------------------------------------------------


@dataclass
class FakeAdapter:
    """Records every operation; dials return fresh call_control_ids; can be told to fail."""

    ops: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    alive: dict[str, bool] = field(default_factory=dict)
    fail_dial: list[exc.TelephonyError | None] = field(default_factory=list)
    breaker: Any = field(default_factory=lambda: SimpleNamespace(state="closed"))

    async def dial(self, ctx: RequestContext, **kw: Any) -> DialResult:
        self.ops.append(("dial", kw))
        error = self.fail_dial.pop(0) if self.fail_dial else None
        if error is not None:
            raise error
        ccid = f"v3:{'agent' if kw['to'].startswith('sip:') else 'customer'}-{len(self.ops)}"
        self.alive[ccid] = True
        return DialResult(call_control_id=ccid, call_session_id="sess-1", call_leg_id="leg")

    async def hangup(self, ctx: RequestContext, ccid: str, *, command_id: str = "") -> bool:
        self.ops.append(("hangup", {"call_control_id": ccid, "command_id": command_id}))
        if not self.alive.get(ccid):
            return False  # what the adapter makes of 90018 "Call has already ended"
        self.alive[ccid] = False
        return True

    async def call_status(self, ctx: RequestContext, ccid: str) -> CallInfo:
        self.ops.append(("status", {"call_control_id": ccid}))
        return CallInfo(call_control_id=ccid, is_alive=self.alive.get(ccid, False), call_duration=0)

    def names(self) -> list[str]:
        """The operations in order, e.g. ``["dial:agent", "dial:customer", "hangup:agent"]``."""
        out = []
        for name, kw in self.ops:
            if name == "dial":
                out.append("dial:" + ("agent" if kw["to"].startswith("sip:") else "customer"))
            else:
                out.append(f"{name}:{kw['call_control_id'].split(':')[1].split('-')[0]}")
        return out


def ctx() -> RequestContext:
    return RequestContext(request_id=str(uuid.uuid4()), deadline=time.time() + 5)


# -- Telnyx's side: signed webhooks -------------------------------------------------------


@pytest.fixture
def key(settings: Any) -> SigningKey:
    signing = SigningKey.generate()
    settings.TELNYX_PUBLIC_KEY = base64.b64encode(bytes(signing.verify_key)).decode()
    return signing


def webhook(
    event_type: str, call: Call, leg: Leg, *, at: datetime | None = None, **extra: Any
) -> bytes:
    at = at or datetime.now(UTC)
    ccid = call.agent_call_control_id if leg is Leg.AGENT else call.call_control_id
    state = base64.b64encode(json.dumps({"call": str(call.id), "leg": leg.value}).encode())
    payload = {
        "call_control_id": ccid,
        "call_leg_id": "leg",
        "call_session_id": "sess-1",
        "client_state": state.decode(),
        "connection_id": "7267",
        **extra,
    }
    body = {
        "data": {
            "event_type": event_type,
            "id": str(uuid.uuid4()),
            "occurred_at": at.isoformat().replace("+00:00", "Z"),
            "payload": payload,
            "record_type": "event",
        }
    }
    return json.dumps(body).encode()


async def post(key: SigningKey, raw: bytes) -> int:
    stamp = str(int(time.time()))
    sig = base64.b64encode(key.sign(stamp.encode() + b"|" + raw).signature).decode()
    headers = {"telnyx-timestamp": stamp, "telnyx-signature-ed25519": sig}
    response = await AsyncClient().post(
        URL, data=raw, content_type="application/json", headers=headers
    )
    return response.status_code


# -- the worker's side ---------------------------------------------------------------------


@dataclass
class Rig:
    """One agent, the fake adapter, the worker's operations, and the agent's WebSocket."""

    ops: Operations
    adapter: FakeAdapter
    key: SigningKey
    user: Any
    channel: str
    t0: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    async def forwarded(self) -> list[dict[str, Any]]:
        """The ``call.event`` requests waiting on channel ``telephony``, taken off it."""
        layer = get_channel_layer()
        out = []
        while await layer.connection(0).zcard(layer.prefix + CHANNEL):
            out.append(await asyncio.wait_for(layer.receive(CHANNEL), 2))
        return out

    async def send(self, event_type: str, call: Call, leg: Leg, *, worker: bool = True, **kw):
        """Telnyx posts a webhook; a live worker handles what the web forwarded."""
        call = await Call.objects.aget(pk=call.pk)
        assert await post(self.key, webhook(event_type, call, leg, **kw)) == 204
        for message in await self.forwarded():
            request = Request.decode(message)
            rid, payload = request.request_id, request.payload
            if request.op == "recording.fetch":  # the recording pipeline's, not this rig's
                continue
            assert (request.op, request.reply_to) == ("call.event", NO_REPLY)
            if not worker:
                continue
            try:  # the worker logs a failed request; nobody waits for its reply
                await self.ops.call_event(
                    RequestContext(request_id=rid, deadline=time.time() + 5), payload
                )
            except exc.TelephonyError:
                pass
        return await Call.objects.aget(pk=call.pk)

    async def pushed(self) -> list[str]:
        """Statuses pushed to the agent's WebSocket so far."""
        layer = get_channel_layer()
        out = []
        while True:
            try:
                message = await asyncio.wait_for(layer.receive(self.channel), 0.05)
            except TimeoutError:
                return out
            out.append(message["call"]["status"])

    async def dial(self) -> Call:
        call = await Call.objects.acreate(
            user=self.user, to_number=TO, status=CallStatus.QUEUED,
            deadline=timezone.now() + timedelta(seconds=10),
        )  # fmt: skip
        await self.ops.call_dial(ctx(), {"call_id": str(call.id)})
        return await Call.objects.aget(pk=call.pk)

    async def answered_call(self) -> Call:
        """Agent leg answered, customer leg dialled and answered: a conversation."""
        call = await self.dial()
        await self.send("call.initiated", call, Leg.AGENT, at=self.t0)
        call = await self.send("call.answered", call, Leg.AGENT, at=self.t0 + timedelta(seconds=2))
        await self.send("call.initiated", call, Leg.CUSTOMER, at=self.t0 + timedelta(seconds=3))
        return await self.send(
            "call.answered", call, Leg.CUSTOMER, at=self.t0 + timedelta(seconds=8)
        )


@pytest.fixture
async def rig(key: SigningKey, settings: Any) -> Rig:
    settings.TELNYX_CALL_CONNECTION_ID = "call-app"
    settings.TELNYX_FROM_NUMBER = "+12025550100"
    user = await get_user_model().objects.acreate_user("ada")
    await Credential.objects.acreate(
        user=user, telnyx_id="cred-1", sip_username="gencredada", tag="t",
        expires_at=timezone.now() + timedelta(hours=1),
    )  # fmt: skip
    adapter = FakeAdapter()
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(user_group(user.pk), channel)
    return Rig(Operations(adapter, worker_id="test:1"), adapter, key, user, channel)  # type: ignore[arg-type]


def dialled(adapter: FakeAdapter, n: int) -> dict[str, Any]:
    return [kw for name, kw in adapter.ops if name == "dial"][n]


# -- the happy path ------------------------------------------------------------------------


async def test_two_legs__agent_leg_then_customer_leg_bridged_then_customer_hangs_up(rig) -> None:
    call = await rig.dial()
    agent = dialled(rig.adapter, 0)
    assert agent["to"] == "sip:gencredada@sip.telnyx.com"
    assert agent["connection_id"] == "call-app" and agent["timeout_secs"] == 15
    assert decode_client_state(agent["client_state"]) == (call.id, Leg.AGENT)
    assert (call.status, call.agent_call_control_id, call.call_control_id) == (
        "dialing", "v3:agent-1", "",
    )  # fmt: skip

    call = await rig.send("call.initiated", call, Leg.AGENT, at=rig.t0)
    assert call.status == "dialing" and rig.adapter.names() == ["dial:agent"]
    call = await rig.send("call.answered", call, Leg.AGENT, at=rig.t0 + timedelta(seconds=2))
    customer = dialled(rig.adapter, 1)
    assert customer["to"] == TO and customer["link_to"] == "v3:agent-1"
    assert customer["bridge_on_answer"] is True
    assert decode_client_state(customer["client_state"]) == (call.id, Leg.CUSTOMER)
    assert (call.status, call.call_control_id) == ("ringing", "v3:customer-2")
    assert call.agent_answered_at == rig.t0 + timedelta(seconds=2)

    call = await rig.send("call.initiated", call, Leg.CUSTOMER, at=rig.t0 + timedelta(seconds=3))
    call = await rig.send("call.answered", call, Leg.CUSTOMER, at=rig.t0 + timedelta(seconds=8))
    call = await rig.send("call.bridged", call, Leg.CUSTOMER, at=rig.t0 + timedelta(seconds=8))
    assert call.status == "answered" and call.answered_at == rig.t0 + timedelta(seconds=8)
    assert rig.adapter.names() == ["dial:agent", "dial:customer"]

    call = await rig.send(
        "call.hangup", call, Leg.CUSTOMER, at=rig.t0 + timedelta(seconds=50),
        hangup_cause="normal_clearing", hangup_source="callee",
    )  # fmt: skip
    assert rig.adapter.names() == ["dial:agent", "dial:customer", "hangup:agent"]
    assert (call.status, call.hangup_side, call.hangup_cause) == (
        "completed", "customer", "normal_clearing",
    )  # fmt: skip
    assert call.duration_seconds == 42 and call.customer_ended_at == rig.t0 + timedelta(seconds=50)
    assert call.agent_ended_at is not None  # the worker's hangup of the other leg
    # Our own hangup of the agent leg comes back as a webhook: it changes nothing.
    before = call.public()
    call = await rig.send(
        "call.hangup", call, Leg.AGENT, at=rig.t0 + timedelta(seconds=51),
        hangup_cause="normal_clearing", hangup_source="caller",
    )  # fmt: skip
    assert call.public() == before and rig.adapter.names()[-1] == "hangup:agent"
    public = call.public()
    assert public["time_to_answer_seconds"] is not None and public["hangup_side"] == "customer"
    pushed = await rig.pushed()
    assert [s for i, s in enumerate(pushed) if i == 0 or pushed[i - 1] != s] == [
        "dialing", "ringing", "answered", "completed",
    ]  # fmt: skip
    assert await WebhookEvent.objects.acount() == 7


async def test_two_legs__agent_hangs_up_during_the_conversation(rig) -> None:
    call = await rig.answered_call()
    call = await rig.send(
        "call.hangup", call, Leg.AGENT, at=rig.t0 + timedelta(seconds=20),
        hangup_cause="normal_clearing", hangup_source="callee",
    )  # fmt: skip
    assert rig.adapter.names()[-1] == "hangup:customer"
    assert (call.status, call.hangup_side, call.duration_seconds) == ("completed", "agent", 12)


async def test_two_legs__agent_hangs_up_before_the_customer_answers(rig) -> None:
    call = await rig.dial()
    call = await rig.send("call.answered", call, Leg.AGENT)
    call = await rig.send(
        "call.hangup", call, Leg.AGENT, hangup_cause="normal_clearing", hangup_source="callee"
    )
    assert rig.adapter.names() == ["dial:agent", "dial:customer", "hangup:customer"]
    assert (call.status, call.hangup_side, call.duration_seconds) == ("canceled", "agent", 0)
    # Telnyx then reports the cancelled customer leg: still canceled, by the agent.
    call = await rig.send(
        "call.hangup", call, Leg.CUSTOMER, hangup_cause="originator_cancel", hangup_source="caller"
    )
    assert (call.status, call.hangup_side) == ("canceled", "agent")


# -- the customer leg fails ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cause", "status", "error_code"),
    [
        ("user_busy", "busy", ""),
        ("call_rejected", "busy", ""),
        ("timeout", "no_answer", ""),
        ("not_found", "failed", "customer_leg_failed"),
    ],
)
async def test_two_legs__customer_leg_fails_ends_the_agent_leg(
    rig, cause, status, error_code
) -> None:
    call = await rig.dial()
    call = await rig.send("call.answered", call, Leg.AGENT)
    call = await rig.send(
        "call.hangup", call, Leg.CUSTOMER, hangup_cause=cause, hangup_source="callee"
    )
    assert rig.adapter.names() == ["dial:agent", "dial:customer", "hangup:agent"]
    assert (call.status, call.error_code, call.hangup_cause) == (status, error_code, cause)
    assert call.duration_seconds == 0 and call.answered_at is None


async def test_two_legs__customer_number_refused_by_telnyx_ends_the_agent_leg(rig) -> None:
    rig.adapter.fail_dial = [None, exc.ProviderRejected("Telnyx answered 422", reason="http_422")]
    call = await rig.dial()
    call = await rig.send("call.answered", call, Leg.AGENT)
    assert rig.adapter.names() == ["dial:agent", "dial:customer", "hangup:agent"]
    assert (call.status, call.error_code, call.hangup_side) == ("failed", "http_422", "system")
    assert "failed" in await rig.pushed()


# -- the agent leg -------------------------------------------------------------------------


async def test_two_legs__a_dial_delivered_twice_rings_the_agent_once(rig) -> None:
    """The same call.dial run again (its Redis claim lost in a failover), after a first run
    whose outcome was unknown, or at the same time as it: one agent Dial, ever."""
    rig.adapter.fail_dial.append(exc.ProviderTimeout())
    call = await Call.objects.acreate(user=rig.user, to_number=TO)
    with pytest.raises(exc.ProviderTimeout):
        await rig.ops.call_dial(ctx(), {"call_id": str(call.id)})
    assert (await Call.objects.aget(pk=call.pk)).status == CallStatus.UNKNOWN
    again = await rig.ops.call_dial(ctx(), {"call_id": str(call.id)})
    assert again["status"] == "unknown" and rig.adapter.names() == ["dial:agent"]
    other = await Call.objects.acreate(user=rig.user, to_number=TO)
    await asyncio.gather(*(rig.ops.call_dial(ctx(), {"call_id": str(other.id)}) for _ in "ab"))
    assert rig.adapter.names() == ["dial:agent", "dial:agent"]


async def test_two_legs__no_credential_is_409_and_a_failed_row(rig) -> None:
    await Credential.objects.all().adelete()
    call = await Call.objects.acreate(user=rig.user, to_number=TO)
    with pytest.raises(exc.NoCredential) as err:
        await rig.ops.call_dial(ctx(), {"call_id": str(call.id)})
    assert (err.value.status, err.value.code) == (409, "no_credential")
    row = await Call.objects.aget(pk=call.pk)
    assert (row.status, row.error_code) == ("failed", "no_credential")
    assert rig.adapter.ops == []


async def test_two_legs__agent_never_answers_times_out_and_the_customer_is_never_dialled(
    rig, settings
) -> None:
    settings.TELEPHONY_AGENT_ANSWER_TIMEOUT = 15
    call = await rig.dial()
    assert await reconcile_once(rig.ops, now=call.dialed_at + timedelta(seconds=10)) == 0
    assert rig.adapter.names() == ["dial:agent"]
    await reconcile_once(rig.ops, now=call.dialed_at + timedelta(seconds=21))
    row = await Call.objects.aget(pk=call.pk)
    assert (row.status, row.error_code, row.hangup_side) == (
        "no_answer",
        "agent_no_answer",
        "system",
    )
    assert rig.adapter.names() == ["dial:agent", "hangup:agent"]
    # The page's answer, delivered late: the leg is known down, nobody is dialled.
    await rig.send("call.answered", row, Leg.AGENT)
    assert rig.adapter.names() == ["dial:agent", "hangup:agent"]
    assert (await Call.objects.aget(pk=call.pk)).status == "no_answer"


async def test_two_legs__agent_answer_after_the_timeout_never_dials(rig, settings) -> None:
    settings.TELEPHONY_AGENT_ANSWER_TIMEOUT = 15
    call = await rig.dial()
    late = call.dialed_at + timedelta(seconds=16)  # before the reconciler got to it
    call = await rig.send("call.answered", call, Leg.AGENT, at=late)
    assert rig.adapter.names() == ["dial:agent", "hangup:agent"]
    assert (call.status, call.error_code) == ("no_answer", "agent_no_answer")


async def test_two_legs__telnyx_timing_out_the_agent_leg_is_agent_no_answer(rig) -> None:
    call = await rig.dial()
    call = await rig.send(
        "call.hangup", call, Leg.AGENT, hangup_cause="timeout", hangup_source="caller"
    )
    assert (call.status, call.error_code) == ("no_answer", "agent_no_answer")
    assert rig.adapter.names() == ["dial:agent"]  # no customer leg to end


# -- bad input -----------------------------------------------------------------------------


async def test_two_legs__replayed_webhook_changes_nothing_and_dials_once(rig) -> None:
    call = await rig.dial()
    raw = webhook("call.answered", call, Leg.AGENT)
    assert await post(rig.key, raw) == 204
    assert len(await rig.forwarded()) == 1
    assert await post(rig.key, raw) == 204  # the same event again
    assert await rig.forwarded() == []
    # Even two different deliveries of the answer dial the customer only once.
    for _ in range(2):
        await rig.ops.agent_answered(ctx(), await Call.objects.aget(pk=call.pk))
    assert rig.adapter.names() == ["dial:agent", "dial:customer"]


async def test_two_legs__forged_webhook_changes_nothing(rig) -> None:
    call = await rig.dial()
    before = call.public()
    assert await post(SigningKey.generate(), webhook("call.answered", call, Leg.AGENT)) == 400
    assert await rig.forwarded() == []
    assert (await Call.objects.aget(pk=call.pk)).public() == before
    assert await WebhookEvent.objects.acount() == 0


async def test_two_legs__statuses_never_move_backwards(rig) -> None:
    call = await rig.answered_call()
    for event_type, leg in (("call.initiated", Leg.CUSTOMER), ("call.initiated", Leg.AGENT)):
        call = await rig.send(event_type, call, leg)
        assert call.status == "answered"
    call = await rig.send(
        "call.hangup", call, Leg.CUSTOMER, hangup_cause="normal_clearing", hangup_source="callee"
    )
    for event_type, leg in (("call.answered", Leg.CUSTOMER), ("call.initiated", Leg.AGENT)):
        call = await rig.send(event_type, call, leg)
        assert call.status == "completed"


async def test_two_legs__late_customer_answer_corrects_busy_to_completed(rig) -> None:
    call = await rig.dial()
    call = await rig.send("call.answered", call, Leg.AGENT)
    call = await rig.send(
        "call.hangup", call, Leg.CUSTOMER, at=rig.t0 + timedelta(seconds=30),
        hangup_cause="normal_clearing", hangup_source="callee",
    )  # fmt: skip
    assert call.status == "failed"
    call = await rig.send("call.answered", call, Leg.CUSTOMER, at=rig.t0 + timedelta(seconds=10))
    assert (call.status, call.duration_seconds, call.error_code) == ("completed", 20, "")


# -- every worker dead ---------------------------------------------------------------------


async def test_two_legs__with_every_worker_dead_the_reconciler_does_their_work(rig) -> None:
    call = await rig.dial()
    call = await rig.send("call.answered", call, Leg.AGENT, at=timezone.now(), worker=False)
    assert call.status == "dialing" and rig.adapter.names() == ["dial:agent"]
    # A worker is back: the agent leg is still up, so the customer is dialled late.
    await reconcile_once(rig.ops, now=timezone.now() + timedelta(seconds=6))
    call = await Call.objects.aget(pk=call.pk)
    assert rig.adapter.names() == ["dial:agent", "status:agent", "dial:customer"]
    assert call.status == "ringing"
    call = await rig.send("call.answered", call, Leg.CUSTOMER, worker=False)
    assert call.status == "answered"
    # The conversation goes on without workers; the agent hangs up, nobody ends the other leg.
    call = await rig.send(
        "call.hangup", call, Leg.AGENT, worker=False, at=rig.t0 + timedelta(minutes=3),
        hangup_cause="normal_clearing", hangup_source="callee",
    )  # fmt: skip
    assert (call.status, call.hangup_side) == ("completed", "agent")
    assert rig.adapter.alive[call.call_control_id] is True
    await reconcile_once(rig.ops, now=timezone.now() + timedelta(seconds=6))
    assert rig.adapter.names()[-1] == "hangup:customer"
    assert rig.adapter.alive[call.call_control_id] is False
    row = await Call.objects.aget(pk=call.pk)
    assert row.customer_ended_at is not None and row.status == "completed"
    seen = len(rig.adapter.ops)
    await reconcile_once(rig.ops, now=timezone.now() + timedelta(seconds=6))
    assert len(rig.adapter.ops) == seen  # settled: nothing left to do


async def test_two_legs__worker_lost_mid_customer_dial_is_settled(rig) -> None:
    call = await rig.dial()
    # The worker claimed the customer dial and died before Telnyx answered it.
    await Call.objects.filter(pk=call.pk).aupdate(
        status=CallStatus.RINGING, ringing_at=timezone.now(), agent_answered_at=timezone.now()
    )
    await reconcile_once(rig.ops, now=timezone.now() + timedelta(seconds=16))
    row = await Call.objects.aget(pk=call.pk)
    assert (row.status, row.error_code) == ("failed", "worker_lost")
    assert rig.adapter.names() == ["dial:agent", "hangup:agent"]


# -- hanging up ----------------------------------------------------------------------------


async def test_two_legs__api_hangup_ends_both_legs_and_is_idempotent(rig) -> None:
    call = await rig.answered_call()
    ended = await rig.ops.call_hangup(ctx(), {"call_id": str(call.id)})
    assert ended["status"] == "completed" and ended["hangup_side"] == "agent"
    assert rig.adapter.names()[-2:] == ["hangup:customer", "hangup:agent"]
    again = await rig.ops.call_hangup(ctx(), {"call_id": str(call.id)})
    assert again == ended and rig.adapter.names()[-1] == "hangup:agent"


async def test_two_legs__hangup_of_an_already_ended_leg_counts_as_done(rig) -> None:
    call = await rig.answered_call()
    rig.adapter.alive = {k: False for k in rig.adapter.alive}  # Telnyx: 90018 for both
    ended = await rig.ops.call_hangup(ctx(), {"call_id": str(call.id)})
    assert ended["status"] == "completed"
    row = await Call.objects.aget(pk=call.pk)
    assert row.agent_ended_at is not None and row.customer_ended_at is not None


async def test_two_legs__hangup_while_the_agent_leg_rings_cancels(rig) -> None:
    call = await rig.dial()
    ended = await rig.ops.call_hangup(ctx(), {"call_id": str(call.id)})
    assert (ended["status"], ended["hangup_side"]) == ("canceled", "agent")
    assert rig.adapter.names() == ["dial:agent", "hangup:agent"]
    # The page's answer, delivered late: too late, nobody is dialled.
    await rig.send("call.answered", call, Leg.AGENT)
    assert rig.adapter.names() == ["dial:agent", "hangup:agent"]
    assert (await Call.objects.aget(pk=call.pk)).status == "canceled"
