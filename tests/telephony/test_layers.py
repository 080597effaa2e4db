"""TelephonyChannelLayer.receive_or_idle against a real Redis, and a guard on the
channels-redis internals it is built from (an upgrade must fail here, not in production).
"""

from __future__ import annotations

import asyncio
import inspect
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import channels_redis
import pytest
from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer

from telephony.layers import TelephonyChannelLayer
from tests.conftest import ROOT

CHANNEL = "telephony.test"


@pytest.fixture
async def layer(settings: Any) -> AsyncIterator[TelephonyChannelLayer]:
    """A fresh layer as CHANNEL_LAYERS configures it (the test's own key prefix)."""
    config = settings.CHANNEL_LAYERS["default"]
    assert config["BACKEND"] == "telephony.layers.TelephonyChannelLayer"
    made = TelephonyChannelLayer(**config["CONFIG"])
    yield made
    await made.flush()
    await made.close_pools()


def test_layer__settings_point_channels_at_the_subclass() -> None:
    assert isinstance(get_channel_layer(), TelephonyChannelLayer)


async def test_receive_or_idle__returns_a_sent_message(layer: TelephonyChannelLayer) -> None:
    await layer.send(CHANNEL, {"type": "health.ping", "n": 1})
    message = await layer.receive_or_idle(CHANNEL, idle=2)
    assert message == {"type": "health.ping", "n": 1}


async def test_receive_or_idle__returns_none_after_about_idle_seconds(
    layer: TelephonyChannelLayer,
) -> None:
    started = time.monotonic()
    assert await layer.receive_or_idle(CHANNEL, idle=0.3) is None
    elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 1.3, elapsed
    # The per-channel lock was released: the next receive does not wait on it.
    await layer.send(CHANNEL, {"type": "health.ping"})
    assert await asyncio.wait_for(layer.receive_or_idle(CHANNEL, idle=1), 2) is not None


async def test_receive_or_idle__stopping_between_pops_loses_and_repeats_nothing(
    settings: Any,
) -> None:
    """A consumer that stops and restarts all the time (a fresh layer each life, like a
    new worker process), stopping only between pops, while messages keep coming: every
    message arrives exactly once.

    One consumer at a time: two layers popping the same channel at once can deliver a
    message twice (each pop first re-queues the shared backup queue, channels-redis issue
    163); the worker's claim on the request id is what drops such a duplicate."""
    n, config = 300, settings.CHANNEL_LAYERS["default"]["CONFIG"]
    sender = TelephonyChannelLayer(**config)
    received: Counter[int] = Counter()
    lives = 0

    async def produce() -> None:
        for i in range(n):
            await sender.send(CHANNEL, {"type": "t", "i": i})
            if i % 4 == 0:  # paced, so the consumers live and stop many times meanwhile
                await asyncio.sleep(0.005)

    async def consume_for(seconds: float) -> None:
        """One consumer's life: pop until told to stop, then finish the current pop."""
        nonlocal lives
        layer = TelephonyChannelLayer(**config)
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, stop.set)
        try:
            while not stop.is_set():
                message = await layer.receive_or_idle(CHANNEL, idle=0.05)
                if message is not None:
                    received[message["i"]] += 1
            lives += 1
            await layer.wait_received()  # its backup-queue clean-up, as a worker's exit does
        finally:
            await layer.close_pools()

    async def consumers(until: float) -> None:
        while time.monotonic() < until and len(received) < n:
            # Lives of 5..30 ms: the stop lands at every point of a pop.
            await consume_for(0.005 + lives % 6 * 0.005)

    try:
        producer = asyncio.create_task(produce())
        await consumers(until=time.monotonic() + 30)
        await producer
    finally:
        await sender.flush()
        await sender.close_pools()
    assert lives > 20, "the consumers were not stopped often enough to test anything"
    assert sorted(received) == list(range(n)), f"lost: {sorted(set(range(n)) - set(received))}"
    assert [i for i, count in received.items() if count > 1] == []


def test_channels_redis__internals_the_subclass_uses_are_unchanged() -> None:
    """An upgrade of channels-redis must come with a review of receive_or_idle: it
    mirrors RedisChannelLayer.receive_single, built from these private pieces."""
    assert channels_redis.__version__ == TelephonyChannelLayer.PINNED_VERSION, (
        "channels-redis changed: check TelephonyChannelLayer.receive_or_idle against the new "
        "receive_single, then update PINNED_VERSION and PRIVATE_API"
    )
    layer = TelephonyChannelLayer(hosts=["redis://127.0.0.1:1/0"])
    for name, params in TelephonyChannelLayer.PRIVATE_API:
        assert hasattr(layer, name), f"channels-redis no longer has {name}"
        if params is not None:
            method = getattr(layer, name)
            assert inspect.iscoroutinefunction(method), name
            assert tuple(inspect.signature(method).parameters) == params, name
    assert callable(layer.receive_clean_locks.acquire)
    assert callable(layer.receive_clean_locks.release)
    assert isinstance(layer.receive_cleaners, list)
    assert next(layer._receive_index_generator) == 0
    # receive_single still does what receive_or_idle copies: lock, pop with backup, clean.
    source = inspect.getsource(type(layer).__mro__[1].receive_single)
    for piece in ("receive_clean_locks.acquire", "_brpop_with_clean", "_clean_receive_backup"):
        assert piece in source, piece


def test_no_other_module_touches_channel_layer_internals() -> None:
    """Only telephony/layers.py may reach into a layer's private attributes."""
    private = re.compile(r"\blayer\._[a-z]\w*")
    offenders = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for folder in ("telephony", "dashboard", "devserver", "bench", "config")
        for path in (ROOT / folder).rglob("*.py")
        if path != ROOT / "telephony" / "layers.py"
        for match in private.finditer(path.read_text())
    ]
    assert offenders == []


async def test_send__one_round_trip_keeps_capacity_and_order(settings: Any) -> None:
    """The one-script send: a full channel raises ChannelFull and keeps what it had; the
    messages come out in the order they went in, with their TTL set."""
    config = {**settings.CHANNEL_LAYERS["default"]["CONFIG"], "capacity": 3}
    small = TelephonyChannelLayer(**config)
    try:
        for i in range(3):
            await small.send(CHANNEL, {"type": "t", "i": i})
        with pytest.raises(ChannelFull):
            await small.send(CHANNEL, {"type": "t", "i": 3})
        ttl = await small.connection(0).ttl(small.prefix + CHANNEL)
        assert 0 < ttl <= config["expiry"]
        got = [await small.receive_or_idle(CHANNEL, idle=1) for _ in range(3)]
        assert [m["i"] for m in got if m] == [0, 1, 2]
        assert await small.receive_or_idle(CHANNEL, idle=0.1) is None
    finally:
        await small.flush()
        await small.close_pools()


async def test_receive_or_idle__a_waiting_message_is_in_the_backup_until_cleaned(
    layer: TelephonyChannelLayer,
) -> None:
    """The one-round-trip pop copies the message into the backup queue atomically; the
    clean-up then removes it, as channels-redis's own receive does."""
    await layer.send(CHANNEL, {"type": "t"})
    backup = layer.prefix + CHANNEL + "$inflight"
    assert await layer.receive_or_idle(CHANNEL, idle=1) == {"type": "t"}
    await asyncio.gather(*layer.receive_cleaners)
    assert await layer.connection(0).zcard(backup) == 0
