"""Claiming a request before executing it: at most once, also across a Redis failover.

The claim is a ``SET NX`` of ``Keys.claim(request_id)``. On one Redis that is enough. With
Sentinel, the master may die after acknowledging the claim but before a replica got it;
the promoted replica then has no claim (and may still hold the message in the channel
queue), so another worker could claim and execute the same request again. Hence, in the
same pipeline on the same connection, ``WAIT replicas timeout``: the request runs only
when ``TELEPHONY_CLAIM_REPLICAS`` replicas hold the claim (and, the replication stream
being ordered, the pop of the message before it). Otherwise it is refused unexecuted.
Guarantee and limits: docs/ARCHITECTURE.md, "At most once across a Redis failover".
"""

from __future__ import annotations

import enum

from django.conf import settings

from telephony.connections import get_async_redis
from telephony.keys import Keys


class Claim(enum.Enum):
    OURS = "ours"  # claimed and replicated as asked: execute
    TAKEN = "taken"  # someone claimed it before: a duplicate delivery, drop it
    UNREPLICATED = "unreplicated"  # ours, but no replica confirmed it in time: refuse


async def claim_request(request_id: str, owner: str, *, ttl_ms: int) -> Claim:
    """Claim ``request_id`` for ``owner``. Raises ``redis.RedisError`` / ``OSError``."""
    replicas = int(settings.TELEPHONY_CLAIM_REPLICAS)
    pipe = get_async_redis().pipeline(transaction=False)
    pipe.set(Keys.claim(request_id), owner, nx=True, px=ttl_ms)
    if replicas > 0:
        pipe.wait(replicas, int(settings.TELEPHONY_CLAIM_WAIT_MS))
    results = await pipe.execute()
    if not results[0]:
        return Claim.TAKEN
    if replicas > 0 and int(results[1]) < replicas:
        return Claim.UNREPLICATED
    return Claim.OURS
