"""A worker's reply reaches the web process while its WebSocket consumers wait too.

channels-redis gives one layer a single receive lock for all its process-local channels,
and whoever holds it pops only its own channel's prefix (``specific.<client>!``). A reply
channel under another prefix is popped by nobody while a consumer holds the lock: the
reply sat until that consumer's 5 s BZPOPMIN timed out, or never arrived (504). Replies
now come back on a key of their own (one BLPOP, no receive lock); this keeps it so.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from channels.layers import get_channel_layer

from telephony.protocol import CHANNEL, Reply, Request
from telephony.web.client import TelephonyService
from telephony.worker.replies import send_reply
from tests.helpers import await_until
from tests.telephony.conftest import fake_ready_worker

pytestmark = [pytest.mark.timeout(30)]


async def test_client__reply_arrives_while_a_consumer_waits_on_the_same_layer(settings) -> None:
    settings.TELEPHONY_STATE_CACHE_TTL = 0
    fake_ready_worker()
    layer = get_channel_layer()
    consumer = await layer.new_channel()  # what Channels gives every WebSocket consumer
    idle = asyncio.ensure_future(layer.receive(consumer))
    # It now holds the layer's receive lock, inside BZPOPMIN.
    await await_until(
        lambda: layer.receive_lock is not None and layer.receive_lock.locked(), timeout=5
    )

    async def worker() -> None:
        request = Request.decode(await layer.receive(CHANNEL))
        reply = Reply.success(request.request_id, {"pong": True})
        await send_reply(layer, request, reply, now=time.time())

    answering = asyncio.ensure_future(worker())
    try:
        started = time.monotonic()
        result = await TelephonyService().arequest("health.ping", {}, timeout=4.0)
        elapsed = time.monotonic() - started
    finally:
        for task in (idle, answering):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert result == {"pong": True}
    assert elapsed < 1.0, f"the reply took {elapsed:.2f} s"
