"""``call.recording.saved`` / ``call.recording.error`` on the web side: signed webhooks in,
one ``Recording`` row per recording, one ``recording.fetch`` to the workers, no URL in logs."""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from datetime import timedelta
from typing import Any

import pytest
from channels.layers import get_channel_layer

from telephony.legs import Leg, encode_client_state
from telephony.models import Call, Recording, RecordingStatus, WebhookEvent
from telephony.protocol import CHANNEL, Request
from telephony.web.recording_events import FETCH_NAMESPACE
from tests.telephony.test_webhooks import T0, event, post

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]

SECRET_URL = "https://recordings.example/r/abc.mp3?X-Signature=s3cr3t-signature"


def saved(c: Call | None, **payload: Any) -> dict[str, Any]:
    """A call.recording.saved shaped like the spec's CallRecordingSaved (no call_control_id)."""
    fields: dict[str, Any] = {
        "call_leg_id": "leg-9",
        "call_session_id": "sess-9",
        "channels": "dual",
        "recording_started_at": "2030-01-01T12:00:05Z",
        "recording_ended_at": "2030-01-01T12:01:06.5Z",
        "recording_urls": {"mp3": SECRET_URL, "wav": None},
        "public_recording_urls": {},
    }
    body = event("call.recording.saved", at=T0 + timedelta(seconds=70), **(fields | payload))
    del body["data"]["payload"]["call_control_id"], body["data"]["payload"]["start_time"]
    if c is not None:
        body["data"]["payload"]["client_state"] = encode_client_state(c.id, Leg.CUSTOMER)
    return body


async def fetch_request() -> Request:
    message = await asyncio.wait_for(get_channel_layer().receive(CHANNEL), 2)
    return Request.decode(message)


async def test_saved__creates_a_pending_row_linked_to_the_call_and_asks_a_worker(
    key, call, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    body = saved(call, recording_id="rec-42")

    assert (await post(key, body)).status_code == 204

    row = await Recording.objects.aget()
    assert row.call_id == call.id and row.telnyx_recording_id == "rec-42"
    assert (row.status, row.format, row.channels) == (RecordingStatus.PENDING, "mp3", "dual")
    assert (row.call_leg_id, row.call_session_id) == ("leg-9", "sess-9")
    assert row.duration_seconds == 61.5
    request = await fetch_request()
    assert request.op == "recording.fetch"
    assert request.request_id == str(uuid.uuid5(FETCH_NAMESPACE, body["data"]["id"]))
    assert request.payload["recording_id"] == str(row.id) and request.payload["url"] == SECRET_URL
    assert request.payload["url_expires_at"] == (T0 + timedelta(seconds=670)).timestamp()
    assert "s3cr3t" not in caplog.text


async def test_saved__replay_makes_one_row_and_one_request(key, call) -> None:
    body = saved(call, recording_id="rec-42")
    assert (await post(key, body)).status_code == 204
    assert (await post(key, body)).status_code == 204
    assert await Recording.objects.acount() == 1 and await WebhookEvent.objects.acount() == 1
    first = await fetch_request()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(get_channel_layer().receive(CHANNEL), 0.3)
    # Another delivery of the same recording (another event id): still one row; it may
    # hand the workers a fresher link, and the row's lease makes a second fetch a no-op.
    assert (await post(key, saved(call, recording_id="rec-42"))).status_code == 204
    assert await Recording.objects.acount() == 1
    assert (await fetch_request()).payload["recording_id"] == first.payload["recording_id"]


async def test_saved__stored_recording_is_not_fetched_again(key, call) -> None:
    assert (await post(key, saved(call, recording_id="rec-42"))).status_code == 204
    await fetch_request()
    await Recording.objects.aupdate(status=RecordingStatus.STORED)
    assert (await post(key, saved(call, recording_id="rec-42"))).status_code == 204
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(get_channel_layer().receive(CHANNEL), 0.3)


async def test_saved__without_recording_id_is_keyed_by_leg_and_start(key, call) -> None:
    assert (await post(key, saved(call))).status_code == 204
    assert (await post(key, saved(call))).status_code == 204  # another delivery
    row = await Recording.objects.aget()
    assert row.telnyx_recording_id == "leg:leg-9:2030-01-01T12:00:05+00:00"


async def test_saved__found_by_session_when_client_state_is_not_ours(key, call) -> None:
    await Call.objects.filter(pk=call.pk).aupdate(call_session_id="sess-9")
    body = saved(None, recording_id="rec-1", client_state=base64.b64encode(b"other").decode())
    assert (await post(key, body)).status_code == 204
    assert (await Recording.objects.aget()).call_id == call.id


async def test_saved__unknown_call_gets_a_row_and_is_acknowledged(key) -> None:
    assert (await post(key, saved(None, recording_id="rec-orphan"))).status_code == 204
    row = await Recording.objects.aget()
    assert row.call_id is None and row.status == RecordingStatus.PENDING
    assert (await fetch_request()).payload["recording_id"] == str(row.id)


async def test_saved__prefers_the_configured_format(key, call, settings) -> None:
    settings.TELEPHONY_RECORDING_FORMAT = "wav"
    urls = {"mp3": SECRET_URL, "wav": SECRET_URL + "&wav"}
    assert (await post(key, saved(call, recording_id="r", recording_urls=urls))).status_code == 204
    assert (await Recording.objects.aget()).format == "wav"
    assert (await fetch_request()).payload["url"].endswith("&wav")


async def test_error__is_recorded_on_the_call_and_recording_is_off(key, call) -> None:
    await Call.objects.filter(pk=call.pk).aupdate(is_recording=True)
    body = event("call.recording.error", call, reason="Internal server error")
    assert (await post(key, body)).status_code == 204
    row = await Call.objects.aget(pk=call.pk)
    assert (row.recording_error, row.is_recording) == ("Internal server error", False)
    assert await Recording.objects.acount() == 0


async def test_error__for_an_unknown_call_is_acknowledged(key) -> None:
    body = event("call.recording.error", reason="Unsupported backend")
    body["data"]["payload"]["call_control_id"] = "v3:nobody"
    assert (await post(key, body)).status_code == 204
    assert await WebhookEvent.objects.acount() == 1
