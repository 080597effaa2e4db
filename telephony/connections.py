"""Redis connections shared by the web, supervisor and worker processes (keys: telephony.keys).

Settings are read when a connection is first asked for, never at import, so tests can
point a process at another Redis. The target is one URL or a Sentinel-managed master
(:mod:`telephony.redis_target`); with Sentinel every new connection asks the Sentinels
where the master is, so after a failover the clients find the new one by themselves.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from typing import Any

import redis
import redis.asyncio as aioredis
import redis.asyncio.sentinel as aiosentinel
import redis.sentinel
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

from telephony.redis_target import (
    REDIS_CONNECT_TIMEOUT,
    REDIS_SOCKET_TIMEOUT,
    RedisTarget,
    parse_sentinels,
)

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_sync_clients: dict[RedisTarget, redis.Redis] = {}
_async_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[RedisTarget, aioredis.Redis]
] = weakref.WeakKeyDictionary()


def redis_target() -> RedisTarget:
    """The Redis the settings point at now (tests may change ``settings.REDIS_URL``)."""
    sentinels = parse_sentinels(getattr(settings, "REDIS_SENTINELS", []))
    password = getattr(settings, "REDIS_PASSWORD", "")
    if sentinels:
        return RedisTarget(
            sentinels=sentinels,
            master=settings.REDIS_SENTINEL_MASTER,
            password=password,
            sentinel_password=getattr(settings, "REDIS_SENTINEL_PASSWORD", ""),
        )
    return RedisTarget(url=settings.REDIS_URL, password=password)


def redis_client_kwargs() -> dict[str, Any]:
    """Keyword arguments for every plain redis-py client (state, heartbeats, claims).

    ``decode_responses``: replies come back as ``str``, decoded here once, so no reader
    calls ``.decode()`` on a reply. Keep binary data out of these clients.
    """
    return {
        "socket_timeout": REDIS_SOCKET_TIMEOUT,
        "socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
        "health_check_interval": 30,
        "decode_responses": True,
    }


def new_redis(target: RedisTarget | None = None, **overrides: Any) -> redis.Redis:
    """A new sync client (its own pool) for ``target``, default: the settings' one.

    ``overrides`` replace :func:`redis_client_kwargs` (the supervisor's short timeouts).
    """
    target = target or redis_target()
    kwargs = {**redis_client_kwargs(), **target.master_kwargs(), **overrides}
    if target.is_sentinel:
        sentinel = redis.sentinel.Sentinel(
            list(target.sentinels), sentinel_kwargs=target.sentinel_kwargs()
        )
        return sentinel.master_for(target.master, redis_class=redis.Redis, **kwargs)
    return redis.Redis.from_url(target.url, **kwargs)


def get_redis() -> redis.Redis:
    """A process-wide sync client (thread-safe pool) for the configured Redis."""
    target = redis_target()
    client = _sync_clients.get(target)
    if client is None:
        with _lock:
            client = _sync_clients.get(target)
            if client is None:
                client = new_redis(target)
                _sync_clients[target] = client
    return client


class SentinelPool(aiosentinel.SentinelConnectionPool):
    """redis-py's asyncio Sentinel pool that also closes its Sentinel clients when it is
    closed (redis-py leaves those connections open)."""

    async def disconnect(self, inuse_connections: bool = True) -> None:
        await super().disconnect(inuse_connections)
        if inuse_connections:  # a full close, not the drop of idle ones on a new master
            await self.sentinel_manager.aclose()


class _BlockingSentinelPool(SentinelPool, aioredis.BlockingConnectionPool):
    """Sentinel's master discovery with the blocking pool's wait for a free connection."""


def async_sentinel_pool(
    master: str,
    sentinels: list[tuple[str, int]] | list[list[Any]],
    *,
    sentinel_kwargs: dict[str, Any],
    blocking: bool = False,
    **kwargs: Any,
) -> SentinelPool:
    """An asyncio pool for the master ``master`` as the ``sentinels`` name it."""
    manager = aiosentinel.Sentinel([tuple(s) for s in sentinels], sentinel_kwargs=sentinel_kwargs)
    if blocking:
        return _BlockingSentinelPool(master, manager, **kwargs)
    return SentinelPool(master, manager, **kwargs)


def get_async_redis() -> aioredis.Redis:
    """An asyncio client bound to the running event loop (asyncio clients cannot cross loops)."""
    loop = asyncio.get_running_loop()
    target = redis_target()
    per_loop = _async_clients.setdefault(loop, {})
    client = per_loop.get(target)
    if client is None:
        # Blocking pool: a burst of concurrent requests waits for a connection instead
        # of failing with MaxConnectionsError.
        kwargs = {**redis_client_kwargs(), **target.master_kwargs()}
        pool: aioredis.ConnectionPool
        if target.is_sentinel:
            pool = async_sentinel_pool(
                target.master,
                list(target.sentinels),
                sentinel_kwargs=target.sentinel_kwargs(),
                blocking=True,
                max_connections=64,
                timeout=5,
                **kwargs,
            )
        else:
            pool = aioredis.BlockingConnectionPool.from_url(
                target.url, max_connections=64, timeout=5, **kwargs
            )
        client = aioredis.Redis.from_pool(pool)
        per_loop[target] = client
        _close_with_loop(loop)
    return client


class SentinelCachePool(redis.sentinel.SentinelConnectionPool):
    """The pool Django's Redis cache uses with Sentinel (``CACHES`` ``pool_class``).

    Django builds its pools with ``pool_class.from_url(LOCATION, **OPTIONS)``; the
    location is a placeholder, the master comes from the Sentinels in the settings.
    """

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SentinelCachePool:
        target = redis_target()
        sentinel = redis.sentinel.Sentinel(
            list(target.sentinels), sentinel_kwargs=target.sentinel_kwargs()
        )
        return cls(target.master, sentinel, **target.master_kwargs(), **options)


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


# -- start-up check ------------------------------------------------------------------------

UNREACHABLE, MISCONFIGURED = "unreachable", "misconfigured"


def redis_problem(timeout: float = 2.0) -> tuple[str, str] | None:
    """What keeps this process from the configured Redis: ``(kind, one line)`` or None.

    ``kind`` is :data:`MISCONFIGURED` (a wrong password, an unknown master: waiting will
    not help) or :data:`UNREACHABLE`. The line names hosts and settings, never a secret.
    """
    target = redis_target()
    if target.is_sentinel:
        found = _ask_sentinels(target, timeout)
        if isinstance(found, tuple):
            return found
        where = f"Redis master {found} (named by the Sentinels)"
    else:
        where = f"Redis at {target.describe()}"
    unreachable = f"Redis unreachable at {found if target.is_sentinel else target.describe()}"
    quick = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "retry": _no_retry()}
    client = new_redis(target, **quick)
    try:
        client.ping()
    except redis.AuthenticationError:
        return MISCONFIGURED, f"{where} refused the password (REDIS_PASSWORD or REDIS_URL)"
    except (redis.RedisError, OSError) as e:
        return (
            UNREACHABLE,
            f"{unreachable} ({type(e).__name__})" if target.is_sentinel else unreachable,
        )
    finally:
        client.close()
    return None


def _ask_sentinels(target: RedisTarget, timeout: float) -> str | tuple[str, str]:
    """The master's ``host:port`` as the first Sentinel that knows it says, or the problem."""
    hosts = ",".join(f"{h}:{p}" for h, p in target.sentinels)
    outcomes = set()
    kwargs = {
        **target.sentinel_kwargs(),
        "socket_timeout": timeout,
        "retry": _no_retry(),
        "decode_responses": True,
    }
    for host, port in target.sentinels:
        sentinel = redis.Redis(host=host, port=port, **kwargs)
        try:
            addr: Any = sentinel.sentinel_get_master_addr_by_name(target.master)
        except redis.AuthenticationError:
            outcomes.add("auth")
            continue
        except (redis.RedisError, OSError):
            outcomes.add("down")
            continue
        finally:
            sentinel.close()
        if addr:
            return f"{addr[0]}:{addr[1]}"
        outcomes.add("unknown")
    if "unknown" in outcomes:
        return MISCONFIGURED, (
            f"the Redis Sentinels at {hosts} know no master named {target.master!r} "
            "(REDIS_SENTINEL_MASTER)"
        )
    if "auth" in outcomes:
        return MISCONFIGURED, (
            f"the Redis Sentinels at {hosts} refused the password (REDIS_SENTINEL_PASSWORD)"
        )
    return UNREACHABLE, f"no Redis Sentinel answers at {hosts}"


def _no_retry() -> Retry:
    return Retry(NoBackoff(), 0)
