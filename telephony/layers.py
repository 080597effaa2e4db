"""Channel-layer and Redis connection settings shared by every process."""

from __future__ import annotations

from typing import Any

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
