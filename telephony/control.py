"""Operator control of the telephony service: restart, reset, scale, force the breaker.

Commands travel through Redis, never as signals to a pid, so they work from any host
(web process, admin page, ``telephony_status``) against supervisors on any host. Each
function RPUSHes a :class:`~telephony.protocol.ControlCommand` onto ``Keys.control(sid)``
of every live supervisor (or of the one named), which pops its list on every loop pass;
it writes an audit ``ServiceEvent`` naming the user, and returns the ids of the
supervisors it reached.

Checking the ``telephony.control_service`` permission is the caller's job (views, admin);
these functions trust their caller.
"""

from __future__ import annotations

import logging

import redis
from django.conf import settings

from telephony import exceptions as exc
from telephony.connections import get_redis
from telephony.keys import Keys
from telephony.protocol import (
    RESET,
    RESTART,
    RUNNING_STATES,
    SCALE,
    ControlCommand,
    SupervisorRecord,
)
from telephony.services import service_event
from telephony.state import now_ms

logger = logging.getLogger(__name__)

COMMAND_TTL = 300  # seconds a command waits for a supervisor that stopped popping
BREAKER_STATES = ("open", "closed")


def live_supervisors() -> list[SupervisorRecord]:
    """Records of the supervisors that are alive and not stopping (fresh TTL'd records).

    Raises ``ServiceUnavailable`` when Redis cannot be reached.
    """
    cutoff = now_ms() - int(float(settings.TELEPHONY_HEARTBEAT_TIMEOUT) * 1000)
    try:
        r = get_redis()
        ids = [str(i) for i in r.zrangebyscore(Keys.supervisors(), cutoff, "+inf")]
        raws = r.mget([Keys.supervisor(i) for i in ids]) if ids else []
    except (redis.RedisError, OSError) as e:
        raise exc.ServiceUnavailable(
            "Redis is unreachable: no supervisor can be told.", reason="redis_unreachable"
        ) from e
    records = []
    for raw in raws:
        try:
            record = SupervisorRecord.decode(raw) if raw else None
        except exc.InvalidRequest:  # the state reader logs it; here it just cannot be told
            continue
        if record is not None and record.state in RUNNING_STATES:
            records.append(record)
    return records


def _send(
    cmd: str, *, supervisor_id: str | None, user_id: int | None, n: int | None = None
) -> list[str]:
    targets = [s.id for s in live_supervisors() if supervisor_id is None or s.id == supervisor_id]
    command = ControlCommand.new(cmd, user_id=user_id, at=now_ms(), n=n)
    args = command.args()
    if targets:
        try:
            pipe = get_redis().pipeline(transaction=False)
            for sid in targets:
                pipe.rpush(Keys.control(sid), command.encode())
                pipe.expire(Keys.control(sid), COMMAND_TTL)
            pipe.execute()
        except (redis.RedisError, OSError) as e:
            raise exc.ServiceUnavailable(
                "Redis is unreachable: the command was not sent.", reason="redis_unreachable"
            ) from e
    detail = " ".join(f"{k}={v}" for k, v in args.items())
    message = f"{cmd}{' ' + detail if detail else ''} requested by user={user_id}; " + (
        f"reached {', '.join(targets)}" if targets else "no live supervisor reached"
    )
    logger.info("[Telephony Control] %s command_id=%s", message, command.id)
    service_event(
        kind=f"control_{cmd}",
        message=message,
        user_id=user_id,
        supervisor_id=supervisor_id or "",
        command_id=command.id,
        targets=targets,
        **args,
    )
    return targets


def request_restart(*, user_id: int | None = None, supervisor_id: str | None = None) -> list[str]:
    """Rolling restart: each supervisor replaces its workers one at a time, every new one
    serving (first heartbeat) before the old one gets SIGTERM and drains. From ``failed``
    it resets first. Returns the supervisors reached."""
    return _send(RESTART, supervisor_id=supervisor_id, user_id=user_id)


def request_reset(*, user_id: int | None = None, supervisor_id: str | None = None) -> list[str]:
    """Clear the restart window; a ``failed`` supervisor starts its missing workers again."""
    return _send(RESET, supervisor_id=supervisor_id, user_id=user_id)


def request_scale(
    n: int, *, supervisor_id: str | None = None, user_id: int | None = None
) -> list[str]:
    """Set the number of workers **per supervisor** to ``n``.

    ``supervisor_id=None`` tells every live supervisor to run ``n`` workers (so two hosts
    with ``n=2`` give four); name one supervisor to change only that host. Scaling down
    retires workers with SIGTERM, so they drain first.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError("n must be a non-negative integer")
    return _send(SCALE, supervisor_id=supervisor_id, user_id=user_id, n=n)


def force_breaker(state: str | None, *, user_id: int | None = None) -> list[str]:
    """Force the provider circuit ``"open"`` (maintenance: calls refused at once) or
    ``"closed"`` (ignore provider failures), or ``None`` to let the breakers decide again.

    Workers read the switch on every heartbeat. Returns the live supervisors, whose
    workers will see it.
    """
    if state is not None and state not in BREAKER_STATES:
        raise ValueError(f"state must be one of {BREAKER_STATES} or None")
    try:
        r = get_redis()
        if state is None:
            r.delete(Keys.breaker_forced())
        else:
            r.set(Keys.breaker_forced(), state)
    except (redis.RedisError, OSError) as e:
        raise exc.ServiceUnavailable(
            "Redis is unreachable: the breaker was not switched.", reason="redis_unreachable"
        ) from e
    targets = [s.id for s in live_supervisors()]
    message = f"breaker forced {state or 'automatic'} by user={user_id}"
    logger.info("[Telephony Control] %s", message)
    service_event(
        kind="breaker_forced", message=message, user_id=user_id, forced=state, targets=targets
    )
    return targets
