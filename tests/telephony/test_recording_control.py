"""Recording policy and the on-demand toggle, in process: what Telnyx is told, the
recording flag on the call, what the agent's pages are pushed, and the API's answers.

The worker's operations run with a fake adapter that records what it was asked (the
two-leg rig of ``test_two_leg_calls``); webhooks are signed and go through the real view.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.test import Client

from telephony import exceptions as exc
from telephony.legs import Leg
from telephony.models import Call, CallStatus
from telephony.worker.provider import RequestContext
from tests.telephony.conftest import fake_ready_worker
from tests.telephony.test_two_leg_calls import FakeAdapter, Rig, key, rig  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]


@dataclass
class RecordingAdapter(FakeAdapter):
    """The two-leg fake, plus Telnyx's record actions; can be told to fail a stop."""

    fail_stop: exc.TelephonyError | None = None

    async def start_recording(self, ctx: RequestContext, ccid: str, **kw: Any) -> None:
        self.ops.append(("record_start", {"call_control_id": ccid, **kw}))

    async def stop_recording(self, ctx: RequestContext, ccid: str, **kw: Any) -> None:
        self.ops.append(("record_stop", {"call_control_id": ccid, **kw}))
        if self.fail_stop is not None:
            raise self.fail_stop


def ctx() -> RequestContext:
    return RequestContext(request_id=str(uuid.uuid4()), deadline=time.time() + 5)


def recorded(adapter: FakeAdapter) -> list[tuple[str, dict[str, Any]]]:
    return [(name, kw) for name, kw in adapter.ops if name.startswith("record_")]


@pytest.fixture
def recrig(rig: Rig) -> Rig:  # noqa: F811 - the imported fixture
    rig.adapter = RecordingAdapter()
    rig.ops.adapter = rig.adapter  # type: ignore[assignment]
    return rig


async def pushed_recording(on: Rig) -> list[bool]:
    """The ``recording`` flag of every push to the agent's pages so far."""
    layer = get_channel_layer()
    out: list[bool] = []
    while True:
        try:
            message = await asyncio.wait_for(layer.receive(on.channel), 0.05)
        except TimeoutError:
            return out
        out.append(message["call"]["recording"])


# -- policy "all" --------------------------------------------------------------------------


async def test_policy_all__customer_dial_records_dual_from_answer_and_the_flag_follows(
    recrig: Rig, settings: Any
) -> None:
    settings.TELEPHONY_RECORDING, settings.TELEPHONY_RECORDING_FORMAT = "all", "wav"
    call = await recrig.answered_call()
    agent, customer = [kw for name, kw in recrig.adapter.ops if name == "dial"]
    assert not agent.get("record")  # the agent leg is never recorded by itself
    assert customer["record"] == {
        "record": "record-from-answer", "record_channels": "dual", "record_format": "wav",
    }  # fmt: skip
    assert recorded(recrig.adapter) == []  # the Dial records: no record_start
    assert call.status == CallStatus.ANSWERED and call.is_recording
    assert (await pushed_recording(recrig))[-1] is True
    call = await recrig.send(
        "call.hangup", call, Leg.CUSTOMER, hangup_cause="normal_clearing", hangup_source="callee"
    )
    assert call.status == CallStatus.COMPLETED and not call.is_recording
    assert (await pushed_recording(recrig))[-1] is False


async def test_policy_all_with_beep__record_start_with_play_beep_when_the_customer_answers(
    recrig: Rig, settings: Any
) -> None:
    settings.TELEPHONY_RECORDING, settings.TELEPHONY_RECORDING_BEEP = "all", True
    call = await recrig.answered_call()
    customer = [kw for name, kw in recrig.adapter.ops if name == "dial"][1]
    assert not customer["record"]  # Dial has no play_beep: record_start does it
    (name, kw), = recorded(recrig.adapter)  # fmt: skip
    assert name == "record_start" and kw["call_control_id"] == call.call_control_id
    assert (kw["fmt"], kw["channels"], kw["play_beep"]) == ("mp3", "dual", True)
    assert kw["command_id"] == f"{call.id}:record:answer"  # a redelivery is one command
    assert call.is_recording
    await recrig.send("call.bridged", call, Leg.CUSTOMER)
    assert len(recorded(recrig.adapter)) == 1


async def test_policy_off__nothing_is_recorded(recrig: Rig, settings: Any) -> None:
    settings.TELEPHONY_RECORDING = "off"
    call = await recrig.answered_call()
    customer = [kw for name, kw in recrig.adapter.ops if name == "dial"][1]
    assert not customer["record"] and recorded(recrig.adapter) == []
    assert not call.is_recording


