"""Redis connections and key names shared by the web, supervisor and worker processes.

Settings are read when a connection is first asked for, never at import, so tests can
point a process at another Redis.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref

import redis
import redis.asyncio as aioredis
from django.conf import settings

from telephony.layers import redis_client_kwargs

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_sync_clients: dict[str, redis.Redis] = {}
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, aioredis.Redis]] = (
    weakref.WeakKeyDictionary()
)


def get_redis() -> redis.Redis:
    """A process-wide sync client (thread-safe pool) for ``settings.REDIS_URL``."""
    url = settings.REDIS_URL
    client = _sync_clients.get(url)
    if client is None:
        with _lock:
            client = _sync_clients.get(url)
            if client is None:
                client = redis.Redis.from_url(url, **redis_client_kwargs())
                _sync_clients[url] = client
    return client


def get_async_redis() -> aioredis.Redis:
    """An asyncio client bound to the running event loop (asyncio clients cannot cross loops)."""
    loop = asyncio.get_running_loop()
    url = settings.REDIS_URL
    per_loop = _async_clients.setdefault(loop, {})
    client = per_loop.get(url)
    if client is None:
        # Blocking pool: a burst of concurrent requests waits for a connection instead
        # of failing with MaxConnectionsError.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=64, timeout=5, **redis_client_kwargs()
        )
        client = aioredis.Redis.from_pool(pool)
        per_loop[url] = client
        _close_with_loop(loop)
    return client


def _close_with_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Close this loop's clients when the loop closes.

    Sync callers (``async_to_sync`` in WSGI views, management commands) run each call in
    a short-lived loop; without this its connections would be left open behind it.
    """
    original = loop.close

    def close() -> None:
        clients = _async_clients.pop(loop, {})
        if clients and not loop.is_running() and not loop.is_closed():
            for client in clients.values():
                try:
                    loop.run_until_complete(client.aclose())
                except Exception as e:  # closing must never break the loop's own close
                    logger.debug("closing a Redis client failed: %s", e)
        original()

    loop.close = close  # type: ignore[method-assign]


def reset_clients() -> None:
    """Forget cached clients (tests switching Redis servers)."""
    with _lock:
        for client in _sync_clients.values():
            client.close()
        _sync_clients.clear()
    _async_clients.clear()


class Keys:
    """Every Redis key the service uses, under ``TELEPHONY_REDIS_PREFIX``."""

    @staticmethod
    def prefix() -> str:
        return str(settings.TELEPHONY_REDIS_PREFIX)

    @classmethod
    def workers(cls) -> str:
        """ZSET worker_id -> last heartbeat (epoch ms)."""
        return f"{cls.prefix()}:workers"

    @classmethod
    def worker(cls, worker_id: str) -> str:
        """JSON heartbeat of one worker, with a TTL of the heartbeat timeout."""
        return f"{cls.prefix()}:worker:{worker_id}"

    @classmethod
    def supervisors(cls) -> str:
        """ZSET supervisor_id -> last update (epoch ms)."""
        return f"{cls.prefix()}:supervisors"

    @classmethod
    def supervisor(cls, supervisor_id: str) -> str:
        """JSON record of one supervisor, with a TTL of the heartbeat timeout."""
        return f"{cls.prefix()}:supervisor:{supervisor_id}"

    @classmethod
    def supervisors_last(cls) -> str:
        """HASH supervisor_id -> its last record, no TTL: tells a lost supervisor (record
        expired, never said it stopped) from one that stopped on purpose (entry removed)."""
        return f"{cls.prefix()}:supervisors:last"

    @classmethod
    def last_status(cls) -> str:
        """The last service status a supervisor announced (to record each change once)."""
        return f"{cls.prefix()}:state:last"

    @classmethod
    def stopped(cls) -> str:
        """Set when the last supervisor stopped on purpose; removed when one starts."""
        return f"{cls.prefix()}:stopped"

    @classmethod
    def claim(cls, request_id: str) -> str:
        """SET NX marker: this request_id was taken by one worker, once."""
        return f"{cls.prefix()}:claim:{request_id}"

    @classmethod
    def breaker_forced(cls) -> str:
        """Operator maintenance switch for the provider circuit: "open" or "closed"."""
        return f"{cls.prefix()}:breaker:forced"

    @classmethod
    def metric_requests(cls) -> str:
        """HASH "op|outcome" -> requests handled by all workers, ever (Prometheus counter)."""
        return f"{cls.prefix()}:metrics:requests"

    @classmethod
    def metric_latency(cls) -> str:
        """HASH "op|bucket" -> count, "op|sum", "op|count": request latency histogram."""
        return f"{cls.prefix()}:metrics:latency"

    @classmethod
    def presence(cls) -> str:
        """ZSET user_id -> when a page of theirs was last seen (epoch ms), the seats'
        presence; member ``since``: when tracking began (see ``telephony.presence``)."""
        return f"{cls.prefix()}:presence"

    @classmethod
    def control(cls, supervisor_id: str) -> str:
        """LIST of control commands for one supervisor."""
        return f"{cls.prefix()}:control:{supervisor_id}"


_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)


async def release_lock(key: str, token: str) -> None:
    """Delete a lock key only if it still holds our token (compare-and-delete)."""
    await get_async_redis().eval(_RELEASE, 1, key, token)


async def aclose_clients() -> None:
    """Close the asyncio clients bound to the running loop (before the loop goes away)."""
    per_loop = _async_clients.pop(asyncio.get_running_loop(), {})
    for client in per_loop.values():
        await client.aclose()
