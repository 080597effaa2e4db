"""Signed recording URLs: no key needed, forged or expired ones refused, Range, faults."""

from __future__ import annotations

import time
from datetime import timedelta

import numpy as np
import pytest

from devserver.sandbox.downloads import byte_range
from devserver.sandbox.faults import FaultRule
from devserver.sandbox.rtc.audio import RATE, dominant_hz

from .recording_box import Box, auth, box, dial, event, local, recorded

pytestmark = pytest.mark.timeout(30)
__all__ = ["box"]


async def test_download__signature_expiry_and_range(box: Box) -> None:
    sandbox, client = box
    payload = await recorded(sandbox, client, "wav")
    url = local(payload["recording_urls"]["wav"])
    whole = await (await client.get(url)).read()
    assert len(whole) > 1000

    forged = url.replace("signature=", "signature=0")
    assert (await client.get(forged)).status == 403
    other = url.replace(payload["recording_id"], "3fa85f64-5717-4562-b3fc-2c963f66afa6")
    assert (await client.get(other)).status == 403  # the signature covers the name
    assert (await client.get(url.split("?")[0])).status == 403

    part = await client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status == 206
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(whole)}"
    assert part.headers["Content-Length"] == "100"
    assert await part.read() == whole[100:200]
    tail = await client.get(url, headers={"Range": "bytes=-10"})
    assert await tail.read() == whole[-10:]
    rest = await client.get(url, headers={"Range": f"bytes={len(whole) - 5}-"})
    assert (rest.status, await rest.read()) == (206, whole[-5:])
    beyond = await client.get(url, headers={"Range": f"bytes={len(whole)}-"})
    assert beyond.status == 416
    assert beyond.headers["Content-Range"] == f"bytes */{len(whole)}"

    sandbox.store.offset = timedelta(seconds=601)  # ten minutes later
    assert (await client.get(url)).status == 403
    fresh = await client.get(f"/v2/recordings/{payload['recording_id']}", headers=auth(sandbox))
    again = local((await fresh.json())["data"]["download_urls"]["wav"])
    assert await (await client.get(again)).read() == whole


async def test_urls_expired_fault__saved_webhook_urls_are_dead_but_retrieve_works(
    box: Box,
) -> None:
    sandbox, client = box
    rule = {"operation": "StartCallRecord", "recording_urls_expired": True}
    sandbox.faults.set(FaultRule.from_dict(rule))
    payload = await recorded(sandbox, client, "mp3")
    assert (await client.get(local(payload["recording_urls"]["mp3"]))).status == 403
    fresh = await client.get(f"/v2/recordings/{payload['recording_id']}", headers=auth(sandbox))
    url = local((await fresh.json())["data"]["download_urls"]["mp3"])
    assert (await client.get(url)).status == 200


async def test_cut_fault__closes_after_n_bytes_then_a_range_resumes(box: Box) -> None:
    sandbox, client = box
    payload = await recorded(sandbox, client, "wav")
    url = local(payload["recording_urls"]["wav"])
    whole = await (await client.get(url)).read()
    rule = {"operation": "DownloadRecording", "download_cut_after": 1000, "count": 1}
    sandbox.faults.set(FaultRule.from_dict(rule))
    resp = await client.get(url)
    assert resp.status == 200 and resp.headers["Content-Length"] == str(len(whole))
    got = bytearray()
    with pytest.raises(Exception):  # noqa: B017 - aiohttp's payload error for a cut body
        async for chunk in resp.content.iter_any():
            got += chunk
    assert bytes(got) == whole[: len(got)] and len(got) <= 1000
    rest = await client.get(url, headers={"Range": f"bytes={len(got)}-"})
    assert bytes(got) + await rest.read() == whole
    log = [(e["range"], e["status"], e["bytes"], e["fault"]) for e in sandbox.downloads.log]
    assert log == [
        (None, 200, len(whole), None),
        (None, 200, 1000, "download_cut_after=1000"),
        (f"bytes={len(got)}-", 206, len(whole) - len(got), None),
    ]