async def test_recording_saved__clears_the_flag_unless_an_on_demand_call_is_live(
    recrig: Rig, settings: Any
) -> None:
    settings.TELEPHONY_RECORDING = "all"
    call = await recrig.answered_call()
    assert call.is_recording
    call = await recrig.send("call.recording.saved", call, Leg.CUSTOMER, channels="dual")
    assert not call.is_recording
    settings.TELEPHONY_RECORDING = "on_demand"
    await Call.objects.filter(pk=call.pk).aupdate(is_recording=True)
    call = await recrig.send("call.recording.saved", call, Leg.CUSTOMER, channels="dual")
    assert call.is_recording  # the agent's own stop says when it ends


# -- on demand: the worker's call.record ---------------------------------------------------


async def test_call_record__starts_and_stops_the_customer_leg_and_pushes_the_flag(
    recrig: Rig, settings: Any
) -> None:
    settings.TELEPHONY_RECORDING, settings.TELEPHONY_RECORDING_FORMAT = "on_demand", "wav"
    settings.TELEPHONY_RECORDING_BEEP = True
    call = await recrig.answered_call()
    assert not call.is_recording and recorded(recrig.adapter) == []
    await pushed_recording(recrig)
    start = ctx()
    answer = await recrig.ops.call_record(start, {"call_id": str(call.id), "recording": True})
    assert answer["recording"] is True
    (name, kw), = recorded(recrig.adapter)  # fmt: skip
    assert (name, kw["call_control_id"], kw["fmt"], kw["channels"], kw["play_beep"]) == (
        "record_start", call.call_control_id, "wav", "dual", True,
    )  # fmt: skip
    assert kw["command_id"] == start.request_id
    assert await pushed_recording(recrig) == [True]
    again = await recrig.ops.call_record(ctx(), {"call_id": str(call.id), "recording": True})
    assert again["recording"] is True and len(recorded(recrig.adapter)) == 1  # idempotent
    stop = await recrig.ops.call_record(ctx(), {"call_id": str(call.id), "recording": False})
    assert stop["recording"] is False
    assert [name for name, _ in recorded(recrig.adapter)] == ["record_start", "record_stop"]
    assert await pushed_recording(recrig) == [False]


async def test_call_record__refuses_off_policy_unanswered_calls_and_bad_payloads(
    recrig: Rig, settings: Any
) -> None:
    settings.TELEPHONY_RECORDING = "all"
    call = await recrig.dial()
    payload = {"call_id": str(call.id), "recording": True}
    with pytest.raises(exc.RecordingDisabled):
        await recrig.ops.call_record(ctx(), payload)
    settings.TELEPHONY_RECORDING = "on_demand"
    with pytest.raises(exc.CallNotAnswered):
        await recrig.ops.call_record(ctx(), payload)
    with pytest.raises(exc.InvalidRequest):
        await recrig.ops.call_record(ctx(), {"call_id": str(call.id), "recording": "yes"})
    with pytest.raises(exc.NotFound):
        await recrig.ops.call_record(ctx(), {"call_id": str(uuid.uuid4()), "recording": True})
    assert recorded(recrig.adapter) == []


async def test_call_record__a_stop_that_finds_the_call_ended_clears_the_flag(
    recrig: Rig, settings: Any
) -> None:
    settings.TELEPHONY_RECORDING = "on_demand"
    call = await recrig.answered_call()
    await recrig.ops.call_record(ctx(), {"call_id": str(call.id), "recording": True})
    adapter = recrig.adapter
    assert isinstance(adapter, RecordingAdapter)
    adapter.fail_stop = exc.ProviderRejected("Telnyx answered 422", reason="call_ended")
    with pytest.raises(exc.CallNotAnswered):
        await recrig.ops.call_record(ctx(), {"call_id": str(call.id), "recording": False})
    assert not (await Call.objects.aget(pk=call.pk)).is_recording


# -- on demand: the API --------------------------------------------------------------------


@pytest.fixture
def agent() -> Any:
    return get_user_model().objects.create_user("agent", password="pw")


@pytest.fixture
def api(agent: Any, settings: Any) -> Client:
    settings.TELEPHONY_STATE_CACHE_TTL = 0
    settings.TELEPHONY_RECORDING = "on_demand"
    settings.TELEPHONY_RATE_LIMIT_CALL = "100/m"  # the refusals below are many requests
    client = Client()
    client.force_login(agent)
    return client


