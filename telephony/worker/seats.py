"""Telephony seats: an agent's credential, held while a page of theirs is open.

The account allows ``TELEPHONY_ACCOUNT_CREDENTIAL_LIMIT`` credentials (5 on a free Telnyx
account). Each of our live credentials is one agent's seat. Before the worker creates a
credential it makes sure there is a free seat (:func:`ensure_free_seat`, under the seat
lock so two workers never both take the last one) and reserves it (:func:`reserve`)
while the credential is created at Telnyx outside the lock: a seat whose agent has been away
longer than ``TELEPHONY_SEAT_IDLE_SECONDS`` (``telephony.presence``) is deleted at
Telnyx, which also kills every token minted for it, and a new credential is created for
the newcomer. A credential is never handed from one agent to another: their old token
would still log in. When every seat is held by an agent who is online, or who left too
recently, the request fails with :class:`~telephony.exceptions.SeatLimit` (409).

The workers' hygiene pass calls :func:`reclaim_idle_seats` too, so a seat left idle is
deleted even when nobody is waiting for it: its tokens stop working and the health page
shows the seat free.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from telephony import exceptions as exc
from telephony import presence
from telephony.connections import get_async_redis, release_lock
from telephony.credential_cache import acredential_mark_deleted
from telephony.keys import Keys
from telephony.models import Credential
from telephony.presence import Presence
from telephony.services import aservice_event
from telephony.worker.adapter import TelnyxAdapter
from telephony.worker.provider import RequestContext

logger = logging.getLogger(__name__)

RECLAIM_LOCK_MS = 60_000
RESERVATION_SLACK_SECONDS = 5.0  # a reservation outlives its request's deadline by this
SEAT_IDLE_REASON = "seat_idle"
SEAT_RENEWED_REASON = "seat_renewed"


def seat_lock_key() -> str:
    """The Redis lock that serialises seat allocation and reclamation across workers."""
    return Keys.lock("seats")


def reservations_key() -> str:
    """Where seats being created at Telnyx right now are reserved (see ``Keys``)."""
    return Keys.seat_reservations()


async def reserve(ctx: RequestContext) -> None:
    """Hold a seat for this request while its credential is created (under the seat lock)."""
    until = int((ctx.deadline + RESERVATION_SLACK_SECONDS) * 1000)
    await get_async_redis().zadd(reservations_key(), {ctx.request_id: until})


async def unreserve(ctx: RequestContext) -> None:
    """The credential exists (its row counts now) or was not created: release the hold."""
    await get_async_redis().zrem(reservations_key(), ctx.request_id)


async def reserved() -> int:
    """Seats held for credentials being created now (a crashed worker's expire)."""
    key = reservations_key()
    async with get_async_redis().pipeline(transaction=False) as pipe:
        pipe.zremrangebyscore(key, "-inf", int(time.time() * 1000))
        pipe.zcard(key)
        _, count = await pipe.execute()
    return int(count)


def account_limit() -> int:
    """``TELEPHONY_ACCOUNT_CREDENTIAL_LIMIT``, read when used (0: unknown)."""
    return int(settings.TELEPHONY_ACCOUNT_CREDENTIAL_LIMIT)


@dataclass(frozen=True)
class Seat:
    """One live credential of ours and the presence of the agent holding it."""

    credential: Credential
    presence: Presence

    @property
    def user_id(self) -> int:
        return int(self.credential.user_id)


async def live_seats(*, at: float | None = None) -> list[Seat]:
    """Our credentials that still exist (not deleted, not expired), oldest first."""
    rows = [
        c
        async for c in Credential.objects.filter(
            deleted_at__isnull=True, expires_at__gt=timezone.now()
        ).order_by("created_at", "pk")
    ]
    seen = await presence.aread((c.user_id for c in rows), at=at)
    return [Seat(c, seen[c.user_id]) for c in rows]


def reclaimable(seats: list[Seat]) -> list[Seat]:
    """Seats whose agent has been away past the idle time, longest away first."""
    idle_after = presence.seat_idle_seconds()
    found = [s for s in seats if s.presence.reclaimable(idle_after)]
    return sorted(found, key=lambda s: s.presence.last_seen)


def limit_message(limit: int) -> str:
    """What the agent who finds no free seat is told."""
    idle = presence.seat_idle_seconds()
    wait = f"{round(idle / 60)} minutes" if idle >= 120 else f"{round(idle)} seconds"
    seats = f"All {limit} telephony seats are" if limit > 0 else "Every telephony seat is"
    return (
        f"{seats} in use by agents who are online. Try again when one of them leaves "
        f"(a seat frees up {wait} after its agent closes the page)."
    )


async def release(adapter: TelnyxAdapter, ctx: RequestContext, seat: Seat, *, reason: str) -> bool:
    """Delete the seat's credential at Telnyx (its tokens die with it) and record it."""
    cred = seat.credential
    try:
        await adapter.delete_credential(ctx, cred.telnyx_id)  # already gone counts as done
    except exc.TelephonyError as e:
        logger.warning(
            "[Telephony Seats] request_id=%s credential %s of user_id=%s not deleted: %s",
            ctx.request_id, cred.telnyx_id, cred.user_id, e.reason,
        )  # fmt: skip
        return False
    await acredential_mark_deleted(pk=cred.pk, reason=reason)
    logger.info(
        "[Telephony Seats] request_id=%s freed seat %s of user_id=%s (%s, away %.0f s)",
        ctx.request_id, cred.telnyx_id, cred.user_id, reason, seat.presence.idle_seconds,
    )  # fmt: skip
    return True


async def ensure_free_seat(
    adapter: TelnyxAdapter, ctx: RequestContext, *, user_id: int, worker_id: str
) -> list[Seat]:
    """Before creating ``user_id``'s credential, under the seat lock: make a seat free.

    Taken seats are our live credentials plus the reservations of credentials being
    created right now. Frees, in this order, the agent's own older credential (about to
    expire: it is the same agent's seat) and seats idle past
    ``TELEPHONY_SEAT_IDLE_SECONDS``. Raises SeatLimit when the account's seats are all
    held by agents still present. Returns the seats as they were read (for the caller's
    fallback at Telnyx's own limit).
    """
    limit = account_limit()
    # Reservations first, then the rows: a credential being finished elsewhere writes its
    # row before it drops its reservation, so read in this order it is counted at least
    # once (read the other way round, it could fall between the two reads and a fourth
    # agent would take a third seat).
    held_for_creation = await reserved() if limit > 0 else 0
    seats = await live_seats()
    if limit <= 0:
        return seats
    in_use = len(seats) + held_for_creation
    if in_use < limit:
        return seats
    own = [s for s in seats if s.user_id == user_id]
    candidates = own + [s for s in reclaimable(seats) if s.user_id != user_id]
    freed = []
    for seat in candidates:
        if in_use < limit:
            break
        reason = SEAT_RENEWED_REASON if seat.user_id == user_id else SEAT_IDLE_REASON
        if await release(adapter, ctx, seat, reason=reason):
            in_use -= 1
            freed.append(seat)
    await _record(freed, worker_id=worker_id, request_id=ctx.request_id)
    if in_use >= limit:
        raise exc.SeatLimit(limit_message(limit))
    return seats


async def free_one_idle_seat(
    adapter: TelnyxAdapter, ctx: RequestContext, seats: list[Seat], *, worker_id: str
) -> bool:
    """Telnyx says the account is full although our count is not: free one idle seat."""
    for seat in reclaimable(seats):
        if await release(adapter, ctx, seat, reason=SEAT_IDLE_REASON):
            await _record([seat], worker_id=worker_id, request_id=ctx.request_id)
            return True
    return False


async def reclaim_idle_seats(adapter: TelnyxAdapter, *, worker_id: str = "") -> list[str]:
    """The hygiene pass's part: delete every seat idle past the idle time. Never raises.

    Skips the pass when another worker holds the seat lock (allocating, or reclaiming).
    Returns the Telnyx ids of the credentials deleted.
    """
    key, token = seat_lock_key(), uuid.uuid4().hex
    run_id = f"seats-{token[:12]}"
    try:
        if not await get_async_redis().set(key, token, nx=True, px=RECLAIM_LOCK_MS):
            return []
    except Exception as e:
        logger.warning("[Telephony Seats] reclaim skipped, Redis unavailable: %s", type(e).__name__)
        return []
    try:
        freed = []
        timeout = float(settings.TELEPHONY_REQUEST_TIMEOUT)
        for n, seat in enumerate(reclaimable(await live_seats()), 1):
            ctx = RequestContext(f"{run_id}-{n}", time.time() + timeout)
            if await release(adapter, ctx, seat, reason=SEAT_IDLE_REASON):
                freed.append(seat)
        await _record(freed, worker_id=worker_id, request_id=run_id)
        return [s.credential.telnyx_id for s in freed]
    except Exception:
        logger.exception("[Telephony Seats] run_id=%s reclaim crashed; continuing", run_id)
        return []
    finally:
        try:
            await release_lock(key, token)
        except Exception as e:  # its TTL frees it anyway
            logger.warning("[Telephony Seats] lock not released: %s", type(e).__name__)


async def _record(freed: list[Seat], *, worker_id: str, request_id: str) -> None:
    if not freed:
        return
    await aservice_event(
        kind="seats_freed",
        message=f"Freed {len(freed)} telephony seat(s) of agents who left",
        worker_id=worker_id,
        request_id=request_id,
        deleted=[s.credential.telnyx_id for s in freed],
        users=[s.user_id for s in freed],
    )
