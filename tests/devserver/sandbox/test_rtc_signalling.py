"""``/rtc``: login, ready, ping, invite/answer/bye, first answer wins, hold, DTMF.

A Python client speaks the SDK's frames to the session's real sandbox process and
answers with a real aiortc peer (see rtc_client.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import httpx
import pytest

from devserver.sandbox.control import SandboxProcess

from .rtc_client import Api, VertoClient, until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def api(sandbox: SandboxProcess) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield Api(sandbox, client)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def clients(
    http: aiohttp.ClientSession, sandbox: SandboxProcess
) -> AsyncIterator[list[VertoClient]]:
    """Open sockets, closed after the test."""
    opened: list[VertoClient] = []
    yield opened
    for client in opened:
        await client.close()


async def connect(
    http: aiohttp.ClientSession, sandbox: SandboxProcess, clients: list[VertoClient]
) -> VertoClient:
    client = await VertoClient.connect(http, sandbox.ready["rtc_url"])
    clients.append(client)
    return client


async def test_rtc__login_ready_and_ping(
    api: Api, http: aiohttp.ClientSession, sandbox: SandboxProcess, clients: list[VertoClient]
) -> None:
    cred, token = await api.token()
    client = await connect(http, sandbox, clients)
    reply = await client.login(token)  # also checks clientReady and gatewayState -> REGED
    assert reply["result"]["message"] == "logged in" and reply["result"]["sessid"]
    assert "params" not in reply["result"]  # a gateway state here would hide the reply
    pong = await client.call("telnyx_rtc.ping", {})
    assert pong["result"] == {"method": "telnyx_rtc.ping"}
    info = await api.control("GET", "rtc")
    assert info["sessions"] == [
        {"sessid": client.sessid, "sip_username": cred["sip_username"], "ready": True}
    ]


async def test_rtc__bad_logins_are_32001_with_a_reason(
    api: Api, http: aiohttp.ClientSession, sandbox: SandboxProcess, clients: list[VertoClient]
) -> None:
    cred, token = await api.token()
    client = await connect(http, sandbox, clients)
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[:-4]}AAAA"
    cases = [
        ({"login_token": forged}, "invalid_token"),
        ({"login_token": "not-a-jwt"}, "invalid_token"),
        ({}, "missing_credentials"),
        ({"login": cred["sip_username"], "passwd": "wrong"}, "invalid_password"),
    ]
    for params, reason in cases:
        reply = await client.call("login", params)
        assert reply["error"]["code"] == -32001, reply  # never -32000: the SDK would loop
        assert reply["error"]["data"]["reason"] == reason
    # a call request before any login: -32000, "authentication required"
    reply = await client.call("telnyx_rtc.gatewayState", {})
    assert reply["error"]["code"] == -32000
    # SIP username + password works too
    ok = await client.call("login", {"login": cred["sip_username"], "passwd": cred["sip_password"]})
    assert ok["result"]["sessid"]
    # a deleted credential's token, and an expired credential
    url = f"{sandbox.base_url}/telephony_credentials/{cred['id']}"
    assert (await api.client.delete(url, headers=api.auth)).status_code == 200
    reply = await client.call("login", {"login_token": token})
    assert reply["error"]["data"]["reason"] == "unknown_credential"
    cred2, token2 = await api.token()
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    url = f"{sandbox.base_url}/telephony_credentials/{cred2['id']}"
    resp = await api.client.patch(url, json={"expires_at": past}, headers=api.auth)
    assert resp.status_code == 200, resp.text
    reply = await client.call("login", {"login_token": token2})
    assert reply["error"]["data"]["reason"] in ("credential_expired", "token_expired")


async def test_rtc__invite_answer_and_browser_bye(
    api: Api, http: aiohttp.ClientSession, sandbox: SandboxProcess, clients: list[VertoClient]
) -> None:
    cred, token = await api.token()
    client = await connect(http, sandbox, clients)
    await client.login(token)
    state = "c3RhdGU="
    resp = await api.dial(f"sip:{cred['sip_username']}@sip.telnyx.com", client_state=state)
    leg = resp.json()["data"]["call_control_id"]
    invite = await client.expect("telnyx_rtc.invite")
    params = invite["params"]
    assert params["sdp"].startswith("v=0") and "m=audio" in params["sdp"]
    assert "a=candidate" in params["sdp"]  # complete offer, no trickle
    assert params["telnyx_call_control_id"] == leg and params["callee_id_number"]
    assert params["caller_id_number"] == sandbox.from_number
    reply = await client.answer(invite)
    assert reply["result"]["message"] == "CALL ANSWERED"
    answered = await api.wait_event(leg, "call.answered")
    assert answered["client_state"] == state
    bye = await client.dialog(
        "telnyx_rtc.bye", params["callID"], cause="NORMAL_CLEARING", causeCode=16
    )
    assert bye["result"]["message"] == "CALL ENDED"
    hangup = await api.wait_event(leg, "call.hangup")
    assert (hangup["hangup_cause"], hangup["hangup_source"]) == ("normal_clearing", "callee")
    assert hangup["client_state"] == state
    assert [e["event_type"] for e in await api.events(leg)] == [
        "call.initiated",
        "call.answered",
        "call.hangup",
    ]


async def test_rtc__dial_to_a_user_with_no_socket_is_not_found(api: Api) -> None:
    cred, _ = await api.token()
    resp = await api.dial(f"sip:{cred['sip_username']}@sip.telnyx.com")
    assert resp.status_code == 200
    leg = resp.json()["data"]["call_control_id"]
    hangup = await api.wait_event(leg, "call.hangup")
    assert (hangup["hangup_cause"], hangup["sip_hangup_cause"]) == ("not_found", "404")


async def test_rtc__two_sockets_first_answer_wins(
    api: Api, http: aiohttp.ClientSession, sandbox: SandboxProcess, clients: list[VertoClient]
) -> None:
    cred, token = await api.token()
    first, second = [await connect(http, sandbox, clients) for _ in range(2)]
    for client in (first, second):
        await client.login(token)
    resp = await api.dial(f"sip:{cred['sip_username']}@sip.telnyx.com")
    leg = resp.json()["data"]["call_control_id"]
    invites = [await c.expect("telnyx_rtc.invite") for c in (first, second)]
    assert invites[0]["params"]["callID"] == invites[1]["params"]["callID"]
    assert (await second.answer(invites[1]))["result"]["message"] == "CALL ANSWERED"
    bye = await first.expect("telnyx_rtc.bye")
    assert bye["params"]["callID"] == invites[0]["params"]["callID"]
    assert bye["params"]["cause"] == "LOSE_RACE"
    late = await first.answer(invites[0])
    assert late["error"]["data"]["reason"] == "answered_elsewhere"
    report = await api.control("GET", f"rtc/calls/{leg}")
    assert report["answered_by"] == second.sessid and report["state"] == "answered"


async def test_rtc__hold_dtmf_and_api_hangup(
    api: Api, http: aiohttp.ClientSession, sandbox: SandboxProcess, clients: list[VertoClient]
) -> None:
    cred, token = await api.token()
    client = await connect(http, sandbox, clients)
    await client.login(token)
    leg = (await api.dial(f"sip:{cred['sip_username']}@sip.telnyx.com")).json()["data"]
    invite = await client.expect("telnyx_rtc.invite")
    call_id = invite["params"]["callID"]
    await client.answer(invite)
    states = []
    for action in ("hold", "toggleHold", "toggleHold", "unhold"):
        reply = await client.dialog("telnyx_rtc.modify", call_id, action=action)
        states.append(reply["result"]["holdState"])
    assert states == ["held", "active", "held", "active"]
    bad = await client.dialog("telnyx_rtc.modify", call_id, action="updateMedia")
    assert bad["error"]["data"]["reason"] == "unsupported_action"
    for digits in ("1", "2", "#"):
        reply = await client.dialog("telnyx_rtc.info", call_id, dtmf=digits)
        assert reply["result"]["message"] == "SENT"
    bad = await client.dialog("telnyx_rtc.info", call_id, dtmf="x")
    assert bad["error"]["data"]["reason"] == "invalid_dtmf"
    report = await api.control("GET", f"rtc/calls/{leg['call_control_id']}")
    assert (report["dtmf"], report["held"]) == ("12#", False)
    assert (await api.hangup(leg["call_control_id"])).status_code == 200
    bye = await client.expect("telnyx_rtc.bye")
    assert (bye["params"]["callID"], bye["params"]["cause"]) == (call_id, "NORMAL_CLEARING")
    hangup = await api.wait_event(leg["call_control_id"], "call.hangup")
    assert (hangup["hangup_cause"], hangup["hangup_source"]) == ("normal_clearing", "caller")
    unknown = await client.dialog("telnyx_rtc.modify", call_id, action="hold")
    assert unknown["error"]["data"]["reason"] == "unknown_call"


async def test_rtc__unanswered_invite_times_out(
    api: Api, http: aiohttp.ClientSession, sandbox: SandboxProcess, clients: list[VertoClient]
) -> None:
    """The agent never answers (fault): the invite is sent, the answer ignored."""
    await api.control("POST", "faults", {"operation": "DialCall", "outcome": "no_answer"})
    cred, token = await api.token()
    client = await connect(http, sandbox, clients)
    await client.login(token)
    resp = await api.dial(f"sip:{cred['sip_username']}@sip.telnyx.com", timeout_secs=5)
    leg = resp.json()["data"]["call_control_id"]
    invite = await client.expect("telnyx_rtc.invite")
    await client.ack(invite)
    bye = await client.expect("telnyx_rtc.bye", timeout=15)
    assert bye["params"]["cause"] == "NO_ANSWER"
    hangup = await api.wait_event(leg, "call.hangup")
    assert hangup["hangup_cause"] == "timeout"
    assert not [e for e in await api.events(leg) if e["event_type"] == "call.answered"]


@dataclass
class Dropped:
    """An answered agent leg whose socket the sandbox closed."""

    token: str
    client: VertoClient
    invite: dict[str, Any]
    ccid: str


async def answered_then_dropped(
    api: Api, http: aiohttp.ClientSession, sandbox: SandboxProcess, clients: list[VertoClient]
) -> Dropped:
    cred, token = await api.token()
    client = await connect(http, sandbox, clients)
    reply = await client.login(token)
    assert reply["voice_sdk_id"] and client.ready_params == {"reattached_sessions": []}
    leg = (await api.dial(f"sip:{cred['sip_username']}@sip.telnyx.com")).json()["data"]
    invite = await client.expect("telnyx_rtc.invite")
    await client.answer(invite, tone_hz=600.0)
    await api.wait_event(leg["call_control_id"], "call.answered")
    dropped = await api.control("POST", "rtc/drop", {"sip_username": cred["sip_username"]})
    assert dropped == {"closed": 1}
    await until(client.closed.wait, what="socket closed")
    return Dropped(token, client, invite, leg["call_control_id"])


async def test_rtc__server_drops_the_socket(
    api: Api, http: aiohttp.ClientSession, sandbox: SandboxProcess, clients: list[VertoClient]
) -> None:
    await api.control("POST", "rtc", {"reattach_window": 0.5})
    gone = await answered_then_dropped(api, http, sandbox, clients)
    assert (await api.control("GET", f"rtc/calls/{gone.ccid}"))["detached"]
    # Nobody logs in again within the window: the leg ends.
    hangup = await api.wait_event(gone.ccid, "call.hangup")
    assert hangup["hangup_cause"] == "unspecified"


async def test_rtc__a_reconnected_session_gets_its_call_back_with_attach(
    api: Api, http: aiohttp.ClientSession, sandbox: SandboxProcess, clients: list[VertoClient]
) -> None:
    """What the SDK does after a network loss mid-call: it logs in again with
    ``reconnection`` and its old ``sessid`` (it has a ``voice_sdk_id``), is told the call
    was reattached, and answers the ``telnyx_rtc.attach`` offer with a new peer."""
    gone = await answered_then_dropped(api, http, sandbox, clients)
    call_id, ccid = gone.invite["params"]["callID"], gone.ccid
    again = await connect(http, sandbox, clients)
    await again.login(gone.token, reconnection=True, sessid=gone.client.sessid)
    assert again.sessid == gone.client.sessid
    assert again.ready_params == {"reattached_sessions": [call_id]}
    attach = await again.expect("telnyx_rtc.attach")
    assert attach["params"]["callID"] == call_id
    assert attach["params"]["telnyx_call_control_id"] == ccid
    answered = await again.answer(attach, tone_hz=750.0, method="telnyx_rtc.attach")
    assert answered["result"]["message"] == "CALL ATTACHED"

    # The same leg goes on, on the new peer: the sandbox hears the new microphone.
    async def hears_new_mic() -> bool:
        report = await api.control("GET", f"rtc/calls/{ccid}")
        return not report["detached"] and abs((report["from_agent"]["dominant_hz"] or 0) - 750) < 30

    await until(hears_new_mic, timeout=15, what="the reattached microphone")
    assert [e for e in await api.events(ccid) if e["event_type"] == "call.hangup"] == []
    # And it still hangs up normally from the browser.
    await again.dialog("telnyx_rtc.bye", call_id, cause="NORMAL_CLEARING")
    hangup = await api.wait_event(ccid, "call.hangup")
    assert hangup["hangup_cause"] == "normal_clearing"


async def test_rtc__another_session_or_a_fresh_login_gets_nothing_back(
    api: Api, http: aiohttp.ClientSession, sandbox: SandboxProcess, clients: list[VertoClient]
) -> None:
    gone = await answered_then_dropped(api, http, sandbox, clients)
    first = gone.client
    fresh = await connect(http, sandbox, clients)
    await fresh.login(gone.token)  # no reconnection: a new session
    assert fresh.sessid != first.sessid and fresh.ready_params == {"reattached_sessions": []}
    _, other_token = await api.token()
    other = await connect(http, sandbox, clients)
    await other.login(other_token, reconnection=True, sessid=first.sessid)  # not its session
    assert other.sessid != first.sessid and other.ready_params == {"reattached_sessions": []}
    assert (await api.control("GET", f"rtc/calls/{gone.ccid}"))["detached"]
