"""The worker's intake, claims, deadlines, concurrency and drain, in this process.

``TelephonyWorker`` runs inside the test's event loop against the real test Redis and
channel layer, with a fake adapter (nothing reaches the sandbox or Telnyx) and an
injected clock. What only a real process shows (signals, SIGKILL mid-request) stays in
``test_worker.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model

from telephony.connections import get_async_redis
from telephony.keys import Keys
from telephony.models import Credential
from telephony.protocol import CHANNEL, Heartbeat, Reply, Request
from telephony.web.client import get_telephony_service
from telephony.worker.breaker import CircuitBreaker
from telephony.worker.provider import CredentialInfo, RequestContext
from tests.helpers import await_until
from tests.telephony.conftest import Workers

pytestmark = pytest.mark.timeout(30)


class FakeClock:
    """Wall-clock seconds the test sets; the worker judges deadlines by it."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def __call__(self) -> float:
        return time.time() + self.offset


class FakeAdapter:
    """Stands in for ``TelnyxAdapter``: records calls, and can hold them at a gate."""

    def __init__(self) -> None:
        self.breaker = CircuitBreaker()
        self.calls: list[tuple[str, str]] = []
        self.running = 0
        self.peak = 0
        self.gate: asyncio.Event | None = None
        self.closed = False
        self.ids = itertools.count(1)

    async def _enter(self, op: str, ctx: RequestContext) -> None:
        self.calls.append((op, ctx.request_id))
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
        finally:
            self.running -= 1

    async def create_credential(self, ctx: RequestContext, **kw: Any) -> CredentialInfo:
        n = next(self.ids)
        await self._enter("create_credential", ctx)
        return CredentialInfo(
            id=f"cred-{n}",
            sip_username=f"gencred{n}",
            name=kw["name"],
            tag=kw["tag"],
            expires_at=kw["expires_at"],
            created_at=datetime.now(UTC),
            expired=False,
        )

    async def create_token(self, ctx: RequestContext, credential_id: str) -> str:
        n = next(self.ids)
        await self._enter("create_token", ctx)
        return f"header.{credential_id}-{n}.sig"

    async def aclose(self) -> None:
        self.closed = True


class Gate:
    """Wraps a handler so the test sees it start and decides when it may finish."""

    def __init__(self, handler: Callable[..., Awaitable[dict[str, Any]]]) -> None:
        self.handler = handler
        self.open = asyncio.Event()
        self.started: list[str] = []

    async def __call__(self, ctx: RequestContext, payload: dict[str, Any]) -> dict[str, Any]:
        self.started.append(ctx.request_id)
        await self.open.wait()
        return await self.handler(ctx, payload)


@pytest.fixture
def workers(in_process_workers: Workers) -> Workers:
    """In-process workers with a fake adapter unless a test passes its own."""
    in_process_workers.adapter_factory = FakeAdapter
    return in_process_workers


def pings(reply_to: str, n: int, *, timeout: float) -> list[Request]:
    return [
        Request.new("health.ping", reply_to=reply_to, timeout=timeout, payload={}) for _ in range(n)
    ]


async def send_pings(n: int, *, timeout: float = 10.0) -> tuple[str, list[Request]]:
    """Put ``n`` ping requests on the channel; returns the reply channel and the requests."""
    layer = get_channel_layer()
    reply_to = await layer.new_channel()
    requests = pings(reply_to, n, timeout=timeout)
    for request in requests:
        await layer.send(CHANNEL, request.encode())
    return reply_to, requests


async def replies(reply_to: str, n: int, timeout: float = 5.0) -> list[Reply]:
    layer = get_channel_layer()
    return [
        Reply.decode(await asyncio.wait_for(layer.receive(reply_to), timeout)) for _ in range(n)
    ]


async def queued() -> int:
    """Requests still waiting on the shared channel."""
    layer = get_channel_layer()
    return int(await get_async_redis().zcard(layer.prefix + CHANNEL))


async def test_worker__takes_no_more_than_its_concurrency_off_the_channel(workers) -> None:
    worker = await workers.start(concurrency=2)
    gate = worker.handlers["health.ping"] = Gate(worker.handlers["health.ping"])
    reply_to, requests = await send_pings(5)
    await await_until(lambda: len(gate.started) == 2, timeout=5)
    assert await queued() == 3  # both slots busy: the intake does not pop
    assert worker.stats.in_flight == 2
    gate.open.set()
    got = await replies(reply_to, 5)
    assert {r.request_id for r in got} == {r.request_id for r in requests}
    assert all(r.ok for r in got) and await queued() == 0


