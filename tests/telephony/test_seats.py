"""Seats: an agent's credential follows their presence (docs/CREDENTIALS.md, "Seats").

In-process: the worker's operations against a real sandbox whose account allows 5
credentials (its default, like a free Telnyx account), real Redis, the real WebSocket
consumer driven by ``WebsocketCommunicator``. The presence clock is injected, so the idle
time passes in microseconds.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import AsyncClient

from devserver.sandbox.control import SandboxProcess
from telephony import exceptions as exc
from telephony import presence
from telephony.connections import get_redis
from telephony.keys import Keys
from telephony.models import Credential, ServiceEvent
from telephony.web import consumers
from telephony.web.consumers import TelephonyConsumer
from telephony.worker.adapter import TelnyxAdapter
from telephony.worker.breaker import breaker_from_settings
from telephony.worker.hygiene import credential_hygiene
from telephony.worker.operations import Operations
from telephony.worker.provider import RequestContext

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

IDLE = 300.0


class Clock:
    """The presence clock, moved by hand."""

    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture(scope="module")
def free_account() -> Iterator[SandboxProcess]:
    """A sandbox with its default credential limit (5, a free account); stopped by pid."""
    sandbox = SandboxProcess.start(stderr=subprocess.DEVNULL)
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def sandbox(free_account: SandboxProcess, settings: Any) -> SandboxProcess:
    free_account.reset()
    settings.TELNYX_API_KEY = free_account.api_key
    settings.TELNYX_BASE_URL = free_account.base_url
    settings.TELNYX_CONNECTION_ID = free_account.connection_id
    settings.TELEPHONY_ACCOUNT_CREDENTIAL_LIMIT = 5
    settings.TELEPHONY_SEAT_IDLE_SECONDS = IDLE
    settings.TELEPHONY_STATE_CACHE_TTL = 0
    return free_account


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(presence, "clock", fake)
    monkeypatch.setattr(consumers, "STATE_POLL_SECONDS", 0.02)
    return fake


async def _operations(sandbox: SandboxProcess, name: str) -> Operations:
    adapter = TelnyxAdapter(
        api_key=sandbox.api_key, base_url=sandbox.base_url, breaker=breaker_from_settings()
    )
    return Operations(adapter, worker_id=f"test:{name}")


@pytest.fixture
async def ops(sandbox: SandboxProcess) -> AsyncIterator[Operations]:
    """One worker's operations, in this process."""
    made = await _operations(sandbox, "1")
    try:
        yield made
    finally:
        await made.adapter.aclose()


@pytest.fixture
async def agents() -> list[Any]:
    return [await get_user_model().objects.acreate_user(f"agent{n}") for n in range(1, 7)]


def ctx() -> RequestContext:
    return RequestContext(str(uuid.uuid4()), time.time() + 10)


async def seat(ops: Operations, user: Any) -> dict[str, Any]:
    return await ops.credential_create(ctx(), {"user_id": user.pk})


def remote(sandbox: SandboxProcess) -> dict[str, str]:
    """The account's credentials at the sandbox: id -> sip_username."""
    resp = httpx.get(
        f"{sandbox.base_url}/telephony_credentials",
        params={"page[size]": 250},
        headers={"Authorization": f"Bearer {sandbox.api_key}"},
        timeout=10,
    )
    return {c["id"]: c["sip_username"] for c in resp.json()["data"]}


async def online(user: Any) -> WebsocketCommunicator:
    """A page of this agent, open: its WebSocket connected."""
    comm = WebsocketCommunicator(TelephonyConsumer.as_asgi(), "/ws/webrtc/")
    comm.scope["user"] = user
    connected, _ = await comm.connect()
    assert connected
    return comm


async def seen_at(user: Any) -> float:
    score = get_redis().zscore(Keys.presence(), str(user.pk))
    return -1.0 if score is None else score / 1000


