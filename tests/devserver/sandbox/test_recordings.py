"""Call recording in the sandbox, served in process: record actions, webhooks, REST.

Calls here are dialled to numbers (no WebRTC agent), so the files are silent; the audio
capture is tested in test_recorder.py, and with a real agent peer in test_rtc_media.py.
"""

from __future__ import annotations

import asyncio
import io
import wave

import pytest
from aiohttp.test_utils import TestClient, TestServer

from devserver.sandbox.config import SandboxConfig
from devserver.sandbox.faults import FaultRule
from devserver.sandbox.server import Sandbox

from .helpers import assert_error
from .recording_box import TIMING, Box, action, auth, box, dial, event, local, recorded

pytestmark = pytest.mark.timeout(30)
__all__ = ["box"]


async def test_record_from_answer__saved_after_hangup_with_a_signed_wav(box: Box) -> None:
    sandbox, client = box
    data = await dial(
        sandbox, client, record="record-from-answer", record_format="wav", client_state="YQ=="
    )
    call_id = data["call_control_id"]
    assert data["recording_id"]
    await asyncio.sleep(0.3)  # some audio
    assert (await action(sandbox, client, call_id, "hangup"))[0] == 200
    payload = (await event(sandbox, call_id))["payload"]
    kinds = [
        d["event_type"] for d in sandbox.webhooks.deliveries if d["call_control_id"] == call_id
    ]
    assert kinds.index("call.hangup") < kinds.index("call.recording.saved")
    assert payload["recording_id"] == data["recording_id"]
    assert payload["channels"] == "dual" and payload["client_state"] == "YQ=="
    assert payload["recording_urls"]["mp3"] is None
    resp = await client.get(local(payload["recording_urls"]["wav"]))  # no API key
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "audio/wav"
    raw = await resp.read()
    assert int(resp.headers["Content-Length"]) == len(raw)
    with wave.open(io.BytesIO(raw)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 48000, 2)
        assert 0.2 <= w.getnframes() / 48000 <= 1.5


async def test_record_actions__validated_like_call_control(box: Box) -> None:
    sandbox, client = box
    call_id = (await dial(sandbox, client))["call_control_id"]
    status, body = await action(sandbox, client, call_id, "record_start", format="ogg")
    assert status == 422
    assert_error(body, code="10004", pointer="/channels")
    status, body = await action(
        sandbox, client, call_id, "record_start", format="ogg", channels="dual"
    )
    assert status == 422
    assert_error(body, code="10032", pointer="/format")
    assert (await action(sandbox, client, call_id, "record_stop"))[0] == 422  # nothing to stop
    ok = {"format": "mp3", "channels": "single", "command_id": "c1"}
    assert (await action(sandbox, client, call_id, "record_start", **ok))[0] == 200
    assert (await action(sandbox, client, call_id, "record_start", **ok))[0] == 200  # repeat
    again = {"format": "mp3", "channels": "dual"}
    assert (await action(sandbox, client, call_id, "record_start", **again))[0] == 422
    for name in ("record_pause", "record_pause", "record_resume", "record_stop"):
        assert (await action(sandbox, client, call_id, name))[0] == 200
    assert (await action(sandbox, client, "v3:nope", "record_stop"))[0] == 404
    assert (await action(sandbox, client, call_id, "hangup"))[0] == 200
    status, body = await action(sandbox, client, call_id, "record_start", **again)
    assert_error(body, code="90018")


async def test_record_start__refused_before_answer(box: Box) -> None:
    sandbox, client = box
    sandbox.webhooks.settings.answer_after = 30
    body = {"connection_id": sandbox.seed.call_connection_id, "to": "+15557654321"}
    body["from"] = sandbox.seed.from_number
    resp = await client.post("/v2/calls", json=body, headers=auth(sandbox))
    call_id = (await resp.json())["data"]["call_control_id"]
    status, _ = await action(
        sandbox, client, call_id, "record_start", format="wav", channels="dual"
    )
    assert status == 422


async def test_recording_error_fault__error_webhook_and_no_recording(box: Box) -> None:
    sandbox, client = box
    rule = {"operation": "StartCallRecord", "recording_error": True, "count": 1}
    sandbox.faults.set(FaultRule.from_dict(rule))
    call_id = (await dial(sandbox, client))["call_control_id"]
    start = {"format": "wav", "channels": "dual"}
    assert (await action(sandbox, client, call_id, "record_start", **start))[0] == 200
    assert (await action(sandbox, client, call_id, "record_stop"))[0] == 200
    data = await event(sandbox, call_id, "call.recording.error")
    assert data["payload"]["reason"] == "Internal server error"
    resp = await client.get("/v2/recordings", headers=auth(sandbox))
    assert (await resp.json())["data"] == []
    assert list(sandbox.recordings.directory.glob("*")) == []


