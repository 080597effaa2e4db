"""Telnyx webhooks: real ed25519 signatures, the async view, and one end-to-end run with
daphne, a real worker and the sandbox's own signed deliveries."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import httpx
import pytest
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.test import AsyncClient
from nacl.signing import SigningKey

from telephony.events import user_group
from telephony.models import Call, CallStatus, WebhookEvent
from telephony.procutil import wait_for
from telephony.web.client import get_telephony_service
from tests.devserver.sandbox.rtc_client import VertoClient
from tests.helpers import free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

URL = "/api/webrtc/webhooks/telnyx"
CONTROL_ID = "v3:test-call-control-id"
T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


# -- helpers ----------------------------------------------------------------------------


@pytest.fixture
def key(settings: Any) -> SigningKey:
    """A real signing key; its verify key is what TELNYX_PUBLIC_KEY holds."""
    signing = SigningKey.generate()
    settings.TELNYX_PUBLIC_KEY = base64.b64encode(bytes(signing.verify_key)).decode()
    return signing


@pytest.fixture
async def call() -> Call:
    user = await get_user_model().objects.acreate_user("agent")
    return await Call.objects.acreate(
        user=user,
        to_number="+12025550143",
        status=CallStatus.DIALING,
        call_control_id=CONTROL_ID,
    )


def event(
    event_type: str,
    call: Call | None = None,
    *,
    at: datetime = T0,
    event_id: str | None = None,
    **payload: Any,
) -> dict[str, Any]:
    """A webhook body shaped like the spec's Call*Event schemas."""
    body: dict[str, Any] = {
        "call_control_id": CONTROL_ID,
        "call_leg_id": "leg",
        "call_session_id": "session",
        "start_time": (T0 - timedelta(seconds=5)).isoformat().replace("+00:00", "Z"),
    }
    if call is not None:
        body["client_state"] = base64.b64encode(str(call.id).encode()).decode()
    body.update(payload)
    return {
        "data": {
            "event_type": event_type,
            "id": event_id or str(uuid.uuid4()),
            "occurred_at": at.isoformat().replace("+00:00", "Z"),
            "payload": body,
            "record_type": "event",
        },
        "meta": {"attempt": 1, "delivered_to": "http://testserver" + URL},
    }


def sign(key: SigningKey, raw: bytes, *, stamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if stamp is None else stamp)
    signature = key.sign(ts.encode() + b"|" + raw).signature
    return {
        "telnyx-timestamp": ts,
        "telnyx-signature-ed25519": base64.b64encode(signature).decode(),
    }


async def post(
    key: SigningKey | None,
    body: dict[str, Any] | bytes,
    *,
    headers: dict[str, str] | None = None,
    stamp: int | None = None,
) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    signed = sign(key, raw, stamp=stamp) if key is not None else {}
    return await AsyncClient().post(
        URL, data=raw, content_type="application/json", headers={**signed, **(headers or {})}
    )


async def refreshed(call: Call) -> Call:
    return await Call.objects.aget(pk=call.pk)


# -- accepted -------------------------------------------------------------------------------


async def test_webhook__signed_lifecycle_completes_the_call(key, call) -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(user_group(call.user_id), channel)

    initiated = event("call.initiated", call, at=T0, call_session_id="sess-1")
    assert (await post(key, initiated)).status_code == 204
    assert (await refreshed(call)).status == CallStatus.RINGING
    pushed = await asyncio.wait_for(layer.receive(channel), 2)
    assert pushed["type"] == "call.update" and pushed["call"]["status"] == "ringing"

    answered = event("call.answered", call, at=T0 + timedelta(seconds=3))
    assert (await post(key, answered)).status_code == 204
    hangup = event(
        "call.hangup",
        call,
        at=T0 + timedelta(seconds=45),
        hangup_cause="normal_clearing",
        hangup_source="callee",
        end_time=(T0 + timedelta(seconds=44)).isoformat(),
    )
    assert (await post(key, hangup)).status_code == 204

    row = await refreshed(call)
    assert row.status == CallStatus.COMPLETED
    assert row.answered_at == T0 + timedelta(seconds=3)
    assert row.ended_at == T0 + timedelta(seconds=44)
    assert row.duration_seconds == 41 and row.hangup_cause == "normal_clearing"
    assert row.call_session_id == "sess-1"
    stored = [e async for e in WebhookEvent.objects.order_by("occurred_at")]
    assert [e.event_type for e in stored] == ["call.initiated", "call.answered", "call.hangup"]
    assert all(e.call_id == call.id for e in stored)
    assert stored[2].payload["data"]["payload"]["hangup_source"] == "callee"
    statuses = [(await asyncio.wait_for(layer.receive(channel), 2))["call"]["status"] for _ in "ab"]
    assert statuses == ["answered", "completed"]


