"""Agents answered by the sandbox itself (``auto_answer_agents``), in process.

The sandbox's aiohttp app runs on an in-process test server; webhooks have no URL, so
they are only recorded in ``webhooks.deliveries``, which the tests read directly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from devserver.sandbox.config import SandboxConfig
from devserver.sandbox.server import Sandbox
from devserver.sandbox.webhooks import WebhookSettings

TIMING = WebhookSettings(initiated_after=0.01, answer_after=0.1, talk_time=0.4)


@pytest.fixture
async def box() -> AsyncIterator[tuple[Sandbox, TestClient[Any, Any]]]:
    """A sandbox that answers agents after 0.05 s, served in process."""
    sandbox = Sandbox(SandboxConfig(auto_answer_agents=0.05, webhook=TIMING))
    async with TestClient(TestServer(sandbox.app())) as client:
        yield sandbox, client


def _auth(sandbox: Sandbox) -> dict[str, str]:
    return {"Authorization": f"Bearer {sandbox.config.api_key}"}


async def _credential(sandbox: Sandbox, client: TestClient[Any, Any]) -> str:
    body = {"connection_id": sandbox.seed.connection_id}
    resp = await client.post("/v2/telephony_credentials", json=body, headers=_auth(sandbox))
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["data"]["sip_username"])


async def _dial(sandbox: Sandbox, client: TestClient[Any, Any], to: str, **kw: Any) -> str:
    body = {"connection_id": sandbox.seed.call_connection_id, "to": to, "from": "+15550001111"}
    resp = await client.post("/v2/calls", json=body | kw, headers=_auth(sandbox))
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["data"]["call_control_id"])


def _events(sandbox: Sandbox, leg: str) -> list[dict[str, Any]]:
    return [d["body"]["data"] for d in sandbox.webhooks.deliveries if d["call_control_id"] == leg]


async def _until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def _types(sandbox: Sandbox, leg: str) -> list[str]:
    return [e["event_type"] for e in _events(sandbox, leg)]


def _hangup(sandbox: Sandbox, leg: str) -> dict[str, Any]:
    return next(e for e in _events(sandbox, leg) if e["event_type"] == "call.hangup")["payload"]


async def test_agent_leg_answered_then_customer_bridged_and_both_end(
    box: tuple[Sandbox, TestClient[Any, Any]],
) -> None:
    sandbox, client = box
    user = await _credential(sandbox, client)
    agent = await _dial(sandbox, client, f"sip:{user}@sip.telnyx.com", client_state="YQ==")
    await _until(lambda: "call.answered" in _types(sandbox, agent))
    assert _events(sandbox, agent)[-1]["payload"]["client_state"] == "YQ=="
    customer = await _dial(sandbox, client, "+15557654321", link_to=agent, bridge_on_answer=True)
    await _until(lambda: "call.hangup" in _types(sandbox, agent))
    await _until(lambda: "call.hangup" in _types(sandbox, customer))
    assert _types(sandbox, agent) == [
        "call.initiated",
        "call.answered",
        "call.bridged",
        "call.hangup",
    ]
    assert _types(sandbox, customer) == [
        "call.initiated",
        "call.answered",
        "call.bridged",
        "call.hangup",
    ]
    # the customer hangs up after talk_time; its bridged agent leg is cleared with it
    assert _hangup(sandbox, customer)["hangup_cause"] == "normal_clearing"
    assert _hangup(sandbox, agent)["hangup_source"] == "caller"
    assert not sandbox.rtc.legs.legs  # no WebRTC leg, no media


async def test_hangup_before_the_delay_means_no_answer(
    box: tuple[Sandbox, TestClient[Any, Any]],
) -> None:
    sandbox, client = box
    sandbox.rtc.legs.auto_answer = 0.5
    user = await _credential(sandbox, client)
    agent = await _dial(sandbox, client, f"sip:{user}@sip.telnyx.com")
    await _until(lambda: "call.initiated" in _types(sandbox, agent))
    resp = await client.post(f"/v2/calls/{agent}/actions/hangup", json={}, headers=_auth(sandbox))
    assert resp.status == 200, await resp.text()
    await _until(lambda: "call.hangup" in _types(sandbox, agent))
    await _until(lambda: not sandbox.rtc.legs._tasks)  # the auto-answer task has run out
    assert _types(sandbox, agent) == ["call.initiated", "call.hangup"]
    assert _hangup(sandbox, agent)["hangup_cause"] == "originator_cancel"


async def test_unknown_user_is_still_not_found(box: tuple[Sandbox, TestClient[Any, Any]]) -> None:
    sandbox, client = box
    agent = await _dial(sandbox, client, "sip:gencrednobody@sip.telnyx.com")
    await _until(lambda: "call.hangup" in _types(sandbox, agent))
    assert _types(sandbox, agent) == ["call.initiated", "call.hangup"]
    assert _hangup(sandbox, agent)["hangup_cause"] == "not_found"


async def test_busy_fault_on_the_agent_dial(box: tuple[Sandbox, TestClient[Any, Any]]) -> None:
    sandbox, client = box
    user = await _credential(sandbox, client)
    resp = await client.post(
        "/_sandbox/faults", json={"operation": "DialCall", "outcome": "busy", "count": 1}
    )
    assert resp.status == 200, await resp.text()
    agent = await _dial(sandbox, client, f"sip:{user}@sip.telnyx.com")
    await _until(lambda: "call.hangup" in _types(sandbox, agent))
    assert _types(sandbox, agent) == ["call.initiated", "call.hangup"]
    assert _hangup(sandbox, agent)["hangup_cause"] == "user_busy"


async def test_control_endpoint_switches_it_and_reset_restores(
    box: tuple[Sandbox, TestClient[Any, Any]],
) -> None:
    sandbox, client = box
    resp = await client.post("/_sandbox/rtc", json={"auto_answer_agents": None})
    assert resp.status == 200 and (await resp.json())["auto_answer_agents"] is None
    user = await _credential(sandbox, client)
    agent = await _dial(sandbox, client, f"sip:{user}@sip.telnyx.com")
    await _until(lambda: "call.hangup" in _types(sandbox, agent))
    assert _hangup(sandbox, agent)["hangup_cause"] == "not_found"
    for bad in (-1, "soon", True, 601):
        resp = await client.post("/_sandbox/rtc", json={"auto_answer_agents": bad})
        assert resp.status == 400, bad
        assert "auto_answer_agents" in (await resp.json())["error"]
    resp = await client.post("/_sandbox/reset", json={})
    assert resp.status == 200
    info = await (await client.get("/_sandbox/rtc")).json()
    assert info["auto_answer_agents"] == 0.05
