"""WebSocket ``/ws/webrtc/``: live service state and the user's own call updates.

Pushes come from two sources: channel-layer groups (a worker or webhook reports a call
change; a supervisor reports a state change) and a light poll of the cached state, so a
page still learns that the service went away when nobody was left to announce it.

An open socket is also its agent's presence, which keeps their telephony seat
(``telephony.presence``): touched on connect, every ``PRESENCE_REFRESH_SECONDS`` while
connected and on the page's pings, and once more on disconnect, from when the seat's idle
time counts. A reload reconnects well within it, so the seat stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import redis
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from telephony import presence
from telephony.events import STATUS_GROUP, user_group
from telephony.state import state_cache

logger = logging.getLogger(__name__)

STATE_POLL_SECONDS = 1.0
UNAUTHENTICATED = 4401


class TelephonyConsumer(AsyncJsonWebsocketConsumer):
    """One browser tab: state changes for everyone, call updates for their owner."""

    groups: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Close the socket (1011) when the channel layer's Redis goes away under it.

        Channels' dispatch loop lets the layer's connection error escape to daphne, which
        logs a traceback for what is an expected outage; the page reconnects with backoff.
        """
        try:
            await super().__call__(scope, receive, send)
        except (redis.ConnectionError, redis.TimeoutError, ConnectionError, OSError) as e:
            logger.warning("[Telephony WS] closed: Redis unreachable (%s)", type(e).__name__)
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": 1011})

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=UNAUTHENTICATED)
            return
        self.user_group = user_group(user.pk)
        self.user_id = int(user.pk)
        self.touched_at = 0.0
        self.last_status: str | None = None
        try:
            await self.channel_layer.group_add(STATUS_GROUP, self.channel_name)
            await self.channel_layer.group_add(self.user_group, self.channel_name)
        except Exception as e:  # Redis down: still serve the state poll
            logger.warning("[Telephony WS] group join failed: %s", type(e).__name__)
        await self._touch()  # before accepting: an open socket always means present
        await self.accept()
        await self._send_state(force=True)
        self.poller = asyncio.create_task(self._poll_state())

    async def disconnect(self, code: int) -> None:
        poller = getattr(self, "poller", None)
        if poller is not None:
            poller.cancel()
        if hasattr(self, "user_group"):
            for group in (STATUS_GROUP, self.user_group):
                try:
                    await self.channel_layer.group_discard(group, self.channel_name)
                except Exception as e:
                    logger.info("[Telephony WS] group leave failed: %s", type(e).__name__)
            await self._touch()  # the seat's idle time counts from here

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            await self._touch()
            await self.send_json({"type": "pong", "ts": int(time.time() * 1000)})
        elif isinstance(content, dict) and content.get("type") == "state":
            await self._send_state(force=True)

    # -- group messages (type "call.update" -> call_update) -------------------------------

    async def call_update(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "call.update", "call": event.get("call")})

    async def service_state(self, event: dict[str, Any]) -> None:
        state = event.get("state")
        if isinstance(state, dict) and state.get("status") != self.last_status:
            self.last_status = state.get("status")
            await self.send_json({"type": "service.state", "state": state})

    # -- state ---------------------------------------------------------------------------

    async def _send_state(self, *, force: bool) -> None:
        state = await state_cache.aget()
        if force or state.status != self.last_status:
            self.last_status = state.status
            await self.send_json({"type": "service.state", "state": state.public()})

    async def _touch(self) -> None:
        """This agent has a page open now (presence keeps their seat). Never raises."""
        at = presence.now()
        try:
            # The time written, not the time after the write: the clock may move meanwhile
            # (a test's hand-moved clock did), and the next refresh counts from what Redis has.
            await presence.atouch(self.user_id, at=at)
            self.touched_at = at
        except Exception as e:  # Redis down: the seat is kept until its idle time anyway
            logger.warning("[Telephony WS] presence not recorded: %s", type(e).__name__)

    async def _poll_state(self) -> None:
        while True:
            await asyncio.sleep(STATE_POLL_SECONDS)
            if presence.now() - self.touched_at >= presence.PRESENCE_REFRESH_SECONDS:
                await self._touch()
            try:
                await self._send_state(force=False)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("[Telephony WS] state poll failed; continuing")