async def wait_seen(users: list[Any], at: float, timeout: float = 20.0) -> None:
    """Until every open page has touched its agent at (or after) ``at`` (clock time)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if all([await seen_at(u) >= at - 0.001 for u in users]):  # stored in ms
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"pages did not refresh presence: {[await seen_at(u) for u in users]}")


async def five_seated(
    ops: Operations, agents: list[Any]
) -> tuple[list[WebsocketCommunicator], list[dict[str, Any]]]:
    pages = [await online(a) for a in agents[:5]]
    return pages, [await seat(ops, a) for a in agents[:5]]


async def close(pages: list[WebsocketCommunicator]) -> None:
    for page in pages:
        await page.disconnect()


async def row(user: Any) -> Credential:
    return await Credential.objects.filter(user=user).order_by("-created_at").afirst()


# -- allocation ---------------------------------------------------------------------------


async def test_seats__six_agents_on_five_seats_get_five_and_one_seat_limit(
    sandbox, ops, agents, clock
) -> None:
    pages, creds = await five_seated(ops, agents)
    try:
        assert len({c["sip_username"] for c in creds}) == 5
        assert set(remote(sandbox).values()) == {c["sip_username"] for c in creds}
        with pytest.raises(exc.SeatLimit) as err:
            await seat(ops, agents[5])
        assert (err.value.status, err.value.code) == (409, "seat_limit")
        assert "All 5 telephony seats are in use by agents who are online" in err.value.message
        assert len(remote(sandbox)) == 5
        again = await seat(ops, agents[0])  # a seated agent asking again keeps their seat
        assert again["sip_username"] == creds[0]["sip_username"]
    finally:
        await close(pages)


async def test_seats__agent_who_left_frees_the_seat_for_the_next_never_handed_over(
    sandbox, ops, agents, clock
) -> None:
    pages, creds = await five_seated(ops, agents)
    try:
        await pages[0].disconnect()  # agent1 closes the page
        left = await row(agents[0])
        clock.advance(IDLE + 1)
        await wait_seen(agents[1:5], clock())  # the open pages keep their agents present
        new = await seat(ops, agents[5])
        gone = await Credential.objects.aget(pk=left.pk)
        assert gone.deleted_reason == "seat_idle" and gone.deleted_at is not None
        accounts = remote(sandbox)
        assert left.telnyx_id not in accounts  # deleted at Telnyx: its tokens are dead
        mine = await row(agents[5])
        assert mine.telnyx_id != left.telnyx_id and mine.sip_username != left.sip_username
        assert new["sip_username"] == mine.sip_username != creds[0]["sip_username"]
        assert len(accounts) == 5
        event = await ServiceEvent.objects.aget(kind="seats_freed")
        assert event.data["deleted"] == [left.telnyx_id]
    finally:
        await close(pages[1:])


async def test_seats__page_reload_within_the_idle_time_keeps_the_seat(
    sandbox, ops, agents, clock
) -> None:
    pages, creds = await five_seated(ops, agents)
    try:
        await pages[0].disconnect()  # reload: the socket closes ...
        clock.advance(IDLE - 60)
        await wait_seen(agents[1:5], clock())
        with pytest.raises(exc.SeatLimit):
            await seat(ops, agents[5])  # ... and a newcomer cannot take the seat meanwhile
        pages[0] = await online(agents[0])  # ... and opens again
        clock.advance(IDLE - 60)  # past the idle time since the close, not since the reload
        await wait_seen(agents[:5], clock())
        with pytest.raises(exc.SeatLimit):
            await seat(ops, agents[5])
        again = await seat(ops, agents[0])
        assert again["sip_username"] == creds[0]["sip_username"]
        assert (await row(agents[0])).deleted_at is None
    finally:
        await close(pages)


async def test_seats__http_heartbeat_keeps_the_seat_while_the_socket_is_down(
    sandbox, ops, agents, clock
) -> None:
    pages, creds = await five_seated(ops, agents)
    web = AsyncClient()
    await web.aforce_login(agents[0])
    try:
        await pages[0].disconnect()  # the socket is down, the page still open
        for _ in range(3):
            clock.advance(IDLE / 2)
            response = await web.post("/api/webrtc/presence")
            assert response.status_code == 204 and response["Cache-Control"] == "no-store"
            await wait_seen(agents[1:5], clock())
        with pytest.raises(exc.SeatLimit):
            await seat(ops, agents[5])
        clock.advance(IDLE + 1)  # the page is gone: no heartbeat any more
        await wait_seen(agents[1:5], clock())
        await seat(ops, agents[5])
        assert (await Credential.objects.aget(sip_username=creds[0]["sip_username"])).deleted_at
    finally:
        await close(pages[1:])


async def test_seats__two_workers_allocating_at_once_never_exceed_the_limit(
    sandbox, agents, clock, settings
) -> None:
    settings.TELEPHONY_ACCOUNT_CREDENTIAL_LIMIT = 3  # the sandbox would take 5
    a, b = await _operations(sandbox, "a"), await _operations(sandbox, "b")
    try:
        results = await asyncio.gather(
            *(seat(a if n % 2 else b, user) for n, user in enumerate(agents)),
            return_exceptions=True,
        )
    finally:
        await a.adapter.aclose()
        await b.adapter.aclose()
    ok = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, exc.SeatLimit)]
    assert (len(ok), len(refused)) == (3, 3), results
    assert len(remote(sandbox)) == 3
    assert await Credential.objects.filter(deleted_at__isnull=True).acount() == 3


# -- the hygiene pass ---------------------------------------------------------------------


async def test_hygiene__deletes_seats_idle_past_the_idle_time_only(
    sandbox, ops, agents, clock
) -> None:
    pages, _ = await five_seated(ops, agents)
    try:
        await pages[0].disconnect()
        await pages[1].disconnect()
        clock.advance(IDLE - 10)
        await wait_seen(agents[2:5], clock())
        pages[1] = await online(agents[1])  # agent2 came back
        clock.advance(30)
        await wait_seen(agents[1:5], clock())
        await credential_hygiene(ops.adapter, worker_id="test:1")
        left = await row(agents[0])
        assert left.deleted_reason == "seat_idle"
        assert set(remote(sandbox)) == {(await row(u)).telnyx_id for u in agents[1:5]}
        assert await Credential.objects.filter(deleted_at__isnull=True).acount() == 4
    finally:
        await close(pages[1:])


# -- presence -----------------------------------------------------------------------------


async def test_presence__never_goes_back_and_a_lost_set_gives_every_seat_the_full_idle_time(
    clock,
) -> None:
    await presence.atouch(1, at=1000.0)
    await presence.atouch(1, at=900.0)  # a late write from a slow host
    assert (await presence.aread([1], at=1000.0))[1].last_seen == 1000.0
    get_redis().delete(Keys.presence())  # Redis lost the set
    seen = (await presence.aread([1, 2], at=5000.0))[2]
    assert seen.last_seen == 5000.0 and seen.online
    later = (await presence.aread([2], at=5000.0 + IDLE + 61))[2]
    assert later.reclaimable(IDLE) and not later.online


async def test_presence__the_socket_touches_on_connect_ping_and_close(agents, clock) -> None:
    page = await online(agents[0])
    assert await seen_at(agents[0]) == pytest.approx(clock(), abs=0.001)
    clock.advance(5)
    await page.send_json_to({"type": "ping"})
    while (await page.receive_json_from())["type"] != "pong":
        pass
    assert await seen_at(agents[0]) == pytest.approx(clock(), abs=0.001)
    clock.advance(5)
    await page.disconnect()
    assert await seen_at(agents[0]) == pytest.approx(clock(), abs=0.001)


async def test_presence__the_socket_refreshes_from_the_time_it_wrote(
    agents, clock, monkeypatch
) -> None:
    """The clock moving while a touch is written (a busy event loop, or a test moving it)
    must not make the page believe it touched later than Redis says: it would skip its
    next refresh, and its agent would look gone."""
    write = presence.atouch
    moved: list[bool] = []

    async def slow_write(user_id: int, *, at: float | None = None) -> None:
        await write(user_id, at=at)
        if not moved:
            moved.append(True)
            clock.advance(presence.PRESENCE_REFRESH_SECONDS + 1)  # during the write

    monkeypatch.setattr(presence, "atouch", slow_write)
    page = await online(agents[0])  # written at t, the clock now says t + 21
    try:
        await wait_seen([agents[0]], clock(), timeout=5)  # so it is due again at once
    finally:
        await page.disconnect()