async def test_worker__request_past_its_deadline_is_dropped_unexecuted(workers) -> None:
    clock = FakeClock(offset=60.0)  # the worker lives a minute ahead of the sender
    worker = await workers.start(clock=clock)
    gate = worker.handlers["health.ping"] = Gate(worker.handlers["health.ping"])
    gate.open.set()
    _, [late] = await send_pings(1, timeout=30)  # deadline: 30 s from now, already past
    reply_to, [fresh] = await send_pings(1, timeout=120)
    [reply] = await replies(reply_to, 1)
    assert reply.request_id == fresh.request_id and reply.ok
    assert gate.started == [fresh.request_id]  # the late one never ran
    assert worker.stats.dropped_late == 1
    assert not await get_async_redis().exists(Keys.claim(late.request_id))  # nor was claimed

    async def beat_reports_the_drop() -> bool:
        raw = await get_async_redis().get(Keys.worker(worker.worker_id))
        return bool(raw) and Heartbeat.decode(raw).dropped_late == 1

    await await_until(beat_reports_the_drop, timeout=5)


async def test_worker__a_request_id_runs_once_across_two_workers(workers) -> None:
    a, b = await workers.start(), await workers.start()
    ran: list[str] = []
    for worker in (a, b):
        inner = worker.handlers["health.ping"]

        async def counted(ctx: RequestContext, payload: dict[str, Any], inner=inner) -> Any:
            ran.append(ctx.request_id)
            return await inner(ctx, payload)

        worker.handlers["health.ping"] = counted
    layer = get_channel_layer()
    reply_to = await layer.new_channel()
    requests = pings(reply_to, 30, timeout=10)
    for request in requests:  # every request delivered twice
        await layer.send(CHANNEL, request.encode())
        await layer.send(CHANNEL, request.encode())
    got = await replies(reply_to, 30)
    assert sorted(ran) == sorted(r.request_id for r in requests)
    assert sorted(r.request_id for r in got) == sorted(ran)
    # Every second delivery was refused by its claim (the layer may redeliver a few more).
    await await_until(lambda: a.stats.duplicates + b.stats.duplicates >= 30, timeout=5)
    assert a.stats.handled + b.stats.handled == 30
    claim_ttl = await get_async_redis().pttl(Keys.claim(requests[0].request_id))
    assert claim_ttl > 10_000  # outlives the deadline: a late duplicate still sees it


@pytest.mark.django_db(transaction=True)
async def test_worker__slow_operations_run_side_by_side(workers) -> None:
    adapter = FakeAdapter()
    adapter.gate = asyncio.Event()
    await workers.start(adapter=adapter, concurrency=20)
    users = [await get_user_model().objects.acreate_user(f"c{i}") for i in range(10)]
    service = get_telephony_service()
    calls = [asyncio.create_task(service.agenerate_credential(u)) for u in users]
    # All ten wait inside the provider at once: none blocks the intake of the others.
    await await_until(lambda: adapter.running == 10, timeout=10)
    adapter.gate.set()
    results = await asyncio.gather(*calls)
    assert len({r["sip_username"] for r in results}) == 10 and adapter.peak == 10


@pytest.mark.django_db(transaction=True)
async def test_worker__credential_is_created_once_then_reused(workers) -> None:
    adapter = FakeAdapter()
    await workers.start(adapter=adapter)
    user = await get_user_model().objects.acreate_user("agent")
    service = get_telephony_service()
    first = await service.agenerate_credential(user)
    second = await service.agenerate_credential(user)
    assert first["sip_username"] == second["sip_username"] and first["token"] != second["token"]
    [cred] = [c async for c in Credential.objects.filter(user=user)]
    assert cred.telnyx_id == "cred-1" and cred.token_expires_at is not None
    assert cred.expires_at > datetime.now(UTC) + timedelta(hours=1)
    assert [op for op, _ in adapter.calls] == ["create_credential", "create_token", "create_token"]


async def test_worker__stop_drains_in_flight_work_and_takes_nothing_new(workers) -> None:
    worker = await workers.start(concurrency=4)
    gate = worker.handlers["health.ping"] = Gate(worker.handlers["health.ping"])
    reply_to, requests = await send_pings(2)
    await await_until(lambda: len(gate.started) == 2, timeout=5)
    worker.stop()
    later_to, [later] = await send_pings(1)  # sent while it stops: handled or left, not lost
    run = workers.tasks[worker]
    await await_until(lambda: worker.stats.in_flight == 2 and not run.done(), timeout=5)
    gate.open.set()
    got = await replies(reply_to, 2)
    assert {r.request_id for r in got} == {r.request_id for r in requests}
    await asyncio.wait_for(run, timeout=10)  # intake ended, the drain done, the loops stopped
    assert gate.started[:2] == [r.request_id for r in requests]
    if later.request_id in gate.started:  # popped by the last receive before the stop
        assert (await replies(later_to, 1))[0].request_id == later.request_id
    else:
        assert await queued() == 1
    assert not await get_async_redis().exists(Keys.worker(worker.worker_id))  # forgotten
    assert worker.adapter.closed
