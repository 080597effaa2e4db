"""How a worker answers: the reply on the request's own key (the one-hop reply path).

See docs/ARCHITECTURE.md, "The reply path".
"""

from __future__ import annotations

import logging

from telephony.keys import Keys
from telephony.layers import TelephonyChannelLayer
from telephony.protocol import Reply, Request

logger = logging.getLogger(__name__)

REPLY_TTL_EXTRA_MS = 5_000  # a reply nobody popped outlives the deadline this long, no more


async def send_reply(
    layer: TelephonyChannelLayer, request: Request, reply: Reply, *, now: float
) -> None:
    """Push the reply on the request's own key (one round trip, gone with a TTL just past
    the deadline), or send it to the process channel a previous version's web process
    still names during a rolling deploy. Any other ``reply_to`` is not ours to write."""
    if request.reply_to == Keys.reply(request.request_id):
        ttl_ms = (request.deadline_s - now) * 1000 + REPLY_TTL_EXTRA_MS
        await layer.push_reply(request.reply_to, reply.encode(), ttl_ms=int(ttl_ms))
    elif "!" in request.reply_to:
        await layer.send(request.reply_to, reply.encode())
    else:
        logger.warning(
            "[Telephony Worker] request_id=%s reply dropped: reply_to is not its reply key",
            request.request_id,
        )
