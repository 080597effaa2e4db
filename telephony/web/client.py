"""The web side's API to the telephony service. Never imports Telnyx.

    service = get_telephony_service()
    service.status()                      # cached ServiceState, no worker round trip
    service.make_call(user, "+12025550143")
    await service.amake_call(user, "+12025550143")

Requests go to the workers over the channel layer with a deadline. When the state says
the service is unavailable the call fails at once (``ServiceUnavailable``) instead of
waiting; otherwise the caller waits at most until the deadline (``WorkerTimeout``), in
one BLPOP on the request's own reply key (``Keys.reply``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from datetime import timedelta
from typing import Any

import redis
from asgiref.sync import async_to_sync
from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from telephony import exceptions as exc
from telephony.keys import Keys
from telephony.layers import TelephonyChannelLayer
from telephony.models import Call, CallStatus
from telephony.numbers import validate_destination
from telephony.protocol import CHANNEL, Reply, Request
from telephony.recording_policy import ON_DEMAND, recording_policy
from telephony.services import acall_advance, acall_create_queued
from telephony.state import ServiceState, state_cache

# Seconds kept back from a request's deadline for answering its caller in time.
ANSWER_MARGIN = 0.1
logger = logging.getLogger(__name__)

SEND_CONCURRENCY = 50  # sends at once per loop; each waiting caller holds its own BLPOP connection
REFRESH_AFTER = timedelta(seconds=30)  # a live call with no news for this long is asked about
REPLY_LOST = "reply_lost"  # Redis failed after the request was sent: its outcome is unknown


_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _send_slots() -> asyncio.Semaphore:
    """Bound concurrent sends below the layer's Redis pool size: a burst of requests
    then queues for a connection instead of failing with MaxConnectionsError."""
    loop = asyncio.get_running_loop()
    slots = _slots.get(loop)
    if slots is None:
        slots = _slots[loop] = asyncio.Semaphore(SEND_CONCURRENCY)
    return slots


def _user_id(user: Any) -> int:
    if user is None or not getattr(user, "is_authenticated", False):
        raise exc.NotAuthenticated()
    return int(user.pk)


class TelephonyService:
    """Client of the telephony workers; one per process, safe to share."""

    # -- state ---------------------------------------------------------------------------

    def status(self) -> ServiceState:
        """The service state (cached for ``TELEPHONY_STATE_CACHE_TTL``)."""
        return state_cache.get()

    async def astatus(self) -> ServiceState:
        return await state_cache.aget()

    # -- the round trip --------------------------------------------------------------------

    async def arequest(
        self,
        op: str,
        payload: dict[str, Any],
        *,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send one request to the workers and wait for its reply, at most until the deadline."""
        state = await state_cache.aget()
        if not state.available:
            raise exc.ServiceUnavailable(reason=state.reason or state.status)
        timeout = float(timeout if timeout is not None else settings.TELEPHONY_REQUEST_TIMEOUT)
        layer = get_channel_layer()
        if layer is None:
            raise exc.ServiceUnavailable(reason="no_channel_layer")
        if not hasattr(layer, "pop_reply"):
            raise ImproperlyConfigured(
                f"CHANNEL_LAYERS must use {TelephonyChannelLayer.__module__}."
                f"{TelephonyChannelLayer.__name__} (replies come back on a per-request key)"
            )
        started = time.monotonic()
        request_id = request_id or str(uuid.uuid4())
        # The reply comes back on a key of its own, popped below with one BLPOP: one
        # round trip, no shared receive loop (docs/ARCHITECTURE.md, "The reply path").
        request = Request.new(
            op, reply_to=Keys.reply(request_id), timeout=timeout, payload=payload,
            request_id=request_id,
        )  # fmt: skip
        try:
            async with _send_slots():
                await layer.send(CHANNEL, request.encode())
        except ChannelFull as e:
            raise exc.ServiceUnavailable(
                "Telephony is overloaded; try again shortly.", reason="queue_full"
            ) from e
        except (redis.RedisError, OSError) as e:
            state_cache.clear()
            raise exc.ServiceUnavailable(reason="redis_unreachable") from e
        rid = request.request_id
        try:
            # Stop waiting a little before the deadline, so that the 504 itself is
            # answered within it on a busy machine (chaos invariant 2).
            message = await layer.pop_reply(
                request.reply_to, timeout=timeout - (time.monotonic() - started) - ANSWER_MARGIN
            )
        except (redis.RedisError, OSError) as e:
            state_cache.clear()
            # Unlike a failed send, the request has left: a worker may be executing it.
            raise exc.ServiceUnavailable(reason=REPLY_LOST) from e
        if message is None:
            logger.warning(
                "[Telephony Client] request_id=%s op=%s timed out after %.1f s", rid, op, timeout
            )
            raise exc.WorkerTimeout()
        try:
            reply = Reply.decode(message)
        except exc.InvalidRequest as e:  # the worker's fault, not the caller's: a 500
            logger.error("[Telephony Client] request_id=%s op=%s %s", rid, op, e.message)
            raise exc.TelephonyError("The worker's reply was malformed.", reason=e.reason) from e
        return reply.unwrap()

    # -- operations ------------------------------------------------------------------------

    async def agenerate_credential(self, user: Any) -> dict[str, Any]:
        """A WebRTC login token for ``user``: ``{"token", "sip_username", "expires_at"}``."""
        user_id = _user_id(user)
        return await self.arequest("credential.create", {"user_id": user_id})

    async def amake_call(self, user: Any, to: Any) -> dict[str, Any]:
        """Place a call; the row is written ``queued`` before the request leaves."""
        user_id = _user_id(user)
        number = validate_destination(to, allowed_countries=settings.TELEPHONY_ALLOWED_COUNTRIES)
        state = await state_cache.aget()
        if not state.available:
            raise exc.ServiceUnavailable(reason=state.reason or state.status)
        timeout = float(settings.TELEPHONY_REQUEST_TIMEOUT)
        request_id = str(uuid.uuid4())
        call = await acall_create_queued(
            user_id=user_id,
            to_number=number,
            from_number=settings.TELNYX_FROM_NUMBER,
            request_id=request_id,
            deadline=timezone.now() + timedelta(seconds=timeout),
        )
        try:
            return await self.arequest(
                "call.dial", {"call_id": str(call.id)}, request_id=request_id, timeout=timeout
            )
        except exc.WorkerTimeout:
            await acall_advance(
                call_id=call.id, status=CallStatus.UNKNOWN, fields={"error_code": "worker_timeout"}
            )
            raise
        except exc.ServiceUnavailable as e:
            if e.reason == REPLY_LOST:  # sent, maybe dialled: unknown, like a timeout
                await acall_advance(
                    call_id=call.id, status=CallStatus.UNKNOWN, fields={"error_code": e.reason}
                )
                raise
            # The request never left (or the state turned meanwhile): nothing was dialled.
            await acall_advance(
                call_id=call.id,
                status=CallStatus.FAILED,
                fields={"error_code": e.reason, "ended_at": timezone.now()},
            )
            raise

    async def ahangup(self, user: Any, call_id: Any) -> dict[str, Any]:
        """Hang up (or cancel) one of the user's calls: a worker ends both legs."""
        call = await self._own_call(user, call_id)
        if call.is_terminal:
            return call.public()
        return await self.arequest("call.hangup", {"call_id": str(call.id)})

    async def arecord(self, user: Any, call_id: Any, *, recording: bool) -> dict[str, Any]:
        """Start or stop recording one of the user's calls (``on_demand`` only, answered only)."""
        call = await self._own_call(user, call_id)
        if recording_policy() != ON_DEMAND:
            raise exc.RecordingDisabled()
        if call.status != CallStatus.ANSWERED or call.hangup_requested:
            raise exc.CallNotAnswered()
        if call.is_recording == recording:
            return call.public()  # already so: nothing to tell Telnyx
        return await self.arequest("call.record", {"call_id": str(call.id), "recording": recording})

    async def acall_status(self, user: Any, call_id: Any) -> dict[str, Any]:
        """One of the user's calls, from the record; refreshed via a worker if it went quiet."""
        call = await self._own_call(user, call_id)
        if (
            call.is_terminal
            or not (call.call_control_id or call.agent_call_control_id)
            or timezone.now() - call.updated_at < REFRESH_AFTER
        ):
            return call.public()
        try:
            return await self.arequest("call.status", {"call_id": str(call.id)}, timeout=3.0)
        except exc.TelephonyError as e:
            logger.info("[Telephony Client] call_id=%s refresh skipped: %s", call.id, e.reason)
            return call.public()

    async def aping(self, timeout: float = 2.0) -> dict[str, Any]:
        """A round trip to a live worker (``health.ping``)."""
        return await self.arequest("health.ping", {}, timeout=timeout)

    async def _own_call(self, user: Any, call_id: Any) -> Call:
        user_id = _user_id(user)
        try:
            return await Call.objects.aget(pk=uuid.UUID(str(call_id)), user_id=user_id)
        except (ValueError, Call.DoesNotExist) as e:
            raise exc.NotFound("No such call.") from e

    # -- sync twins, for sync views and templates ------------------------------------------

    def generate_credential(self, user: Any) -> dict[str, Any]:
        return async_to_sync(self.agenerate_credential)(user)

    def make_call(self, user: Any, to: Any) -> dict[str, Any]:
        return async_to_sync(self.amake_call)(user, to)

    def hangup(self, user: Any, call_id: Any) -> dict[str, Any]:
        return async_to_sync(self.ahangup)(user, call_id)

    def call_status(self, user: Any, call_id: Any) -> dict[str, Any]:
        return async_to_sync(self.acall_status)(user, call_id)


_service = TelephonyService()


def get_telephony_service() -> TelephonyService:
    """The process's telephony client."""
    return _service