def live_call(user: Any, **fields: Any) -> Call:
    values = {
        "status": CallStatus.ANSWERED,
        "call_control_id": "v3:customer-1",
        "agent_call_control_id": "v3:agent-1",
        **fields,
    }
    return Call.objects.create(user=user, to_number="+12025550143", **values)


def toggle(client: Client, call_id: Any, body: Any) -> Any:
    return client.post(
        f"/api/webrtc/call/{call_id}/recording", body, content_type="application/json"
    )


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == code and response.json()["error"]


def test_api_recording__each_refusal_has_its_code(api: Client, agent: Any, settings: Any) -> None:
    fake_ready_worker()
    mine = live_call(agent)
    other = live_call(get_user_model().objects.create_user("other"))
    assert_error(toggle(Client(), mine.id, {"recording": True}), 401, "not_authenticated")
    assert_error(toggle(api, other.id, {"recording": True}), 404, "not_found")
    assert_error(toggle(api, "not-a-uuid", {"recording": True}), 404, "not_found")
    for bad in ({}, {"recording": "yes"}, {"recording": True, "x": 1}, [True]):
        assert_error(toggle(api, mine.id, bad), 400, "invalid_request")
    ringing = live_call(agent, status=CallStatus.RINGING, call_control_id="v3:c2")
    assert_error(toggle(api, ringing.id, {"recording": True}), 409, "call_not_answered")
    ended = live_call(agent, status=CallStatus.COMPLETED, call_control_id="v3:c3")
    assert_error(toggle(api, ended.id, {"recording": False}), 409, "call_not_answered")
    settings.TELEPHONY_RECORDING = "all"
    assert_error(toggle(api, mine.id, {"recording": True}), 409, "recording_disabled")
    assert_error(api.get(f"/api/webrtc/call/{mine.id}/recording"), 405, "method_not_allowed")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(agent)
    assert_error(toggle(strict, mine.id, {"recording": True}), 403, "forbidden")


def test_api_recording__starts_through_a_worker_and_is_idempotent(
    api: Client, agent: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from telephony.web import views
    from telephony.worker.operations import Operations

    adapter = RecordingAdapter()
    ops = Operations(adapter, worker_id="test:1")  # type: ignore[arg-type]
    sent: list[tuple[str, dict[str, Any]]] = []

    async def worker(op: str, payload: dict[str, Any], **kw: Any) -> dict[str, Any]:
        sent.append((op, payload))  # what crosses the layer, handled as a worker would
        return await ops.call_record(ctx(), payload)

    monkeypatch.setattr(views.service, "arequest", worker)
    fake_ready_worker()
    call = live_call(agent)
    response = toggle(api, call.id, {"recording": True})
    assert response.status_code == 200, response.content
    assert response.json()["call"]["recording"] is True
    assert sent == [("call.record", {"call_id": str(call.id), "recording": True})]
    assert [name for name, _ in adapter.ops] == ["record_start"]
    again = toggle(api, call.id, {"recording": True})
    assert again.status_code == 200 and again.json()["call"]["recording"] is True
    assert len(sent) == 1  # already recording: nothing to tell anyone
    stopped = toggle(api, call.id, {"recording": False})
    assert stopped.json()["call"]["recording"] is False
    assert [name for name, _ in adapter.ops] == ["record_start", "record_stop"]


def test_api_recording__no_worker_is_503(api: Client, agent: Any) -> None:
    call = live_call(agent)
    assert_error(toggle(api, call.id, {"recording": True}), 503, "service_unavailable")
    assert not Call.objects.get(pk=call.pk).is_recording


def test_terminal_status_clears_the_recording_flag(agent: Any) -> None:
    from asgiref.sync import async_to_sync

    from telephony.services import acall_advance, acall_set_recording

    call = live_call(agent, is_recording=True)
    async_to_sync(acall_advance)(call_id=call.id, status=CallStatus.COMPLETED)
    assert not Call.objects.get(pk=call.pk).is_recording
    # And a late "recording started" never marks an ended call.
    assert not async_to_sync(acall_set_recording)(call_id=call.id, recording=True)
    assert not Call.objects.get(pk=call.pk).is_recording
    later = live_call(agent, call_control_id="v3:c9", answered_at=None)
    assert async_to_sync(acall_set_recording)(call_id=later.id, recording=True)
    assert Call.objects.get(pk=later.pk).is_recording
