"""The floor under any one-hop round trip: a worker-like echo process on raw redis-py.

It pops a request off a list (BRPOP) and pushes it back on the request's own reply key
(LPUSH + PEXPIRE in one MULTI), exactly the Redis work of the product's reply path with
nothing else: no channel layer, no claim, no Django.
"""

from __future__ import annotations

import asyncio
import json
import sys

import redis.asyncio as aioredis

REQUESTS = "bench:echo:requests"


async def main(url: str) -> None:
    r = aioredis.Redis.from_url(url, socket_timeout=15)
    while True:
        popped = await r.brpop([REQUESTS], timeout=5)
        if popped is None:
            continue
        raw = popped[1]
        reply_to = json.loads(raw)["reply_to"]
        async with r.pipeline(transaction=True) as pipe:
            pipe.lpush(reply_to, raw)
            pipe.pexpire(reply_to, 10_000)
            await pipe.execute()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
