"""The baseline: the same operation behind a plain Channels consumer.

``channels.worker.Worker`` (what ``runworker`` runs) hands messages to one consumer
instance that handles them one at a time, so a 200 ms provider call caps it at ~5/s.
"""

from __future__ import annotations

import time
from typing import Any

import django
from channels.consumer import AsyncConsumer


class PlainConsumer(AsyncConsumer):
    async def credential_create(self, message: dict[str, Any]) -> None:
        from telephony.protocol import Reply, Request
        from telephony.worker.adapter import RequestContext
        from telephony.worker.replies import send_reply

        request = Request.decode(message)
        ctx = RequestContext(request_id=request.request_id, deadline=request.deadline_s)
        result = await ops().credential_create(ctx, request.payload)
        reply = Reply.success(request.request_id, result)
        await send_reply(self.channel_layer, request, reply, now=time.time())


_ops: Any = None


def ops() -> Any:
    global _ops
    if _ops is None:
        from django.conf import settings

        from telephony.worker.adapter import TelnyxAdapter
        from telephony.worker.breaker import CircuitBreaker
        from telephony.worker.operations import Operations

        adapter = TelnyxAdapter(
            api_key=settings.TELNYX_API_KEY,
            base_url=settings.TELNYX_BASE_URL,
            breaker=CircuitBreaker(),
        )
        _ops = Operations(adapter, worker_id="plain")
    return _ops


if __name__ == "__main__":
    django.setup()
    from channels.layers import get_channel_layer
    from channels.routing import ChannelNameRouter
    from channels.worker import Worker

    app = ChannelNameRouter({"telephony": PlainConsumer.as_asgi()})
    Worker(application=app, channels=["telephony"], channel_layer=get_channel_layer()).run()
    time.sleep(0)
