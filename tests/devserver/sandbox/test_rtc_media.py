"""Agent leg + customer leg with real media: ringback, bridge, tone, echo, hold, cascade, faults.

The "agent" is a Python aiortc peer sending 600 Hz (rtc_client.py); the sandbox's
simulated customer plays 1000 Hz. Both ends measure what they receive.
"""

from __future__ import annotations

import asyncio
import io
import time
import wave
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import numpy as np
import pytest

from devserver.sandbox.control import SandboxProcess
from devserver.sandbox.faults import FaultRule, FaultTable
from devserver.sandbox.rtc.audio import RATE, dominant_hz

from .rtc_client import Api, VertoClient, until

pytestmark = pytest.mark.timeout(60)
CUSTOMER = "+15557654321"


@pytest.fixture
async def api(sandbox: SandboxProcess) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(timeout=10) as client:
        api = Api(sandbox, client)
        await api.control("POST", "webhooks", {"answer_after": 0.3, "talk_time": 60})
        yield api


@pytest.fixture
async def agent(api: Api, sandbox: SandboxProcess) -> AsyncIterator[dict[str, Any]]:
    """A logged-in client that has answered an agent leg: {client, leg, call_id}."""
    cred, token = await api.token()
    async with aiohttp.ClientSession() as http:
        client = await VertoClient.connect(http, sandbox.ready["rtc_url"])
        try:
            await client.login(token)
            resp = await api.dial(f"sip:{cred['sip_username']}@sip.telnyx.com")
            leg = resp.json()["data"]["call_control_id"]
            invite = await client.expect("telnyx_rtc.invite")
            assert "result" in await client.answer(invite)
            yield {"client": client, "leg": leg, "call_id": invite["params"]["callID"]}
        finally:
            await client.close()


def near(value: float | None, target: float, tolerance: float = 15) -> bool:
    return value is not None and abs(value - target) <= tolerance


async def report(api: Api, leg: str) -> dict[str, Any]:
    data: dict[str, Any] = await api.control("GET", f"rtc/calls/{leg}")
    return data


async def test_rtc_media__ringback_then_bridged_tone_and_echo(
    api: Api, agent: dict[str, Any]
) -> None:
    client: VertoClient = agent["client"]
    leg = agent["leg"]
    await until(
        lambda: _async(near(client.heard.report()["dominant_hz"], 460, 25)), what="ringback"
    )
    assert (await report(api, leg))["source"] == "ringback"
    resp = await api.dial(CUSTOMER, link_to=leg, bridge_on_answer=True)
    customer = resp.json()["data"]
    bridged = [await api.wait_event(c, "call.bridged") for c in (leg, customer["call_control_id"])]
    assert bridged[0]["call_session_id"] == bridged[1]["call_session_id"]
    assert customer["call_session_id"] == bridged[0]["call_session_id"]

    async def customer_hears_agent() -> bool:
        heard = (await report(api, customer["call_control_id"]))["customer_hears"]
        return near(heard["dominant_hz"], 600, 5) and heard["rms"] > 0.05

    await until(customer_hears_agent, what="the customer to hear 600 Hz")
    await until(
        lambda: _async(near(client.heard.report()["dominant_hz"], 1000, 5)),
        what="the agent to hear the 1000 Hz tone",
    )
    assert (await report(api, leg))["source"] == "customer"


async def test_rtc_media__hold_mutes_both_ways(api: Api, agent: dict[str, Any]) -> None:
    client: VertoClient = agent["client"]
    leg = agent["leg"]
    await api.dial(CUSTOMER, link_to=leg, bridge_on_answer=True)
    await api.wait_event(leg, "call.bridged")
    await until(lambda: _async(client.heard.report()["rms"] > 0.05), what="customer audio")
    reply = await client.dialog("telnyx_rtc.modify", agent["call_id"], action="hold")
    assert reply["result"]["holdState"] == "held"

    async def silent() -> bool:
        heard = (await report(api, leg))["customer_hears"]
        return heard["rms"] < 0.001 and client.heard.report()["rms"] < 0.001

    await until(silent, what="silence both ways on hold")
    await client.dialog("telnyx_rtc.modify", agent["call_id"], action="unhold")
    await until(lambda: _async(client.heard.report()["rms"] > 0.05), what="audio after unhold")


async def test_rtc_media__bridged_hangup_hangs_up_the_other_leg(
    api: Api, agent: dict[str, Any]
) -> None:
    """The spec: without park_after_unbridge, a leg is hung up when its bridge ends."""
    client: VertoClient = agent["client"]
    leg = agent["leg"]
    resp = await api.dial(CUSTOMER, link_to=leg, bridge_on_answer=True)
    customer = resp.json()["data"]["call_control_id"]
    await api.wait_event(leg, "call.bridged")
    assert (await api.hangup(customer)).status_code == 200
    bye = await client.expect("telnyx_rtc.bye")
    assert bye["params"]["callID"] == agent["call_id"]
    ours = await api.wait_event(customer, "call.hangup")
    theirs = await api.wait_event(leg, "call.hangup")
    assert (ours["hangup_cause"], ours["hangup_source"]) == ("normal_clearing", "caller")
    assert (theirs["hangup_cause"], theirs["hangup_source"]) == ("normal_clearing", "caller")
    assert (await api.hangup(leg)).status_code == 422  # the worker's late hangup: call ended


