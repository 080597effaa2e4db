"""Settles calls whose request ended without an answer, so no call stays unsettled.

Runs in the workers, one at a time across all hosts (a Redis lock). A call still
``queued``, ``dialing`` or ``unknown`` after its deadline plus a grace period is asked
about at Telnyx when we know its call_control_id; without one, the request never
reached Telnyx (the worker was lost) and the call is marked failed with ``worker_lost``.
Calls that stay ``ringing``/``answered`` with no news for a long time are asked about too
(a webhook may have been lost).
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from telephony.connections import get_async_redis, release_lock
from telephony.exceptions import TelephonyError
from telephony.keys import Keys
from telephony.models import Call, CallStatus
from telephony.services import acall_advance
from telephony.worker.operations import Operations
from telephony.worker.provider import RequestContext

logger = logging.getLogger(__name__)

GRACE = timedelta(seconds=5)
STALE_LIVE_CALL = timedelta(minutes=15)
BATCH = 100
PER_CALL_TIMEOUT = 5.0


async def reconcile_once(ops: Operations, *, grace: timedelta = GRACE) -> int:
    """One pass; returns how many calls it looked at. Only one worker runs it at a time."""
    r = get_async_redis()
    lock = Keys.lock("reconciler")
    token = str(uuid.uuid4())
    if not await r.set(lock, token, nx=True, px=60_000):
        return 0
    try:
        now = timezone.now()
        stale = Q(
            status__in=[CallStatus.QUEUED, CallStatus.DIALING, CallStatus.UNKNOWN],
            deadline__lt=now - grace,
        )
        quiet = Q(
            status__in=[CallStatus.RINGING, CallStatus.ANSWERED],
            updated_at__lt=now - STALE_LIVE_CALL,
        ) & ~Q(call_control_id="")
        seen = 0
        async for call in Call.objects.filter(stale | quiet).order_by("created_at")[:BATCH]:
            seen += 1
            if not call.call_control_id:
                if await acall_advance(
                    call_id=call.id,
                    status=CallStatus.FAILED,
                    fields={
                        "error_code": call.error_code or "worker_lost",
                        "ended_at": timezone.now(),
                    },
                ):
                    logger.warning(
                        "[Telephony Reconciler] call_id=%s settled as worker_lost", call.id
                    )
                    await ops._push(call.id)
                continue
            ctx = RequestContext(
                request_id=f"reconcile-{uuid.uuid4()}", deadline=time.time() + PER_CALL_TIMEOUT
            )
            try:
                await ops.settle(ctx, call)
            except TelephonyError as e:
                logger.warning(
                    "[Telephony Reconciler] call_id=%s not settled yet: %s", call.id, e.reason
                )
        return seen
    finally:
        await release_lock(lock, token)