async def test_slow_fault__throttles_the_download(box: Box) -> None:
    sandbox, client = box
    payload = await recorded(sandbox, client, "wav")
    url = local(payload["recording_urls"]["wav"])
    rule = {"operation": "DownloadRecording", "download_bytes_per_s": 20000, "count": 1}
    sandbox.faults.set(FaultRule.from_dict(rule))
    started = time.monotonic()
    part = await client.get(url, headers={"Range": "bytes=0-9999"})
    assert len(await part.read()) == 10000
    assert time.monotonic() - started >= 0.4  # 10 kB at 20 kB/s: half a second
    started = time.monotonic()
    await (await client.get(url, headers={"Range": "bytes=0-9999"})).read()
    assert time.monotonic() - started < 0.4  # count=1: spent


def test_download_faults__parse_and_scope() -> None:
    rule = FaultRule.parse("DownloadRecording:download_cut_after=10,download_bytes_per_s=5")
    assert (rule.download_cut_after, rule.download_bytes_per_s) == (10, 5)
    assert FaultRule.parse("DialCall:recording_error").recording_error is True
    for bad in (
        "DialCall:download_cut_after=10",
        "HangupCall:recording_error",
        "DownloadRecording:download_bytes_per_s=0",
        "StartCallRecord:outcome=busy",
    ):
        with pytest.raises(ValueError):
            FaultRule.parse(bad)


def test_byte_range__forms() -> None:
    assert byte_range(None, 10) is None
    assert byte_range("bytes=2-4", 10) == (2, 4)
    assert byte_range("bytes=2-", 10) == (2, 9)
    assert byte_range("bytes=-3", 10) == (7, 9)
    assert byte_range("bytes=5-100", 10) == (5, 9)
    assert byte_range("bytes=0-1,4-5", 10) is None  # several ranges: the whole file


async def test_made_recording__long_file_at_once_and_a_range_from_its_middle(box: Box) -> None:
    sandbox, client = box
    call_id = (await dial(sandbox, client))["call_control_id"]
    body = {"call_control_id": call_id, "seconds": 60, "format": "wav"}
    made = await client.post("/_sandbox/recordings", json=body)
    assert made.status == 201
    rec = await made.json()
    assert (rec["status"], rec["duration_millis"]) == ("completed", 60000)
    assert rec["size"] == 44 + 60 * RATE * 4  # 16-bit stereo
    payload = (await event(sandbox, call_id))["payload"]
    assert payload["recording_id"] == rec["id"]
    second = 4 * RATE  # bytes per second of audio
    start = 44 + 30 * second
    url = local(payload["recording_urls"]["wav"])
    part = await client.get(url, headers={"Range": f"bytes={start}-{start + second - 1}"})
    assert part.status == 206
    samples = np.frombuffer(await part.read(), dtype="<i2").reshape(-1, 2).T / 32767
    assert abs((dominant_hz(samples[0]) or 0) - 600) < 5  # the agent, left
    assert abs((dominant_hz(samples[1]) or 0) - 1000) < 5  # the customer, right
    head = await client.head(url)
    assert head.status == 200 and head.headers["Content-Length"] == str(rec["size"])
    bad = await client.post("/_sandbox/recordings", json={"call_control_id": call_id, "seconds": 0})
    assert bad.status == 400
    unknown = await client.post("/_sandbox/recordings", json={"call_control_id": "v3:x"})
    assert unknown.status == 404


async def test_record_from_answer__never_answered_is_no_recording(box: Box) -> None:
    sandbox, client = box
    sandbox.webhooks.settings.answer = False
    body = {"connection_id": sandbox.seed.call_connection_id, "to": "+15557654321"}
    body |= {"from": sandbox.seed.from_number, "record": "record-from-answer"}
    resp = await client.post("/v2/calls", json=body, headers=auth(sandbox))
    call_id = (await resp.json())["data"]["call_control_id"]
    assert (
        await client.post(f"/v2/calls/{call_id}/actions/hangup", json={}, headers=auth(sandbox))
    ).status == 200
    await event(sandbox, call_id, "call.hangup")
    assert [r.status for r in sandbox.recordings.items.values()] == ["canceled"]
    listed = await (await client.get("/v2/recordings", headers=auth(sandbox))).json()
    assert listed["data"] == []
    kinds = {d["event_type"] for d in sandbox.webhooks.deliveries}
    assert "call.recording.saved" not in kinds
