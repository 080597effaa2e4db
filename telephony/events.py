"""Live updates: channel-layer groups that WebSocket consumers join.

Sending is best effort. The database is the record; a lost push only delays what a page
shows until its next poll, so a failure here is logged and never raised.
"""

from __future__ import annotations

import logging
from typing import Any

from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

STATUS_GROUP = "telephony.status"


def user_group(user_id: int | str) -> str:
    """The group of one user's WebSockets (their own call updates)."""
    return f"telephony.user.{user_id}"


async def push(group: str, message: dict[str, Any]) -> None:
    """group_send that never raises."""
    try:
        layer = get_channel_layer()
        if layer is not None:
            await layer.group_send(group, message)
    except Exception as e:  # a push must never fail the operation it reports
        logger.warning("[Telephony Events] push to %s failed: %s", group, type(e).__name__)


async def push_call(user_id: int | str, call: dict[str, Any]) -> None:
    """Tell the owner's pages that one of their calls changed."""
    await push(user_group(user_id), {"type": "call.update", "call": call})


async def push_state(state: dict[str, Any]) -> None:
    """Tell every page that the service state changed."""
    await push(STATUS_GROUP, {"type": "service.state", "state": state})