async def test_rtc_media__busy_customer_leaves_the_agent_leg_up(
    api: Api, agent: dict[str, Any]
) -> None:
    leg = agent["leg"]
    await api.control("POST", "faults", {"operation": "DialCall", "outcome": "busy", "count": 1})
    resp = await api.dial(CUSTOMER, link_to=leg, bridge_on_answer=True)
    customer = resp.json()["data"]["call_control_id"]
    hangup = await api.wait_event(customer, "call.hangup")
    assert (hangup["hangup_cause"], hangup["sip_hangup_cause"]) == ("user_busy", "486")
    state = await api.client.get(f"{api.sandbox.base_url}/calls/{leg}", headers=api.auth)
    assert state.json()["data"]["is_alive"] is True
    log = await api.control("GET", "log")
    assert log[-1]["fault"] is None and "outcome=busy" in [e["fault"] for e in log]


async def test_rtc_media__media_stop_fault_stops_rtp(api: Api, sandbox: SandboxProcess) -> None:
    await api.control("POST", "faults", {"operation": "DialCall", "media_stop_after": 0.5})
    cred, token = await api.token()
    async with aiohttp.ClientSession() as http:
        client = await VertoClient.connect(http, sandbox.ready["rtc_url"])
        try:
            await client.login(token)
            resp = await api.dial(f"sip:{cred['sip_username']}@sip.telnyx.com")
            leg = resp.json()["data"]["call_control_id"]
            await client.answer(await client.expect("telnyx_rtc.invite"))
            await until(lambda: _async(client.heard.frames > 0), what="first RTP")
            await until(lambda: _stable(lambda: client.heard.frames), what="RTP to stop")
            assert (await report(api, leg))["media_stopped"] is True
            before = client.heard.frames
            await api.control("POST", f"rtc/calls/{leg}/media", {"stopped": False})
            await until(lambda: _async(client.heard.frames > before + 10), what="RTP again")
        finally:
            await client.close()


async def test_rtc_media__recording_has_the_agent_left_and_the_customer_right(
    api: Api, agent: dict[str, Any], sandbox: SandboxProcess
) -> None:
    fmt = "wav"  # MP3 is checked the same way in test_recorder.py
    await api.control("POST", "rtc", {"echo_gain": 0})  # the right channel: the tone alone
    leg = agent["leg"]
    resp = await api.dial(
        CUSTOMER, link_to=leg, bridge_on_answer=True, record="record-from-answer", record_format=fmt
    )
    customer = resp.json()["data"]
    await api.wait_event(leg, "call.bridged")
    await asyncio.sleep(1.2)  # a second of conversation to record
    assert (await api.hangup(customer["call_control_id"])).status_code == 200
    saved = await api.wait_event(customer["call_control_id"], "call.recording.saved")
    assert saved["recording_id"] == customer["recording_id"]
    download = await api.client.get(saved["recording_urls"][fmt])  # no API key
    assert download.status_code == 200
    with wave.open(io.BytesIO(download.content)) as w:
        assert w.getnchannels() == 2
        raw = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2).T
    assert raw.shape[1] >= RATE  # as long as the recording ran
    left, right = (raw[:, RATE // 4 : RATE] / 32767).astype(np.float64)
    assert near(dominant_hz(left), 600, 5), dominant_hz(left)  # the agent, channel 1
    assert near(dominant_hz(right), 1000, 5), dominant_hz(right)  # the customer, channel 2
    assert sandbox.wait_recording(customer["call_control_id"])["file_channels"] == 2
    served = sandbox.downloads()[-1]
    assert (served["recording_id"], served["status"]) == (customer["recording_id"], 200)
    assert served["bytes"] == len(download.content)


async def test_rtc_media__recording_of_an_agent_without_audio_is_silent_on_the_left(
    api: Api, agent: dict[str, Any], sandbox: SandboxProcess
) -> None:
    client: VertoClient = agent["client"]
    assert client.pc is not None
    await client.pc.close()  # the agent answered, then sends nothing
    leg = agent["leg"]
    resp = await api.dial(
        CUSTOMER,
        link_to=leg,
        bridge_on_answer=True,
        record="record-from-answer",
        record_format="wav",
    )
    customer = resp.json()["data"]["call_control_id"]
    await api.wait_event(leg, "call.bridged")
    await asyncio.sleep(0.5)  # half a second to record
    assert (await api.hangup(customer)).status_code == 200
    saved = await api.wait_event(customer, "call.recording.saved")
    download = await api.client.get(saved["recording_urls"]["wav"])
    with wave.open(io.BytesIO(download.content)) as w:
        assert (w.getnchannels(), w.getframerate()) == (2, RATE)
        assert w.getnframes() >= RATE * 0.4  # as long as the recording ran
        left = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)[:, 0]
    assert not left.any()  # no agent audio: silence, still a valid file


async def _async(value: Any) -> Any:
    return value


async def _stable(read: Any, polls: int = 10) -> bool:
    """True when ``read()`` did not change over ``polls`` polls 50 ms apart."""
    first = read()
    start = time.monotonic()
    for _ in range(polls):
        await asyncio.sleep(0.05)
        if read() != first:
            return False
    return time.monotonic() - start > 0.4


def test_rtc_media__call_fault_rules_parse_and_validate() -> None:
    rule = FaultRule.parse("DialCall:outcome=busy,media_stop_after=2.5,drop_after=1,count=1")
    assert (rule.outcome, rule.media_stop_after, rule.drop_after) == ("busy", 2.5, 1.0)
    for bad in ("DialCall:outcome=maybe", "HangupCall:outcome=busy", "DialCall:drop_after=-1"):
        with pytest.raises(ValueError):
            FaultRule.parse(bad)
    table = FaultTable()
    table.set(rule)
    decision = table.decide("DialCall")
    assert decision.label is None  # the Dial itself is answered normally
    assert decision.call_label == "drop_after=1.0,media_stop_after=2.5,outcome=busy"
    assert table.decide("DialCall").call_label is None  # count=1 spent
