"""The service state: what ``status()`` and ``/api/webrtc/status`` say.

Workers write heartbeats and supervisors write their own records to Redis, each with a
TTL; nobody writes "the" state. Every reader derives it from the fresh records, so a
dead supervisor or worker simply drops out when its TTL passes, on any host. Reading is
two Redis round trips and a few dict operations; the web side caches the result for
``TELEPHONY_STATE_CACHE_TTL`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis
from django.conf import settings

from telephony.connections import get_async_redis, get_redis
from telephony.exceptions import InvalidRequest
from telephony.keys import Keys
from telephony.protocol import LOST, Heartbeat, SupervisorRecord

logger = logging.getLogger(__name__)

STARTING = "starting"
READY = "ready"
DEGRADED = "degraded"
UNAVAILABLE = "unavailable"
FAILED = "failed"
STOPPED = "stopped"
STATES = (STARTING, READY, DEGRADED, UNAVAILABLE, FAILED, STOPPED)
AVAILABLE = frozenset({READY, DEGRADED})


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class ServiceState:
    """One reading of the service state, derived from the live records in Redis."""

    status: str
    timestamp: int
    alive: int = 0
    desired: int = 0
    reason: str = ""
    workers: list[Heartbeat] = field(default_factory=list)
    supervisors: list[SupervisorRecord] = field(default_factory=list)

    @property
    def available(self) -> bool:
        return self.status in AVAILABLE

    def public(self) -> dict[str, Any]:
        """The JSON body of ``GET /api/webrtc/status``."""
        return {
            "status": self.status,
            "healthy": self.available,
            "timestamp": self.timestamp,
            "workers": {"alive": self.alive, "desired": self.desired},
        }

    def as_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready (``telephony_status --json``)."""
        return {
            "status": self.status,
            "timestamp": self.timestamp,
            "alive": self.alive,
            "desired": self.desired,
            "reason": self.reason,
            "workers": [w.as_dict() for w in self.workers],
            "supervisors": [s.as_dict() for s in self.supervisors],
            "healthy": self.available,
        }


def compute_state(
    *,
    supervisors: list[SupervisorRecord],
    workers: list[Heartbeat],
    forced_breaker: str | None,
    stopped: bool,
    timestamp: int,
    lost: list[SupervisorRecord] | None = None,
) -> ServiceState:
    """Derive the state from live supervisor and worker records (pure, for testing).

    ``lost`` are supervisors whose record expired without them saying they stopped (a
    SIGKILL, a dead host): the workers they should run still count as desired, so the
    state says ``degraded`` until they come back or an operator stops them on purpose.
    """
    serving = [w for w in workers if w.serving]
    alive = len(serving)
    lost = [s.lost() for s in lost or []]
    running_sups = [s for s in supervisors if s.state != STOPPED] + lost
    desired = sum(s.desired for s in running_sups) if running_sups else alive
    supervisors = supervisors + lost

    def make(status: str, reason: str = "") -> ServiceState:
        return ServiceState(
            status=status,
            timestamp=timestamp,
            alive=alive,
            desired=desired,
            reason=reason,
            workers=workers,
            supervisors=supervisors,
        )

    failed_sups = [s for s in running_sups if s.state == FAILED]
    if forced_breaker == "open":
        return make(UNAVAILABLE, "circuit_forced_open")
    if alive == 0:
        if failed_sups:
            return make(FAILED, "restart_intensity")
        live_sups = [s for s in running_sups if s.state != LOST]
        if live_sups and all(s.state == STARTING for s in live_sups):
            return make(STARTING, "starting")
        if not running_sups and stopped:
            return make(STOPPED, "stopped")
        return make(UNAVAILABLE, "no_worker")
    breakers = [w.breaker for w in serving]
    if forced_breaker != "closed" and all(b == "open" for b in breakers):
        return make(UNAVAILABLE, "circuit_open")
    if alive < desired:
        return make(DEGRADED, "workers_missing")
    if failed_sups:
        return make(DEGRADED, "supervisor_failed")
    if forced_breaker != "closed" and any(b != "closed" for b in breakers):
        return make(DEGRADED, "provider_failing")
    return make(READY)


def _fresh_cutoff(timestamp: int) -> int:
    return timestamp - int(float(settings.TELEPHONY_HEARTBEAT_TIMEOUT) * 1000)


T = TypeVar("T")
_reported: set[str] = set()  # keys whose malformed record was logged already


def _decode(decode: Callable[[Any], T], keys: list[str], values: list[Any]) -> list[T]:
    """The records that decode; a malformed one reads as absent (a stale record), and is
    logged once per key, not at every read."""
    out = []
    for key, raw in zip(keys, values, strict=False):
        if raw is None:
            continue
        try:
            out.append(decode(raw))
        except InvalidRequest as e:
            if key not in _reported:
                if len(_reported) > 10_000:
                    _reported.clear()
                _reported.add(key)
                logger.warning("[Telephony State] Ignoring %s in Redis: %s", key, e.message)
    return out


