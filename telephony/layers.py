"""Channel-layer and Redis connection settings shared by every process."""

from __future__ import annotations

import asyncio
from typing import Any

from channels_redis.core import RedisChannelLayer

# channels-redis blocks up to 5 s in BZPOPMIN per receive; redis-py 8 times socket
# reads out after 5 s by default, so an idle receiver would die with TimeoutError.
# Reads must be allowed to last longer than the blocking pop.
REDIS_SOCKET_TIMEOUT = 15.0
REDIS_CONNECT_TIMEOUT = 2.0


def channel_layers_config(redis_url: str, *, prefix: str, capacity: int = 1000) -> dict[str, Any]:
    """Build ``CHANNEL_LAYERS`` for one Redis URL (tcp, tls or unix socket)."""
    return {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": redis_url,
                        "socket_timeout": REDIS_SOCKET_TIMEOUT,
                        "socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
                    }
                ],
                "prefix": f"{prefix}:asgi",
                "capacity": capacity,
                "expiry": 60,
                "group_expiry": 86400,
            },
        }
    }


def redis_client_kwargs() -> dict[str, Any]:
    """Keyword arguments for plain redis-py clients (state, heartbeats, claims)."""
    return {
        "socket_timeout": REDIS_SOCKET_TIMEOUT,
        "socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
        "health_check_interval": 30,
    }


async def receive_or_idle(
    layer: RedisChannelLayer, channel: str, *, idle: int
) -> dict[str, Any] | None:
    """One message off a shared channel, or None when none came within ``idle`` seconds.

    For intake that must stop without losing a message. ``layer.receive`` blocks until a
    message comes, so stopping means cancelling it, and a cancel that lands while Redis
    serves the BZPOPMIN (the message popped, the reply not yet read, or not yet in the
    backup queue) loses that message. Here the BZPOPMIN itself times out, so a stopping
    worker just lets the current call end: whatever it pops, it handles.

    Mirrors ``RedisChannelLayer.receive_single`` (channels-redis 4.3, pinned) with one
    bounded pop instead of a loop: the same backup queue, clean-up and per-channel lock.
    """
    assert "!" not in channel, "process-specific channels need layer.receive"
    key = layer.prefix + channel
    index = next(layer._receive_index_generator)
    await layer.receive_clean_locks.acquire(key)
    try:
        content = await layer._brpop_with_clean(index, key, timeout=idle)
        if content is None:
            layer.receive_clean_locks.release(key)
            return None
        cleaner = asyncio.ensure_future(layer._clean_receive_backup(index, key))
        layer.receive_cleaners.append(cleaner)

        def cleaned(task: asyncio.Future[Any]) -> None:
            layer.receive_cleaners.remove(task)
            layer.receive_clean_locks.release(key)

        cleaner.add_done_callback(cleaned)
    except BaseException:
        layer.receive_clean_locks.release(key)
        raise
    message: dict[str, Any] = layer.deserialize(content)
    message.pop("__asgi_channel__", None)
    return message
