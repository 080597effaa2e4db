"""Which agents have a page open: the presence that telephony seats follow.

A telephony credential is an agent's seat while a page of theirs is open. The web side
says so by touching the agent here: on every WebSocket connect, every
``PRESENCE_REFRESH_SECONDS`` while it stays connected (and on the page's pings), on its
disconnect, and through ``POST /api/webrtc/presence`` while the socket is down. The
worker reads it to decide whose seat may go (``telephony.worker.seats``), and the health
page to show who holds the seats.

One Redis ZSET (``Keys.presence()``): member the user id, score the last time seen
(epoch ms). Nobody deletes a member: "offline since" is exactly that score. A member
``since`` holds when tracking began; a holder with no score of their own counts as seen
then. If Redis loses the set (a flush, a new server), ``since`` is written anew, so every
seat gets the full idle time again instead of being reclaimed at once under agents who
are online but have not been seen by the new Redis yet.

The clock is the module's ``clock`` (read at call time), so tests move time without
sleeping, for the web side and the worker alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from telephony.connections import get_async_redis, get_redis
from telephony.keys import Keys

clock: Callable[[], float] = time.time

SINCE = "since"
PRESENCE_REFRESH_SECONDS = 20.0  # a connected page is touched this often
PRESENCE_WINDOW_SECONDS = 60.0  # seen this recently: online (three refreshes)


def now() -> float:
    """The presence clock, epoch seconds."""
    return clock()


def seat_idle_seconds() -> float:
    """``TELEPHONY_SEAT_IDLE_SECONDS``, read when used."""
    return float(settings.TELEPHONY_SEAT_IDLE_SECONDS)


@dataclass(frozen=True)
class Presence:
    """What is known of one agent's pages: when last seen, and what that makes them."""

    user_id: int
    last_seen: float  # epoch seconds (tracking start when never seen since)
    at: float  # when this was read

    @property
    def online(self) -> bool:
        """A page of theirs was seen within the presence window."""
        return self.at - self.last_seen <= PRESENCE_WINDOW_SECONDS

    @property
    def idle_seconds(self) -> float:
        return max(0.0, self.at - self.last_seen)

    def reclaimable(self, idle_after: float | None = None) -> bool:
        """Offline for longer than ``TELEPHONY_SEAT_IDLE_SECONDS``: their seat may go."""
        limit = seat_idle_seconds() if idle_after is None else idle_after
        return not self.online and self.idle_seconds > limit


async def atouch(user_id: int, *, at: float | None = None) -> None:
    """Record that a page of this agent is open now (never moves the time backwards)."""
    async with get_async_redis().pipeline(transaction=False) as pipe:
        queue_touch(pipe, user_id, at=at)
        await pipe.execute()


def queue_touch(pipe: Any, user_id: int, *, at: float | None = None) -> None:
    """Add :func:`atouch`'s commands to a pipeline the caller runs (with its own reads)."""
    ms = int((now() if at is None else at) * 1000)
    key = Keys.presence()
    pipe.zadd(key, {SINCE: ms}, nx=True)
    pipe.zadd(key, {str(user_id): ms}, gt=True)


def touch(user_id: int, *, at: float | None = None) -> None:
    """Sync twin of :func:`atouch` (sync views, tests)."""
    ms = int((now() if at is None else at) * 1000)
    key = Keys.presence()
    pipe = get_redis().pipeline(transaction=False)
    pipe.zadd(key, {SINCE: ms}, nx=True)
    pipe.zadd(key, {str(user_id): ms}, gt=True)
    pipe.execute()


def _build(user_ids: list[int], scores: list[float | None], at: float) -> dict[int, Presence]:
    since, own = scores[0], scores[1:]
    start = at if since is None else since / 1000
    return {
        uid: Presence(uid, max(start, (score or 0) / 1000), at)
        for uid, score in zip(user_ids, own, strict=True)
    }


async def aread(user_ids: Iterable[int], *, at: float | None = None) -> dict[int, Presence]:
    """Presence of these agents; starts tracking (``since``) when the set was lost."""
    ids = sorted(set(user_ids))
    at = now() if at is None else at
    key = Keys.presence()
    r = get_async_redis()
    async with r.pipeline(transaction=False) as pipe:
        pipe.zadd(key, {SINCE: int(at * 1000)}, nx=True)
        pipe.zmscore(key, [SINCE, *map(str, ids)])
        _, scores = await pipe.execute()
    return _build(ids, scores, at)


def read(user_ids: Iterable[int], *, at: float | None = None) -> dict[int, Presence]:
    """Sync twin of :func:`aread` for the health page; writes nothing."""
    ids = sorted(set(user_ids))
    at = now() if at is None else at
    scores = get_redis().zmscore(Keys.presence(), [SINCE, *map(str, ids)])
    return _build(ids, scores, at)