LOST_RETENTION_MS = 600_000  # a lost supervisor counts as missing for 10 minutes


def _queue_reads(pipe: Any, ts: int) -> None:
    """The first round trip: who is fresh, who went stale recently, and the flags."""
    fresh = _fresh_cutoff(ts)
    pipe.zrangebyscore(Keys.supervisors(), fresh, "+inf")
    pipe.zrangebyscore(Keys.workers(), fresh, "+inf")
    pipe.zrangebyscore(Keys.supervisors(), ts - LOST_RETENTION_MS, f"({fresh}")
    pipe.get(Keys.breaker_forced())
    pipe.exists(Keys.stopped())


def _queue_records(pipe: Any, first: list[Any]) -> None:
    """The second round trip: the records of those ids."""
    ids_sup, ids_wrk, stale_sup, _, _ = first
    keys = [Keys.supervisor(i) for i in ids_sup] + [Keys.worker(i) for i in ids_wrk]
    # Always two replies, so _finish can unpack them; ECHO stands in for an empty read.
    if keys:
        pipe.mget(keys)
    else:
        pipe.echo("")
    if stale_sup:
        pipe.hmget(Keys.supervisors_last(), stale_sup)
    else:
        pipe.echo("")


def _finish(first: list[Any], second: list[Any], ts: int) -> ServiceState:
    ids_sup, ids_wrk, stale_sup, forced, stopped = first
    records, last = (r if isinstance(r, list) else [] for r in second)
    n = len(ids_sup)
    sup_keys = [Keys.supervisor(i) for i in ids_sup]
    lost_keys = [f"{Keys.supervisors_last()}[{i}]" for i in stale_sup]
    lost = _decode(SupervisorRecord.decode, lost_keys, last)
    return compute_state(
        supervisors=_decode(SupervisorRecord.decode, sup_keys, records[:n]),
        workers=_decode(Heartbeat.decode, [Keys.worker(i) for i in ids_wrk], records[n:]),
        forced_breaker=forced,
        stopped=bool(stopped),
        timestamp=ts,
        lost=[rec for rec in lost if rec.state != STOPPED],
    )


def read_state() -> ServiceState:
    """Read the state from Redis now (sync). Redis down reads as ``unavailable``."""
    ts = now_ms()
    try:
        r = get_redis()
        pipe = r.pipeline(transaction=False)
        _queue_reads(pipe, ts)
        first = pipe.execute()
        pipe = r.pipeline(transaction=False)
        _queue_records(pipe, first)
        second = pipe.execute()
    except (redis.RedisError, OSError) as e:
        logger.warning("[Telephony State] Redis unreachable: %s", type(e).__name__)
        return ServiceState(status=UNAVAILABLE, timestamp=ts, reason="redis_unreachable")
    return _finish(first, second, ts)


async def aread_state() -> ServiceState:
    """Async twin of :func:`read_state`."""
    ts = now_ms()
    try:
        r = get_async_redis()
        pipe = r.pipeline(transaction=False)
        _queue_reads(pipe, ts)
        first = await pipe.execute()
        pipe = r.pipeline(transaction=False)
        _queue_records(pipe, first)
        second = await pipe.execute()
    except (redis.RedisError, OSError) as e:
        logger.warning("[Telephony State] Redis unreachable: %s", type(e).__name__)
        return ServiceState(status=UNAVAILABLE, timestamp=ts, reason="redis_unreachable")
    return _finish(first, second, ts)


class StateCache:
    """A short-lived in-process cache, so hot paths pay for Redis at most every TTL."""

    def __init__(self) -> None:
        self._state: ServiceState | None = None
        self._at = 0.0
        self._reading: asyncio.Future[ServiceState] | None = None

    def _fresh(self) -> ServiceState | None:
        ttl = float(settings.TELEPHONY_STATE_CACHE_TTL)
        if self._state is not None and time.monotonic() - self._at < ttl:
            return self._state
        return None

    def get(self) -> ServiceState:
        state = self._fresh()
        if state is None:
            state = self.put(read_state())
        return state

    async def aget(self) -> ServiceState:
        state = self._fresh()
        if state is not None:
            return state
        # Single flight: a burst of callers shares one Redis read instead of each
        # taking a connection.
        reading = self._reading
        if reading is None or reading.get_loop() is not asyncio.get_running_loop():
            reading = self._reading = asyncio.ensure_future(aread_state())
            reading.add_done_callback(self._read_done)
        return await asyncio.shield(reading)

    def _read_done(self, reading: asyncio.Future[ServiceState]) -> None:
        if self._reading is reading:
            self._reading = None
        if not reading.cancelled() and reading.exception() is None:
            self.put(reading.result())

    def put(self, state: ServiceState) -> ServiceState:
        self._state, self._at = state, time.monotonic()
        return state

    def clear(self) -> None:
        self._state = None
        self._reading = None


state_cache = StateCache()