async def test_max_length__ends_the_recording(box: Box) -> None:
    sandbox, client = box
    call_id = (await dial(sandbox, client))["call_control_id"]
    start = {"format": "wav", "channels": "dual", "max_length": 1}
    assert (await action(sandbox, client, call_id, "record_start", **start))[0] == 200
    payload = (await event(sandbox, call_id))["payload"]
    rec = sandbox.recordings.items[payload["recording_id"]]
    assert rec.duration_millis == 1000
    assert sandbox.store.calls[call_id].is_alive  # the call goes on


async def test_rest__list_filter_retrieve_delete(box: Box) -> None:
    sandbox, client = box
    first = await recorded(sandbox, client, "wav")
    second = await recorded(sandbox, client, "mp3")
    h = auth(sandbox)
    listed = await (await client.get("/v2/recordings", headers=h)).json()
    assert [r["id"] for r in listed["data"]] == [second["recording_id"], first["recording_id"]]
    assert listed["meta"]["total_results"] == 2
    query = {"filter[call_control_id]": first["call_control_id"]}
    only = await (await client.get("/v2/recordings", params=query, headers=h)).json()
    assert [r["id"] for r in only["data"]] == [first["recording_id"]]
    item = only["data"][0]
    assert set(item["download_urls"]) == {"wav"} and item["status"] == "completed"
    assert item["channels"] == "dual" and item["duration_millis"] >= 250
    assert item["initiated_by"] == "StartCallRecordingAPI" and item["source"] == "call"
    paged = await (await client.get("/v2/recordings?page[size]=1&page[number]=2", headers=h)).json()
    assert [r["id"] for r in paged["data"]] == [first["recording_id"]]
    bad = await client.get("/v2/recordings?filter[created_at][gte]=yesterday", headers=h)
    assert bad.status == 400

    one = await client.get(f"/v2/recordings/{second['recording_id']}", headers=h)
    fresh = (await one.json())["data"]["download_urls"]["mp3"]
    resp = await client.get(local(fresh))
    assert resp.status == 200 and resp.headers["Content-Type"] == "audio/mpeg"
    gone = await client.delete(f"/v2/recordings/{second['recording_id']}", headers=h)
    assert gone.status == 200 and (await gone.json())["data"]["id"] == second["recording_id"]
    assert (await client.get(local(fresh))).status == 404  # the file went with it
    assert (await client.get(f"/v2/recordings/{second['recording_id']}", headers=h)).status == 404

    ids = {"ids": [first["recording_id"], "3fa85f64-5717-4562-b3fc-2c963f66afa6"]}
    missing = await client.post("/v2/recordings/actions/delete", json=ids, headers=h)
    assert missing.status == 404  # all or nothing
    ids["ids"] = [first["recording_id"]]
    done = await client.post("/v2/recordings/actions/delete", json=ids, headers=h)
    assert (done.status, await done.json()) == (200, {"status": "ok"})
    assert list(sandbox.recordings.directory.glob("*")) == []
    assert (await client.get("/v2/recordings", headers={})).status == 401


async def test_unwritable_directory__error_webhook(box: Box) -> None:
    sandbox, client = box
    sandbox.recordings.directory.parent.mkdir(parents=True, exist_ok=True)
    sandbox.recordings.directory.write_text("not a directory")
    call_id = (await dial(sandbox, client))["call_control_id"]
    start = {"format": "wav", "channels": "dual"}
    assert (await action(sandbox, client, call_id, "record_start", **start))[0] == 200
    assert (await action(sandbox, client, call_id, "record_stop"))[0] == 200
    await event(sandbox, call_id, "call.recording.error")
    assert [r.status for r in sandbox.recordings.items.values()] == ["failed"]


async def test_default_directory__made_at_the_first_recording_and_removed_at_stop() -> None:
    sandbox = Sandbox(SandboxConfig(webhook=TIMING))
    async with TestClient(TestServer(sandbox.app())) as client:
        assert sandbox.recordings._temp is None  # nothing made for a sandbox that never records
        payload = await recorded(sandbox, client, "wav")
        path = sandbox.recordings.items[payload["recording_id"]].path
        assert path is not None and path.exists()
    assert not path.parent.exists()
