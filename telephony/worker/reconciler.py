"""Settles what webhooks and workers left unfinished, so every call reaches an end.

Runs in the workers, one pass at a time across all hosts (a Redis lock). It does from
the record what a worker would have done had it been alive when the news came:

- a call with no agent leg after its request's deadline never reached Telnyx (the
  worker was lost): ``failed`` with ``worker_lost``;
- an agent leg not answered within ``TELEPHONY_AGENT_ANSWER_TIMEOUT``: hung up,
  ``no_answer`` with ``agent_no_answer``; the customer is never dialled;
- an agent leg answered but no customer dialled (the forwarded webhook found no
  worker): the customer is dialled if the agent leg is still up;
- a customer dial whose outcome was lost (no call_control_id after a while): the agent
  leg is hung up, ``failed`` with ``worker_lost``;
- a call that ended with one leg still open (a worker died before hanging up the other
  leg): that leg is hung up;
- live calls with no news for a long time: asked about at Telnyx (a webhook was lost).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from telephony.connections import get_async_redis, release_lock
from telephony.exceptions import TelephonyError
from telephony.keys import Keys
from telephony.legs import Leg
from telephony.models import TERMINAL, Call, CallStatus
from telephony.services import acall_advance
from telephony.worker.calls import agent_answer_timeout
from telephony.worker.operations import Operations
from telephony.worker.provider import RequestContext

logger = logging.getLogger(__name__)

GRACE = timedelta(seconds=5)
STALE_LIVE_CALL = timedelta(minutes=15)
OPEN_LEG_WINDOW = timedelta(hours=1)  # ended calls younger than this are checked for open legs
BATCH = 100
PER_CALL_TIMEOUT = 5.0
NOT_PLACED = [CallStatus.QUEUED, CallStatus.DIALING, CallStatus.UNKNOWN]


def _ctx() -> RequestContext:
    return RequestContext(
        request_id=f"reconcile-{uuid.uuid4()}", deadline=time.time() + PER_CALL_TIMEOUT
    )


async def reconcile_once(
    ops: Operations, *, grace: timedelta = GRACE, now: datetime | None = None
) -> int:
    """One pass; returns how many calls it looked at. Only one worker runs it at a time."""
    r = get_async_redis()
    lock = Keys.lock("reconciler")
    token = str(uuid.uuid4())
    if not await r.set(lock, token, nx=True, px=60_000):
        return 0
    try:
        now = now or timezone.now()
        seen = 0
        for query, action in _passes(ops, now, grace):
            async for call in Call.objects.filter(query).order_by("created_at")[:BATCH]:
                seen += 1
                try:
                    await action(call)
                except TelephonyError as e:
                    logger.warning(
                        "[Telephony Reconciler] call_id=%s not settled yet: %s", call.id, e.reason
                    )
        return seen
    finally:
        await release_lock(lock, token)


def _passes(
    ops: Operations, now: datetime, grace: timedelta
) -> list[tuple[Q, Callable[[Call], Awaitable[None]]]]:
    unanswered_by = now - timedelta(seconds=agent_answer_timeout()) - grace
    has_agent_leg = ~Q(agent_call_control_id="")

    async def worker_lost(call: Call) -> None:
        fields = {"error_code": call.error_code or "worker_lost", "ended_at": timezone.now()}
        if await acall_advance(call_id=call.id, status=CallStatus.FAILED, fields=fields):
            logger.warning("[Telephony Reconciler] call_id=%s settled as worker_lost", call.id)
            await ops._push(call.id)
        if call.agent_call_control_id:
            await ops.hangup_leg(_ctx(), await Call.objects.aget(pk=call.id), Leg.AGENT)

    async def agent_timed_out(call: Call) -> None:
        await ops.agent_timed_out(_ctx(), call)

    async def customer_not_dialled(call: Call) -> None:
        ctx = _ctx()
        if (await ops.adapter.call_status(ctx, call.agent_call_control_id)).is_alive:
            logger.info("[Telephony Reconciler] call_id=%s dialling the customer late", call.id)
            await ops.dial_customer(ctx, call)
        else:
            await ops.settle(ctx, call)

    async def close_open_legs(call: Call) -> None:
        ctx = _ctx()
        for leg in Leg:
            await ops.hangup_leg(ctx, call, leg)

    async def settle(call: Call) -> None:
        await ops.settle(_ctx(), call)

    open_leg = (has_agent_leg & Q(agent_ended_at__isnull=True)) | (
        ~Q(call_control_id="") & Q(customer_ended_at__isnull=True)
    )
    return [
        (
            Q(status__in=NOT_PLACED, agent_call_control_id="", call_control_id="")
            & Q(deadline__lt=now - grace),
            worker_lost,
        ),
        (
            Q(status__in=NOT_PLACED, agent_answered_at__isnull=True)
            & has_agent_leg
            & (
                Q(dialed_at__lt=unanswered_by)
                | Q(dialed_at__isnull=True, created_at__lt=unanswered_by)
            ),
            agent_timed_out,
        ),
        (
            Q(status__in=NOT_PLACED, agent_answered_at__lt=now - grace, ringing_at__isnull=True)
            & has_agent_leg,
            customer_not_dialled,
        ),
        (
            Q(status=CallStatus.RINGING, call_control_id="", ringing_at__lt=now - grace * 3),
            worker_lost,
        ),
        (
            Q(
                status__in=TERMINAL,
                updated_at__gte=now - OPEN_LEG_WINDOW,
                updated_at__lt=now - grace,
            )
            & open_leg,
            close_open_legs,
        ),
        (
            Q(
                status__in=[CallStatus.RINGING, CallStatus.ANSWERED],
                updated_at__lt=now - STALE_LIVE_CALL,
            )
            & (~Q(call_control_id="") | has_agent_leg),
            settle,
        ),
        (  # placed before calls had two legs: one leg, the customer's
            Q(status__in=NOT_PLACED, agent_call_control_id="", deadline__lt=now - grace)
            & ~Q(call_control_id=""),
            settle,
        ),
    ]
