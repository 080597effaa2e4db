"""The one-hop reply path: a request on the channel layer, its reply on a key of its own
that the caller pops with one BLPOP (``TelephonyChannelLayer.push_reply``/``pop_reply``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from channels.layers import get_channel_layer

from telephony import exceptions as exc
from telephony.connections import get_async_redis
from telephony.keys import Keys
from telephony.layers import TelephonyChannelLayer
from telephony.protocol import CHANNEL, Reply, Request
from telephony.web.client import ANSWER_MARGIN, REPLY_LOST, TelephonyService
from telephony.worker import replies as worker_replies
from tests.helpers import await_until
from tests.telephony.conftest import fake_ready_worker

pytestmark = [pytest.mark.timeout(30)]

Answer = Callable[[Request], Awaitable[dict[str, Any] | None]]


async def serve(answer: Answer, *, n: int = 1) -> list[Request]:
    """A worker stand-in: takes ``n`` requests off the channel, pushes what ``answer``
    returns (None: no reply) on each one's reply key, as the worker does."""
    layer = get_channel_layer()
    seen: list[Request] = []
    while len(seen) < n:
        message = await layer.receive_or_idle(CHANNEL, idle=1)
        if message is None:
            continue
        request = Request.decode(message)
        seen.append(request)
        result = await answer(request)
        if result is not None:
            reply = Reply.success(request.request_id, result)
            await layer.push_reply(request.reply_to, reply.encode(), ttl_ms=5_000)
    return seen


@pytest.fixture
def ready(settings: Any) -> None:
    settings.TELEPHONY_STATE_CACHE_TTL = 0
    fake_ready_worker()


async def echo(request: Request) -> dict[str, Any]:
    return {"echo": request.payload["n"]}


async def test_reply_path__reply_arrives_and_leaves_no_key(ready: None) -> None:
    worker = asyncio.ensure_future(serve(echo))
    result = await TelephonyService().arequest("health.ping", {"n": 7}, timeout=5.0)
    [request] = await asyncio.wait_for(worker, 5)
    assert result == {"echo": 7}
    assert request.reply_to == Keys.reply(request.request_id)
    assert await get_async_redis().exists(request.reply_to) == 0


async def test_reply_path__no_reply_by_the_deadline_is_a_timeout(ready: None) -> None:
    started = time.monotonic()
    with pytest.raises(exc.WorkerTimeout) as raised:
        await TelephonyService().arequest("health.ping", {"n": 1}, timeout=0.4)
    elapsed = time.monotonic() - started
    assert raised.value.code == "worker_timeout"
    # The caller gives up ANSWER_MARGIN before the deadline, so its 504 is in time.
    assert 0.4 - ANSWER_MARGIN - 0.05 <= elapsed < 1.5, elapsed


async def test_pop_reply__waits_longer_than_one_block_in_several_pops(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deadline beyond one BLPOP's cap (kept under the socket timeout) is several pops."""
    monkeypatch.setattr("telephony.layers.MAX_BLOCK", 0.1)
    layer = get_channel_layer()
    key = Keys.reply("long")

    async def later() -> None:
        await asyncio.sleep(0.35)
        await layer.push_reply(key, {"type": "x"}, ttl_ms=1000)

    pushing = asyncio.ensure_future(later())
    assert await layer.pop_reply(key, timeout=3.0) == {"type": "x"}
    await pushing


async def test_reply_path__redis_lost_between_send_and_reply_is_unknown(
    own_redis: Any, ready: None
) -> None:

    async def lose_redis(request: Request) -> None:
        own_redis.stop()

    worker = asyncio.ensure_future(serve(lose_redis))
    with pytest.raises(exc.ServiceUnavailable) as raised:
        await TelephonyService().arequest("health.ping", {"n": 1}, timeout=5.0)
    await asyncio.wait_for(worker, 5)
    assert (raised.value.code, raised.value.reason) == ("service_unavailable", REPLY_LOST)


async def test_reply_path__a_late_reply_expires_with_its_key(
    ready: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller gave up; the worker's reply comes after. The key holding it carries a
    TTL just past the deadline, so nothing is left behind."""
    monkeypatch.setattr(worker_replies, "REPLY_TTL_EXTRA_MS", 300)
    with pytest.raises(exc.WorkerTimeout):
        await TelephonyService().arequest("health.ping", {"n": 1}, timeout=0.2)
    message = await get_channel_layer().receive_or_idle(CHANNEL, idle=1)
    request = Request.decode(message)
    reply = Reply.success(request.request_id, {"late": True})
    await worker_replies.send_reply(get_channel_layer(), request, reply, now=time.time())
    r = get_async_redis()
    # The deadline's rest (the caller stops ANSWER_MARGIN early) plus the extra.
    assert 0 < await r.pttl(request.reply_to) <= 300 + ANSWER_MARGIN * 1000

    async def gone() -> bool:
        return not await r.exists(request.reply_to)

    await await_until(gone, timeout=3, message="the late reply did not expire")


async def test_reply_path__concurrent_callers_get_their_own_replies(ready: None) -> None:
    n = 40

    async def slow_echo(request: Request) -> dict[str, Any]:
        # Answered out of order: later requests first, on the same connections.
        await asyncio.sleep(0.001 * (n - request.payload["n"]))
        return {"echo": request.payload["n"]}

    worker = asyncio.ensure_future(serve(slow_echo, n=n))
    service = TelephonyService()
    results = await asyncio.gather(
        *(service.arequest("health.ping", {"n": i}, timeout=10.0) for i in range(n))
    )
    await asyncio.wait_for(worker, 10)
    assert results == [{"echo": i} for i in range(n)]


async def test_worker_reply__only_to_its_own_key_or_a_process_channel(settings: Any) -> None:
    """A reply_to that is neither the request's reply key nor a process channel (from an
    older web process) is not written: a message must not make a worker write any key."""
    layer: TelephonyChannelLayer = get_channel_layer()
    reply = Reply.success("r1", {"ok": 1})
    stray = Request.new("health.ping", reply_to=Keys.claim("x"), timeout=5, payload={})
    await worker_replies.send_reply(layer, stray, reply, now=time.time())
    assert await get_async_redis().exists(Keys.claim("x")) == 0
    old_client = await layer.new_channel()
    old = Request.new("health.ping", reply_to=old_client, timeout=5, payload={})
    await worker_replies.send_reply(layer, old, reply, now=time.time())
    assert Reply.decode(await asyncio.wait_for(layer.receive(old_client), 5)).result == {"ok": 1}
