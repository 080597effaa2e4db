"""The channel layer every process uses, and its settings.

:class:`TelephonyChannelLayer` is channels-redis's ``RedisChannelLayer`` plus the one
receive the worker's intake needs. It is the only module that touches channels-redis
internals (``_``-prefixed attributes); ``tests/telephony/test_layers.py`` pins them, so
an upgrade that changes them fails the tests instead of losing messages in production.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from channels.exceptions import ChannelFull
from channels_redis.core import RedisChannelLayer

from telephony.connections import async_sentinel_pool

# The layer's configuration is built with the other Redis settings, in one place.
from telephony.redis_target import LAYER_BACKEND as BACKEND
from telephony.redis_target import (
    REDIS_CONNECT_TIMEOUT,
    REDIS_SOCKET_TIMEOUT,
    channel_layers_config,
)

# One BLPOP blocks at most this long, well below REDIS_SOCKET_TIMEOUT; a longer wait
# is several of them.
MAX_BLOCK = 5.0

__all__ = [
    "BACKEND",
    "REDIS_CONNECT_TIMEOUT",
    "REDIS_SOCKET_TIMEOUT",
    "TelephonyChannelLayer",
    "channel_layers_config",
]

# send() to a shared channel in one round trip: channels-redis's four commands (expire old
# messages, count, add, refresh the TTL) as one script, the capacity check included.
_SEND = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, ARGV[3])
if redis.call('ZCOUNT', KEYS[1], '-inf', '+inf') >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""
# The non-blocking half of a pop, in one round trip: channels-redis's backup restore, then
# ZPOPMIN and the copy into the backup queue, atomically (its BZPOPMIN + ZADD are two
# commands, with a crash between them losing the message). False when nothing waits.
_POP_WAITING = """
local backed_up = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
for i = #backed_up, 1, -2 do
    redis.call('ZADD', KEYS[1], backed_up[i], backed_up[i - 1])
end
redis.call('DEL', KEYS[2])
local popped = redis.call('ZPOPMIN', KEYS[1])
if popped[1] == nil then return false end
redis.call('ZADD', KEYS[2], popped[2], popped[1])
return popped[1]
"""


class TelephonyChannelLayer(RedisChannelLayer):
    """``RedisChannelLayer`` with :meth:`receive_or_idle`, a receive a worker can stop
    between pops without losing a message, and the one-hop reply path
    (:meth:`push_reply`, :meth:`pop_reply`).

    Why a subclass: the public ``receive`` blocks until a message comes, so the only way
    to stop it is to cancel it, and a cancel that lands while Redis serves the BZPOPMIN
    (the message popped, the reply not yet read or not yet in the backup queue) loses
    that message. channels-redis has no public bounded receive, so this class builds
    one from the same private pieces its ``receive_single`` uses (channels-redis 4.3.0,
    pinned in requirements.txt; the attributes are listed in :attr:`PRIVATE_API` and
    checked by ``tests/telephony/test_layers.py``). Nothing outside this class touches
    them.

    The one-hop methods carry a reply on a per-request key (``Keys.reply``): the worker
    pushes it with a TTL in one MULTI, the caller pops it with one BLPOP. They reach
    Redis through the public ``self.connection(index)`` and the layer's own serializer
    (so a layer with encryption keys encrypts replies too), on the host the key hashes
    to, like a process channel.
    """

    # The channels-redis internals this class relies on: (name, parameters) of methods,
    # (name, None) of instance attributes.
    PINNED_VERSION = "4.3.0"
    PRIVATE_API: tuple[tuple[str, tuple[str, ...] | None], ...] = (
        ("_receive_index_generator", None),
        ("_brpop_with_clean", ("index", "channel", "timeout")),
        ("_backup_channel_name", None),
        ("_send_index_generator", None),
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

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """``RedisChannelLayer.send`` in one round trip for a shared channel (the requests
        to the workers); process channels keep the stock path."""
        if "!" in channel:
            await super().send(channel, message)
            return
        assert isinstance(message, dict), "message is not a dict"
        assert self.require_valid_channel_name(channel), "Channel name not valid"
        assert "__asgi_channel__" not in message
        connection = self.connection(next(self._send_index_generator))
        now = time.time()
        sent = await connection.eval(
            _SEND, 1, self.prefix + channel, self.serialize(message), now,
            int(now) - int(self.expiry), self.get_capacity(channel), int(self.expiry),
        )  # fmt: skip
        if not sent:
            raise ChannelFull()

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
            connection = self.connection(index)
            backup = self._backup_channel_name(key)
            content = await connection.eval(_POP_WAITING, 2, key, backup)
            if content is None:  # nothing waiting: block, the way channels-redis does
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

    # -- the one-hop reply path --------------------------------------------------------------

    def _reply_connection(self, key: str) -> Any:
        return self.connection(self.consistent_hash(key))

    async def push_reply(self, key: str, message: dict[str, Any], *, ttl_ms: int) -> None:
        """Leave ``message`` on ``key`` for its caller; it expires ``ttl_ms`` later if
        nobody pops it (a caller that gave up leaves nothing behind). One round trip."""
        async with self._reply_connection(key).pipeline(transaction=True) as pipe:
            pipe.lpush(key, self.serialize(message))
            pipe.pexpire(key, max(int(ttl_ms), 1))
            await pipe.execute()

    async def pop_reply(self, key: str, *, timeout: float) -> dict[str, Any] | None:
        """The reply pushed on ``key``, or None if none came within ``timeout`` seconds.

        Redis times the BLPOP out itself, so nothing here is cancelled to meet the
        deadline (a cancel landing mid-command is what loses data). A Redis error is
        raised as is: the request has left, its outcome is for the caller to call unknown.
        """
        connection = self._reply_connection(key)
        until = time.monotonic() + timeout
        while True:
            left = until - time.monotonic()
            if left < 0.001:  # BLPOP's timeout 0 would block for ever
                return None
            popped = await connection.blpop([key], timeout=min(left, MAX_BLOCK))
            if popped is not None:
                message: dict[str, Any] = self.deserialize(popped[1])
                return message