@pytest.mark.parametrize(
    ("cause", "status"),
    [("user_busy", "busy"), ("timeout", "no_answer"), ("not_found", "failed")],
)
async def test_webhook__unanswered_customer_hangup_says_why(key, call, cause, status) -> None:
    hangup = event("call.hangup", call, hangup_cause=cause, hangup_source="callee")
    assert (await post(key, hangup)).status_code == 204
    row = await refreshed(call)
    assert (row.status, row.hangup_cause, row.duration_seconds) == (status, cause, 0)
    assert row.ended_at == T0 and row.hangup_side in ("customer", "system")


async def test_webhook__replay_is_stored_once_and_applied_once(key, call) -> None:
    answered = event("call.answered", call)
    first, second = await post(key, answered), await post(key, answered)
    assert (first.status_code, second.status_code) == (204, 204)
    assert await WebhookEvent.objects.acount() == 1
    # A replayed answer after the call ended changes nothing either.
    await post(key, event("call.hangup", call, at=T0 + timedelta(seconds=10)))
    before = (await refreshed(call)).public()
    assert (await post(key, answered)).status_code == 204
    assert (await refreshed(call)).public() == before
    assert await WebhookEvent.objects.acount() == 2


async def test_webhook__hangup_after_our_own_hangup_fills_what_is_missing(key, call) -> None:
    # The agent hung up through the API: the call is terminal but has no duration or cause.
    await Call.objects.filter(pk=call.pk).aupdate(
        status=CallStatus.COMPLETED, answered_at=T0 + timedelta(seconds=2)
    )
    hangup = event(
        "call.hangup",
        call,
        at=T0 + timedelta(seconds=21),
        hangup_cause="normal_clearing",
        end_time=(T0 + timedelta(seconds=20)).isoformat(),
    )
    assert (await post(key, hangup)).status_code == 204
    row = await refreshed(call)
    assert row.status == CallStatus.COMPLETED
    assert (row.duration_seconds, row.hangup_cause) == (18, "normal_clearing")
    assert row.ended_at == T0 + timedelta(seconds=20)
    # What is already known is never overwritten by a later delivery.
    again = event("call.hangup", call, hangup_cause="other", end_time=T0.isoformat())
    assert (await post(key, again)).status_code == 204
    row = await refreshed(call)
    assert (row.duration_seconds, row.hangup_cause) == (18, "normal_clearing")
    assert row.ended_at == T0 + timedelta(seconds=20)


async def test_webhook__out_of_order_never_moves_backwards(key, call) -> None:
    hangup = event(
        "call.hangup", call, at=T0 + timedelta(seconds=30), hangup_cause="normal_clearing"
    )
    assert (await post(key, hangup)).status_code == 204
    assert (await refreshed(call)).status == CallStatus.FAILED  # as far as we know yet

    late = event("call.answered", call, at=T0 + timedelta(seconds=4))
    assert (await post(key, late)).status_code == 204
    row = await refreshed(call)
    # Not reopened: the answer only proves the call was answered, so it completed.
    assert row.status == CallStatus.COMPLETED
    assert row.answered_at == T0 + timedelta(seconds=4) and row.duration_seconds == 26
    assert row.ended_at == T0 + timedelta(seconds=30)

    for late_type in ("call.initiated", "call.bridged", "call.answered"):
        assert (await post(key, event(late_type, call))).status_code == 204
        assert (await refreshed(call)).status == CallStatus.COMPLETED
    assert (await refreshed(call)).answered_at == T0 + timedelta(seconds=4)


async def test_webhook__answered_then_bridged_stays_answered(key, call) -> None:
    await post(key, event("call.initiated", call))
    await post(key, event("call.answered", call, at=T0 + timedelta(seconds=2)))
    await post(key, event("call.bridged", call, at=T0 + timedelta(seconds=3)))
    await post(key, event("call.initiated", call, at=T0 + timedelta(seconds=4)))
    row = await refreshed(call)
    assert row.status == CallStatus.ANSWERED and row.answered_at == T0 + timedelta(seconds=2)
    assert await WebhookEvent.objects.acount() == 4


