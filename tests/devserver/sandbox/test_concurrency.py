"""The sandbox serves hundreds of concurrent requests while injecting latency."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest

from devserver.sandbox.control import SandboxProcess

pytestmark = pytest.mark.timeout(30)


@pytest.mark.timeout(60)
async def test_concurrency__500_requests_with_200ms_latency_all_succeed(
    sandbox: SandboxProcess,
) -> None:
    sandbox.set_fault("*", latency_ms=200)
    headers = {"Authorization": f"Bearer {sandbox.api_key}"}
    ids = [str(uuid.uuid4()) for _ in range(500)]
    # httpcore's pool does work per connection on every event, so one client with 500
    # connections spends ~10 s on itself; ten pools of 50 keep the client out of the way.
    clients = [
        httpx.AsyncClient(
            base_url=sandbox.base_url,
            headers=headers,
            limits=httpx.Limits(max_connections=50),
            timeout=30,
        )
        for _ in range(10)
    ]
    try:
        started = time.monotonic()
        responses = await asyncio.gather(
            *(
                clients[i % 10].get("/credential_connections", headers={"X-Request-Id": rid})
                for i, rid in enumerate(ids)
            )
        )
        elapsed = time.monotonic() - started
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    assert [r.status_code for r in responses] == [200] * 500
    assert all(r.json()["data"][0]["id"] == sandbox.connection_id for r in responses)
    assert elapsed >= 0.2
    entries = sandbox.log()
    assert sorted(e["request_id"] for e in entries) == sorted(ids)
    assert all(e["executed"] and e["latency_ms"] == 200 for e in entries)
    # They were served side by side, not one after another (500 x 200 ms = 100 s).
    assert max(e["duration_ms"] for e in entries) < 20_000
