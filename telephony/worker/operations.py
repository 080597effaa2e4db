"""What the worker does for each request type (``credential.create`` -> ``credential_create``).

Each handler gets a :class:`RequestContext` (request id and deadline) and the payload,
talks to Telnyx through the adapter, writes the record, and returns a JSON-safe dict.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from telephony import exceptions as exc
from telephony import presence
from telephony.connections import get_async_redis, release_lock
from telephony.credential_cache import ActiveCredentials, acredential_mark_deleted
from telephony.keys import Keys
from telephony.models import Credential
from telephony.services import aservice_event
from telephony.worker import seats
from telephony.worker.adapter import TelnyxAdapter
from telephony.worker.calls import CallOperations
from telephony.worker.credentials import select_for_room
from telephony.worker.provider import RequestContext

logger = logging.getLogger(__name__)

TOKEN_MAX_LIFETIME = timedelta(hours=24)
MIN_REMAINING_VALIDITY = timedelta(minutes=10)
TOKEN_EXPIRY_SLACK = timedelta(minutes=5)  # reuse a credential only with this much left


def token_expiry(token: str, fallback: datetime) -> datetime:
    """The ``exp`` of a JWT (read, not verified: Telnyx verifies it), else ``fallback``."""
    try:
        part = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        return min(datetime.fromtimestamp(int(claims["exp"]), tz=UTC), fallback)
    except (IndexError, KeyError, ValueError, TypeError):
        return fallback


class Operations(CallOperations):
    """The request handlers, bound to one adapter (one per worker process).

    The call handlers (``call.dial``, ``call.event``, ``call.hangup``, ``call.status``) are
    in :mod:`telephony.worker.calls`.
    """

    def __init__(self, adapter: TelnyxAdapter, *, worker_id: str) -> None:
        self.adapter = adapter
        self.worker_id = worker_id
        self.credentials = ActiveCredentials()

    # -- credentials -------------------------------------------------------------------

    async def credential_create(
        self, ctx: RequestContext, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """A WebRTC login token for the user, on their own still-valid credential (their
        seat) or a new one in a free seat (see ``telephony.worker.seats``)."""
        user_id = payload.get("user_id")
        if not isinstance(user_id, int):
            raise exc.InvalidRequest("credential.create needs user_id.")
        # Asking for a token is being present; the same round trip reads the credentials
        # version that says whether the cached credential still stands.
        async with get_async_redis().pipeline(transaction=False) as pipe:
            presence.queue_touch(pipe, user_id)
            pipe.get(Keys.credentials_version())
            version = (await pipe.execute())[-1]
        cred = self.credentials.get(
            user_id, version, valid_after=timezone.now() + MIN_REMAINING_VALIDITY
        ) or await self._active_credential(user_id)
        if cred is None:
            # Only creation takes the per-user lock: two tabs logging in at once must not
            # leave the account with two credentials. Minting tokens needs no lock.
            async with self._user_lock(ctx, user_id):
                cred = await self._active_credential(user_id) or await self._new_credential(
                    ctx, user_id
                )
        try:
            token = await self.adapter.create_token(ctx, cred.telnyx_id)
        except exc.ProviderRejected as e:
            if e.reason != "provider_not_found":
                raise
            # Deleted behind our back (by hand, or another app): record it, start over once.
            self.credentials.forget(user_id)
            await acredential_mark_deleted(pk=cred.pk, reason="gone_at_provider")
            async with self._user_lock(ctx, user_id):
                cred = await self._new_credential(ctx, user_id)
            token = await self.adapter.create_token(ctx, cred.telnyx_id)
        expires = token_expiry(token, min(cred.expires_at, timezone.now() + TOKEN_MAX_LIFETIME))
        if cred.token_expires_at is None or expires > cred.token_expires_at + TOKEN_EXPIRY_SLACK:
            # Record only meaningful moves: hygiene needs "a live token depends on it",
            # not the last second of it, and a write per login is not free.
            await Credential.objects.filter(pk=cred.pk).aupdate(token_expires_at=expires)
            cred.token_expires_at = expires
        self.credentials.put(user_id, version, cred)
        logger.info(
            "[Telephony Worker] request_id=%s credential for user_id=%s", ctx.request_id, user_id
        )
        return {
            "token": token,
            "sip_username": cred.sip_username,
            "expires_at": expires.isoformat(),
        }

    async def _active_credential(self, user_id: int) -> Credential | None:
        return await (
            Credential.objects.filter(
                user_id=user_id,
                deleted_at__isnull=True,
                expires_at__gt=timezone.now() + MIN_REMAINING_VALIDITY,
            )
            .order_by("-expires_at")
            .afirst()
        )

    async def _new_credential(self, ctx: RequestContext, user_id: int) -> Credential:
        # Taking a seat is one short step at a time across every worker (two must never
        # take the last one); creating the credential at Telnyx runs outside the lock, on a
        # reservation the count includes, so logins at a shift's start are not serialised.
        async with _RedisLock(seats.seat_lock_key(), ctx, busy="Seats are being allocated."):
            held = await seats.ensure_free_seat(
                self.adapter, ctx, user_id=user_id, worker_id=self.worker_id
            )
            await seats.reserve(ctx)
        try:
            return await self._new_credential_in_seat(ctx, user_id, held)
        finally:
            await seats.unreserve(ctx)

    async def _new_credential_in_seat(
        self, ctx: RequestContext, user_id: int, held: list[seats.Seat]
    ) -> Credential:
        user = await get_user_model().objects.aget(pk=user_id)
        name = f"{user.get_username()} (user {user_id})"[:128]
        tag = settings.TELEPHONY_CREDENTIAL_TAG
        expires_at = timezone.now() + timedelta(seconds=float(settings.TELEPHONY_CREDENTIAL_TTL))
        kwargs = {
            "connection_id": settings.TELNYX_CONNECTION_ID,
            "name": name,
            "tag": tag,
            "expires_at": expires_at,
        }
        try:
            info = await self.adapter.create_credential(ctx, **kwargs)
        except exc.CredentialLimitReached:
            # Telnyx counts more than our seats (expired, orphaned, another app's).
            freed = await self.make_room(ctx) or await seats.free_one_idle_seat(
                self.adapter, ctx, held, worker_id=self.worker_id
            )
            if not freed:
                limit = seats.account_limit()
                if held and (limit <= 0 or len(held) >= limit):
                    raise exc.SeatLimit(seats.limit_message(limit)) from None
                raise
            info = await self.adapter.create_credential(ctx, **kwargs)
        return await Credential.objects.acreate(
            user_id=user_id,
            telnyx_id=info.id,
            sip_username=info.sip_username,
            tag=tag,
            expires_at=info.expires_at or expires_at,
        )

    async def make_room(self, ctx: RequestContext) -> list[str]:
        """At the account limit: delete our expired, orphaned or idle credentials."""
        remote, _ = await self.adapter.list_all_credentials(
            lambda: ctx,
            tag=settings.TELEPHONY_CREDENTIAL_TAG,
            max_pages=int(settings.TELEPHONY_CLEANUP_MAX_PAGES),
        )
        local = {
            c.telnyx_id: c
            async for c in Credential.objects.filter(telnyx_id__in=[r.id for r in remote])
        }
        deleted: list[str] = []
        candidates = select_for_room(
            remote, local, tag=settings.TELEPHONY_CREDENTIAL_TAG, now=timezone.now()
        )
        for d in candidates:
            try:
                await self.adapter.delete_credential(ctx, d.telnyx_id)
            except exc.TelephonyError as e:
                # One stuck credential must not stop the others from making room.
                logger.warning(
                    "[Telephony Worker] request_id=%s credential %s not deleted: %s",
                    ctx.request_id, d.telnyx_id, e.reason,
                )  # fmt: skip
                continue
            await acredential_mark_deleted(telnyx_id=d.telnyx_id, reason=d.reason)
            deleted.append(d.telnyx_id)
            logger.info(
                "[Telephony Worker] request_id=%s deleted credential %s (%s) at the account limit",
                ctx.request_id, d.telnyx_id, d.reason,
            )  # fmt: skip
        if deleted:
            await aservice_event(
                kind="credentials_freed",
                message=f"Account credential limit reached; deleted {len(deleted)}",
                worker_id=self.worker_id,
                deleted=deleted,
            )
        return deleted

    def _user_lock(self, ctx: RequestContext, user_id: int) -> _RedisLock:
        return _RedisLock(Keys.lock(f"credential:{user_id}"), ctx)

    async def health_ping(self, ctx: RequestContext, payload: dict[str, Any]) -> dict[str, Any]:
        """Proves the round trip through the layer to a live worker; does not touch Telnyx."""
        return {
            "worker_id": self.worker_id,
            "breaker": self.adapter.breaker.state,
            "time": time.time(),
        }


class _RedisLock:
    """A per-key lock in Redis that waits at most until the request's deadline."""

    def __init__(
        self,
        key: str,
        ctx: RequestContext,
        *,
        busy: str = "Another request for this user is still running.",
    ) -> None:
        self.key, self.ctx, self.busy = key, ctx, busy
        self.token = ctx.request_id

    async def __aenter__(self) -> None:
        r = get_async_redis()
        ttl_ms = max(1000, int(self.ctx.remaining() * 1000) + 1000)
        while not await r.set(self.key, self.token, nx=True, px=ttl_ms):
            if self.ctx.remaining() <= 0.05:
                raise exc.WorkerTimeout(self.busy)
            await asyncio.sleep(0.02)

    async def __aexit__(self, *a: object) -> None:
        await release_lock(self.key, self.token)
