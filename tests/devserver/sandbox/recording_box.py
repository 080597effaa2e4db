"""An in-process sandbox for the recording tests, and the requests they make of it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from devserver.sandbox.config import SandboxConfig
from devserver.sandbox.server import Sandbox
from devserver.sandbox.webhooks import WebhookSettings

from .rtc_client import until

TIMING = WebhookSettings(initiated_after=0.01, answer_after=0.05, talk_time=60)
Client = TestClient[Any, Any]
Box = tuple[Sandbox, Client]


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Box]:
    """A sandbox served in process, its recordings under ``tmp_path``."""
    sandbox = Sandbox(SandboxConfig(webhook=TIMING, recordings_dir=tmp_path / "rec"))
    async with TestClient(TestServer(sandbox.app())) as client:
        sandbox.port = client.port or 0
        yield sandbox, client


def auth(sandbox: Sandbox) -> dict[str, str]:
    """The bearer header."""
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
    """POST a call action; (status, JSON)."""
    url = f"/v2/calls/{call_id}/actions/{name}"
    resp = await client.post(url, json=body, headers=auth(sandbox))
    return resp.status, await resp.json()


async def event(sandbox: Sandbox, call_id: str, kind: str = "call.recording.saved") -> Any:
    """Wait for a webhook of ``kind`` for the call; its ``data``."""

    async def find() -> Any:
        for d in sandbox.webhooks.deliveries:
            if d["call_control_id"] == call_id and d["event_type"] == kind:
                return d["body"]["data"]
        return None

    return await until(find, timeout=5, what=kind)


async def recorded(sandbox: Sandbox, client: Client, fmt: str = "wav", **kw: Any) -> Any:
    """A short recorded call, stopped with record_stop: the saved event's payload."""
    call_id = (await dial(sandbox, client))["call_control_id"]
    status, _ = await action(
        sandbox, client, call_id, "record_start", format=fmt, channels="dual", **kw
    )
    assert status == 200
    await asyncio.sleep(0.3)  # some (silent) audio, not a wait for a condition
    assert (await action(sandbox, client, call_id, "record_stop"))[0] == 200
    return (await event(sandbox, call_id))["payload"]


def local(url: str) -> str:
    """The path and query of a sandbox URL (the test client adds the host)."""
    return url[url.index("/files/") :]