async def test_webhook__found_by_call_control_id_when_client_state_is_garbage(key, call) -> None:
    for garbage in ("!!not-base64!!", base64.b64encode(b"\xff\xfe").decode(), "", None):
        body = event("call.initiated", None, client_state=garbage)
        assert (await post(key, body)).status_code == 204
    assert (await refreshed(call)).status == CallStatus.RINGING
    assert await WebhookEvent.objects.filter(call=call).acount() == 4


async def test_webhook__unknown_type_and_unknown_call_are_stored_and_acknowledged(
    key, call
) -> None:
    unknown_type = event("call.recording.saved", call)
    assert (await post(key, unknown_type)).status_code == 204
    assert (await refreshed(call)).status == CallStatus.DIALING
    stranger = event("call.answered", None, call_control_id="v3:someone-else")
    assert (await post(key, stranger)).status_code == 204
    stored = {e.event_type: e async for e in WebhookEvent.objects.all()}
    assert stored["call.recording.saved"].call_id == call.id
    assert stored["call.answered"].call_id is None
    assert (await refreshed(call)).status == CallStatus.DIALING


# -- refused: 400 and nothing written ------------------------------------------------------


async def assert_refused(response: Any, status: int, code: str, call: Call) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["code"] == code and response.json()["error"]
    assert await WebhookEvent.objects.acount() == 0
    assert (await refreshed(call)).status == CallStatus.DIALING


async def test_webhook__signed_with_another_key_is_refused(key, call) -> None:
    forged = await post(SigningKey.generate(), event("call.answered", call))
    await assert_refused(forged, 400, "invalid_signature", call)


async def test_webhook__body_changed_after_signing_is_refused(key, call) -> None:
    raw = json.dumps(event("call.answered", call)).encode()
    headers = sign(key, raw)
    tampered = raw.replace(b"call.answered", b"call.hangup")
    response = await AsyncClient().post(
        URL, data=tampered, content_type="application/json", headers=headers
    )
    await assert_refused(response, 400, "invalid_signature", call)


@pytest.mark.parametrize(
    "offset", [-310, 310, -86400]
)  # clear of the 300 s edge by more than a slow test takes
async def test_webhook__stale_or_future_timestamp_is_refused(key, call, offset) -> None:
    response = await post(key, event("call.answered", call), stamp=int(time.time()) + offset)
    await assert_refused(response, 400, "stale_timestamp", call)


async def test_webhook__timestamp_within_window_is_accepted(key, call) -> None:
    response = await post(key, event("call.answered", call), stamp=int(time.time()) - 290)
    assert response.status_code == 204


@pytest.mark.parametrize(
    "drop", ["telnyx-signature-ed25519", "telnyx-timestamp", "both"], ids=lambda d: d
)
async def test_webhook__missing_headers_are_refused(key, call, drop) -> None:
    raw = json.dumps(event("call.answered", call)).encode()
    headers = {k: v for k, v in sign(key, raw).items() if drop not in (k, "both")}
    response = await AsyncClient().post(
        URL, data=raw, content_type="application/json", headers=headers
    )
    await assert_refused(response, 400, "invalid_signature", call)


@pytest.mark.parametrize(
    ("signature", "stamp"),
    [("not base64!", None), (base64.b64encode(b"short").decode(), None), (None, "12:00")],
)
async def test_webhook__malformed_headers_are_refused(key, call, signature, stamp) -> None:
    raw = json.dumps(event("call.answered", call)).encode()
    headers = sign(key, raw)
    if signature is not None:
        headers["telnyx-signature-ed25519"] = signature
    if stamp is not None:
        headers["telnyx-timestamp"] = stamp
    response = await AsyncClient().post(
        URL, data=raw, content_type="application/json", headers=headers
    )
    await assert_refused(response, 400, "invalid_signature", call)


@pytest.mark.parametrize("public_key", ["", "not-a-key", base64.b64encode(b"x" * 16).decode()])
async def test_webhook__without_a_usable_public_key_everything_is_refused(
    key, call, settings, public_key
) -> None:
    settings.TELNYX_PUBLIC_KEY = public_key
    response = await post(key, event("call.answered", call))
    await assert_refused(response, 400, "invalid_signature", call)


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"[]",
        b'{"data": {"event_type": "call.answered"}}',
        b'{"data": {"id": "x"}}',
        b'{"data": {"id": 5, "event_type": "call.answered"}}',
        b'{"data": "nope"}',
        json.dumps({"data": {"id": "x" * 65, "event_type": "call.answered"}}).encode(),
    ],
    ids=["bad-json", "array", "no-id", "no-type", "int-id", "data-string", "long-id"],
)
async def test_webhook__signed_but_malformed_body_is_refused(key, call, raw) -> None:
    await assert_refused(await post(key, raw), 400, "invalid_request", call)


