"""WebSocket /ws/webrtc/: authenticated, pushes state changes and the user's own calls."""

from __future__ import annotations

import pytest
import redis
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser

from telephony.events import push_call, push_state, user_group
from telephony.web import consumers
from telephony.web.consumers import TelephonyConsumer
from tests.telephony.conftest import fake_ready_worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]


@pytest.fixture(autouse=True)
def fast_poll(settings, monkeypatch) -> None:
    settings.TELEPHONY_STATE_CACHE_TTL = 0
    monkeypatch.setattr(consumers, "STATE_POLL_SECONDS", 0.1)


async def _connect(user) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(TelephonyConsumer.as_asgi(), "/ws/webrtc/")
    comm.scope["user"] = user
    connected, _ = await comm.connect()
    assert connected
    return comm


async def test_ws__anonymous_connection_is_refused() -> None:
    comm = WebsocketCommunicator(TelephonyConsumer.as_asgi(), "/ws/webrtc/")
    comm.scope["user"] = AnonymousUser()
    try:
        connected, code = await comm.connect()
        assert not connected and code == 4401
    finally:
        # The browser's side of the close: the consumer stops and leaves no task behind.
        await comm.disconnect()


async def test_ws__redis_lost_under_the_socket_closes_it_without_a_traceback(
    monkeypatch, caplog
) -> None:
    user = await get_user_model().objects.acreate_user("agent")
    layer = get_channel_layer()

    async def lost(*args, **kwargs):
        raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(type(layer), "receive", lost)
    comm = WebsocketCommunicator(TelephonyConsumer.as_asgi(), "/ws/webrtc/")
    comm.scope["user"] = user
    try:
        out = await comm.receive_output(timeout=5)
        assert out == {"type": "websocket.close", "code": 1011}
        await comm.wait(timeout=5)  # the consumer ended by itself, raising nothing
    finally:
        await comm.disconnect()
    assert "Redis unreachable" in caplog.text


async def test_ws__sends_the_state_on_connect_and_answers_pings() -> None:
    user = await get_user_model().objects.acreate_user("agent")
    comm = await _connect(user)
    first = await comm.receive_json_from()
    assert first["type"] == "service.state"
    assert set(first["state"]) == {"status", "healthy", "timestamp", "workers"}
    await comm.send_json_to({"type": "ping"})
    assert (await comm.receive_json_from())["type"] == "pong"
    await comm.disconnect()


async def test_ws__pushes_state_changes_even_with_nobody_announcing_them() -> None:
    user = await get_user_model().objects.acreate_user("agent")
    comm = await _connect(user)
    assert (await comm.receive_json_from())["state"]["status"] == "unavailable"
    fake_ready_worker()  # a worker appears; no supervisor says so: the poll notices
    changed = await comm.receive_json_from(timeout=5)
    assert changed["type"] == "service.state" and changed["state"]["status"] == "ready"
    await comm.disconnect()


async def test_ws__relays_announced_state_once() -> None:
    user = await get_user_model().objects.acreate_user("agent")
    comm = await _connect(user)
    await comm.receive_json_from()
    await push_state(
        {
            "status": "degraded",
            "healthy": True,
            "timestamp": 1,
            "workers": {"alive": 1, "desired": 2},
        }
    )
    pushed = await comm.receive_json_from(timeout=5)
    assert pushed["state"]["status"] == "degraded"
    await comm.disconnect()


async def test_ws__call_updates_reach_only_their_owner() -> None:
    owner = await get_user_model().objects.acreate_user("owner")
    other = await get_user_model().objects.acreate_user("other")
    mine, theirs = await _connect(owner), await _connect(other)
    await mine.receive_json_from()
    await theirs.receive_json_from()
    await push_call(owner.pk, {"id": "c1", "status": "ringing"})
    update = await mine.receive_json_from(timeout=5)
    assert update == {"type": "call.update", "call": {"id": "c1", "status": "ringing"}}
    assert await theirs.receive_nothing(timeout=0.3)
    await mine.disconnect()
    await theirs.disconnect()
    # Leaving removes the socket from its groups.
    layer = get_channel_layer()
    assert not await layer.connection(0).zcard(layer._group_key(user_group(owner.pk)))
