"""Call recording in the sandbox, served in process: record actions, files, URLs, REST, faults.

Calls here are dialled to numbers (no WebRTC agent), so the files are silent; the audio
capture itself is tested in test_recorder.py, and with a real agent peer in
test_recordings_media.py.
"""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from devserver.sandbox.config import SandboxConfig
from devserver.sandbox.faults import FaultRule
from devserver.sandbox.server import Sandbox
from devserver.sandbox.webhooks import WebhookSettings

from .helpers import assert_error
from .rtc_client import until

pytestmark = pytest.mark.timeout(30)
TIMING = WebhookSettings(initiated_after=0.01, answer_after=0.05, talk_time=60)
Client = TestClient[Any, Any]


@pytest.fixture
async def box(tmp_path: Any) -> AsyncIterator[tuple[Sandbox, Client]]:
    """A sandbox served in process, recordings under ``tmp_path``."""
    sandbox = Sandbox(SandboxConfig(webhook=TIMING, recordings_dir=tmp_path / "rec"))
    async with TestClient(TestServer(sandbox.app())) as client:
        sandbox.port = client.port or 0
        yield sandbox, client


def auth(sandbox: Sandbox) -> dict[str, str]:
    return {"Authorization": f"Bearer {sandbox.config.api_key}"}


async def dial(sandbox: Sandbox, client: Client, **kw: Any) -> dict[str, Any]:
    """Dial a number and wait until it is answered; returns the Dial's data."""
    body = {"connection_id": sandbox.seed.call_connection_id, "to": "+15557654321"}
    body["from"] = sandbox.seed.from_number
    resp = await client.post("/v2/calls", json=body | kw, headers=auth(sandbox))
    assert resp.status == 200, await resp.text()
    data: dict[str, Any] = (await resp.json())["data"]
    call = sandbox.store.calls[data["call_control_id"]]

    async def answered() -> bool:
        return call.state == "answered"

    await until(answered, timeout=5, what="answer")
    return data


async def action(
    sandbox: Sandbox, client: Client, call_id: str, name: str, **body: Any
) -> tuple[int, Any]:
    resp = await client.post(
        f"/v2/calls/{call_id}/actions/{name}", json=body, headers=auth(sandbox)
    )
    return resp.status, await resp.json()


async def saved(sandbox: Sandbox, call_id: str, kind: str = "call.recording.saved") -> Any:
    async def find() -> Any:
        for d in sandbox.webhooks.deliveries:
            if d["call_control_id"] == call_id and d["event_type"] == kind:
                return d["body"]["data"]
        return None

    return await until(find, timeout=5, what=kind)


async def test_record_from_answer__saved_after_hangup_with_a_signed_wav(
    box: tuple[Sandbox, Client],
) -> None:
    sandbox, client = box
    data = await dial(
        sandbox, client, record="record-from-answer", record_format="wav", client_state="YQ=="
    )
    call_id = data["call_control_id"]
    assert data["recording_id"]
    await asyncio.sleep(0.3)
    status, _ = await action(sandbox, client, call_id, "hangup")
    assert status == 200
    event = await saved(sandbox, call_id)
    kinds = [
        d["event_type"] for d in sandbox.webhooks.deliveries if d["call_control_id"] == call_id
    ]
    assert kinds.index("call.hangup") < kinds.index("call.recording.saved")
    payload = event["payload"]
    assert payload["recording_id"] == data["recording_id"]
    assert payload["channels"] == "dual" and payload["client_state"] == "YQ=="
    assert payload["recording_urls"]["mp3"] is None
    url = payload["recording_urls"]["wav"]
    resp = await client.get(url[url.index("/files/") :])  # no API key
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "audio/wav"
    raw = await resp.read()
    assert int(resp.headers["Content-Length"]) == len(raw)
    with wave.open(io.BytesIO(raw)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 48000, 2)
        assert 0.2 <= w.getnframes() / 48000 <= 1.5


async def test_record_actions__validated_like_call_control(box: tuple[Sandbox, Client]) -> None:
    sandbox, client = box
    call_id = (await dial(sandbox, client))["call_control_id"]
    status, body = await action(sandbox, client, call_id, "record_start", format="ogg")
    assert status == 422
    assert_error(body, code="10004", pointer="/channels")
    status, body = await action(sandbox, client, call_id, "record_stop")
    assert status == 422  # nothing to stop
    ok = {"format": "mp3", "channels": "single", "command_id": "c1"}
    assert (await action(sandbox, client, call_id, "record_start", **ok))[0] == 200
    assert (await action(sandbox, client, call_id, "record_start", **ok))[0] == 200  # repeat
    status, body = await action(
        sandbox, client, call_id, "record_start", format="mp3", channels="dual"
    )
    assert status == 422  # already recording
    for name in ("record_pause", "record_resume", "record_stop"):
        assert (await action(sandbox, client, call_id, name))[0] == 200
    status, body = await action(sandbox, client, "v3:nope", "record_stop")
    assert status == 404


async def test_record_start_fault__error_webhook_and_no_recording(
    box: tuple[Sandbox, Client],
) -> None:
    sandbox, client = box
    sandbox.faults.set(
        FaultRule.from_dict({"operation": "StartCallRecord", "recording_error": True})
    )
    call_id = (await dial(sandbox, client))["call_control_id"]
    assert (await action(sandbox, client, call_id, "record_start", format="wav", channels="dual"))[
        0
    ] == 200
    assert (await action(sandbox, client, call_id, "record_stop"))[0] == 200
    event = await saved(sandbox, call_id, "call.recording.error")
    assert event["payload"]["reason"] == "Internal server error"
    resp = await client.get("/v2/recordings", headers=auth(sandbox))
    assert (await resp.json())["data"] == []
    assert list((sandbox.recordings.directory).glob("*")) == []