async def test_webhook__oversized_body_is_refused(key, call, settings) -> None:
    body = event("call.answered", call, padding="x" * (256 * 1024))
    await assert_refused(await post(key, body), 413, "invalid_request", call)


async def test_webhook__only_post(key) -> None:
    response = await AsyncClient().get(URL)
    assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"


# -- end to end: sandbox -> daphne -> database ----------------------------------------------


async def test_webhook__end_to_end_sandbox_daphne_worker(
    telnyx, worker_env, start_worker, procs
) -> None:
    port = free_port()
    web = procs.start(
        [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "config.asgi:application",
        ],
        env={**worker_env, "TELNYX_PUBLIC_KEY": telnyx.public_key},
        name="daphne",
    )

    def web_up() -> bool:
        try:
            return (
                httpx.get(f"http://127.0.0.1:{port}/api/webrtc/status", timeout=1).status_code > 0
            )
        except httpx.HTTPError:
            return web.poll() is not None

    assert await asyncio.to_thread(wait_for, web_up, timeout=20), procs.output(web)
    assert web.poll() is None, procs.output(web)
    # The agent leg rings the agent's WebRTC login (a Verto client standing in for the
    # page, answering it); the customer leg follows the sandbox's timetable: answered
    # 0.3 s after it is dialled, hung up by the customer 3 s later.
    telnyx.set_webhooks(initiated_after=0.05, answer_after=0.3, talk_time=3)
    start_worker(env={"TELNYX_WEBHOOK_URL": f"http://127.0.0.1:{port}{URL}"})
    user = await get_user_model().objects.acreate_user("caller")
    login = await get_telephony_service().agenerate_credential(user)

    seen: list[str] = []
    async with aiohttp.ClientSession() as http:
        agent = await VertoClient.connect(http, telnyx.ready["rtc_url"])
        try:
            await agent.login(login["token"])
            created = await get_telephony_service().amake_call(user, "+12025550143")
            await agent.answer(await agent.expect("telnyx_rtc.invite"))
            for _ in range(200):
                row = await Call.objects.aget(pk=created["id"])
                if not seen or seen[-1] != row.status:
                    seen.append(row.status)
                # Both legs' hangups are in once the side is known: whichever webhook
                # lands first ends the call, the customer leg's says who hung up.
                if row.is_terminal and row.hangup_side:
                    break
                await asyncio.sleep(0.05)
        finally:
            await agent.close()
    assert row.status == CallStatus.COMPLETED, (seen, procs.output(web))
    assert "answered" in seen and seen.index("answered") > seen.index("ringing"), seen
    assert row.agent_call_control_id and row.call_control_id
    assert row.agent_answered_at and row.ringing_at and row.agent_answered_at <= row.ringing_at
    assert row.answered_at and row.ended_at and row.ended_at > row.answered_at
    assert row.duration_seconds is not None and 2 <= row.duration_seconds <= 4
    assert (row.hangup_cause, row.hangup_side) == ("normal_clearing", "customer")
    dials = [e for e in telnyx.log() if e["operation"] == "DialCall" and e.get("executed")]
    assert len(dials) == 2  # the agent leg, then the customer leg
    for leg in (row.agent_call_control_id, row.call_control_id):
        deliveries = telnyx.webhooks(leg)
        assert [d["event_type"] for d in deliveries][:2] == ["call.initiated", "call.answered"]
        assert deliveries[-1]["event_type"] == "call.hangup"
        assert {d["status"] for d in deliveries} == {204}

    def both_legs_ended() -> bool:
        r = Call.objects.get(pk=row.pk)
        return r.agent_ended_at is not None and r.customer_ended_at is not None

    # Whichever leg hung up first, the worker ended the other one.
    assert await asyncio.to_thread(wait_for, both_legs_ended, timeout=10)
    stored = [e.event_type async for e in WebhookEvent.objects.filter(call_id=row.id)]
    assert stored.count("call.hangup") == 2 and stored.count("call.answered") == 2
