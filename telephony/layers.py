"""The channel layer every process uses, and its settings.

:class:`TelephonyChannelLayer` is channels-redis's ``RedisChannelLayer`` plus the one
receive the worker's intake needs. It is the only module that touches channels-redis
internals (``_``-prefixed attributes); ``tests/telephony/test_layers.py`` pins them, so
an upgrade that changes them fails the tests instead of losing messages in production.
"""

from __future__ import annotations

import asyncio
from typing import Any

from channels_redis.core import RedisChannelLayer

from telephony.connections import async_sentinel_pool

# The layer's configuration is built with the other Redis settings, in one place.
from telephony.redis_target import LAYER_BACKEND as BACKEND
from telephony.redis_target import (
    REDIS_CONNECT_TIMEOUT,
    REDIS_SOCKET_TIMEOUT,
    channel_layers_config,
)

__all__ = [
    "BACKEND",
    "REDIS_CONNECT_TIMEOUT",
    "REDIS_SOCKET_TIMEOUT",
    "TelephonyChannelLayer",
    "channel_layers_config",
]


class TelephonyChannelLayer(RedisChannelLayer):
    """``RedisChannelLayer`` with :meth:`receive_or_idle`: a receive a worker can stop
    between pops without losing a message.

    Why a subclass: the public ``receive`` blocks until a message comes, so the only way
    to stop it is to cancel it, and a cancel that lands while Redis serves the BZPOPMIN
    (the message popped, the reply not yet read or not yet in the backup queue) loses
    that message. channels-redis has no public bounded receive, so this class builds
    one from the same private pieces its ``receive_single`` uses (channels-redis 4.3.0,
    pinned in requirements.txt; the attributes are listed in :attr:`PRIVATE_API` and
    checked by ``tests/telephony/test_layers.py``). Nothing outside this class touches
    them.

    Later one-hop methods (a reply on a per-request key, popped with one blocking call)
    belong here too: they reach Redis through the public ``self.connection(index)``.
    """

    # The channels-redis internals this class relies on: (name, parameters) of methods,
    # (name, None) of instance attributes.
    PINNED_VERSION = "4.3.0"
    PRIVATE_API: tuple[tuple[str, tuple[str, ...] | None], ...] = (
        ("_receive_index_generator", None),
        ("_brpop_with_clean", ("index", "channel", "timeout")),
        ("_clean_receive_backup", ("index", "channel")),
        ("receive_clean_locks", None),
        ("receive_cleaners", None),
    )

    def create_pool(self, index: int) -> Any:
        """channels-redis's pool, except with Sentinel: ours, which closes its Sentinel
        clients too when the layer closes its pools."""
        host = dict(self.hosts[index])
        if "master_name" not in host:
            return super().create_pool(index)
        return async_sentinel_pool(
            host.pop("master_name"),
            host.pop("sentinels"),
            sentinel_kwargs=host.pop("sentinel_kwargs", None) or {},
            **host,
        )

    async def receive_or_idle(self, channel: str, *, idle: float) -> dict[str, Any] | None:
        """One message off a shared channel, or None when none came within ``idle`` s.

        The BZPOPMIN itself times out, so a stopping worker lets the current call end
        (at most ``idle`` seconds) and handles whatever it popped. It mirrors
        ``receive_single`` with one bounded pop instead of a loop: the same backup queue
        (a message popped but not yet acknowledged is put back by the next receive if
        this process dies), the same clean-up task and per-channel lock.
        """
        assert "!" not in channel, "process-specific channels need receive()"
        key = self.prefix + channel
        index = next(self._receive_index_generator)
        await self.receive_clean_locks.acquire(key)
        try:
            content = await self._brpop_with_clean(index, key, timeout=idle)
            if content is None:
                self.receive_clean_locks.release(key)
                return None
            cleaner = asyncio.ensure_future(self._clean_receive_backup(index, key))
            self.receive_cleaners.append(cleaner)

            def cleaned(task: asyncio.Future[Any]) -> None:
                self.receive_cleaners.remove(task)
                self.receive_clean_locks.release(key)

            cleaner.add_done_callback(cleaned)
        except BaseException:
            self.receive_clean_locks.release(key)
            raise
        message: dict[str, Any] = self.deserialize(content)
        message.pop("__asgi_channel__", None)
        return message
