"""The supervisor's Redis I/O: its own record, its workers' heartbeats, its control list.

One pipeline per exchange, on a client of its own with short timeouts and no retries:
when Redis is slow or gone the supervision loop must get an error quickly and go on
watching its children, never sit in a retry backoff.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from telephony.connections import new_redis
from telephony.exceptions import InvalidRequest
from telephony.keys import Keys
from telephony.protocol import RUNNING_STATES, STOPPED, ControlCommand, Heartbeat, SupervisorRecord
from telephony.state import now_ms

logger = logging.getLogger(__name__)

CONTROL_BATCH = 20
STOPPED_TTL = 86_400  # the "stopped on purpose" marker outlives any restart of the host
ZSET_HORIZON_MS = 3_600_000


T = TypeVar("T")


def _loads(decode: Callable[[Any], T], raw: Any, what: str, reported: set[str]) -> T | None:
    """Decode one record; a malformed one counts as absent, logged once per ``what``."""
    if not raw:
        return None
    try:
        return decode(raw)
    except InvalidRequest as e:
        if what not in reported:
            reported.add(what)
            logger.warning("[Telephony Supervisor] ignoring %s: %s", what, e.message)
        return None


class SupervisorStore:
    """Reads and writes the Redis keys one supervisor owns or watches."""

    def __init__(self, supervisor_id: str, *, heartbeat_timeout: float) -> None:
        self.sid = supervisor_id
        self.ttl_ms = max(1, int(heartbeat_timeout * 1000))
        self.io_timeout = min(1.0, max(0.2, heartbeat_timeout / 2))
        self._client: redis.Redis | None = None
        self._reported: set[str] = set()  # malformed records already logged

    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = new_redis(
                socket_timeout=self.io_timeout,
                socket_connect_timeout=self.io_timeout,
                retry=Retry(NoBackoff(), 0),
            )
        return self._client

    def exchange(
        self,
        *,
        worker_ids: list[str],
        record: SupervisorRecord | None,
        forget: list[str],
        clear_stopped: bool,
    ) -> tuple[list[Heartbeat | None], list[ControlCommand]]:
        """Publish ``record`` (if given), read heartbeats, pop control commands.

        A heartbeat that does not decode reads as None (no beat: the worker is judged
        by its last good one); a malformed command is dropped. Each is logged once.

        Raises ``redis.RedisError`` / ``OSError`` when Redis cannot be reached.
        """
        pipe = self.client().pipeline(transaction=False)
        for wid in worker_ids:
            pipe.get(Keys.worker(wid))
        pipe.lpop(Keys.control(self.sid), CONTROL_BATCH)
        for wid in forget:  # exited workers: do not let their last beat count as alive
            pipe.delete(Keys.worker(wid))
            pipe.zrem(Keys.workers(), wid)
        if clear_stopped:
            pipe.delete(Keys.stopped())
            self._supersede_predecessors()
        if record is not None:
            self._publish(pipe, record)
        results = pipe.execute()
        beats = [
            _loads(Heartbeat.decode, raw, f"the heartbeat of {wid}", self._reported)
            for wid, raw in zip(worker_ids, results, strict=False)
        ]
        commands = [
            c
            for raw in results[len(worker_ids)] or []
            if (c := _loads(ControlCommand.decode, raw, "a control command", set())) is not None
        ]
        return beats, commands

    def _supersede_predecessors(self) -> None:
        """Forget lost supervisors of this host: we replace them (their workers died with
        them), so their share must no longer count as missing."""
        host = self.sid.rsplit(":", 1)[0]
        r = self.client()
        stale = [
            sid
            for raw in r.hkeys(Keys.supervisors_last())
            if (sid := str(raw)) != self.sid and sid.rsplit(":", 1)[0] == host
        ]
        if stale:
            r.hdel(Keys.supervisors_last(), *stale)

    def _publish(self, pipe: Any, record: SupervisorRecord) -> None:
        ts = now_ms()
        encoded = record.encode()
        pipe.set(Keys.supervisor(self.sid), encoded, px=self.ttl_ms)
        if record.state == STOPPED:
            pipe.hdel(Keys.supervisors_last(), self.sid)  # stopped on purpose: not lost
        else:
            pipe.hset(Keys.supervisors_last(), self.sid, encoded)
        pipe.zadd(Keys.supervisors(), {self.sid: ts})
        pipe.zremrangebyscore(Keys.supervisors(), "-inf", ts - ZSET_HORIZON_MS)

    def others_running(self) -> list[str]:
        """Other supervisors with a fresh record that are not stopping or stopped."""
        r = self.client()
        raw_ids: list[Any] = r.zrangebyscore(Keys.supervisors(), now_ms() - self.ttl_ms, "+inf")
        ids = [str(i) for i in raw_ids]
        ids = [i for i in ids if i != self.sid]
        if not ids:
            return []
        records = r.mget([Keys.supervisor(i) for i in ids])
        return [
            i
            for i, raw in zip(ids, records, strict=True)
            if (rec := _loads(SupervisorRecord.decode, raw, f"the record of {i}", self._reported))
            and rec.state in RUNNING_STATES
        ]

    def finish(self, *, record: SupervisorRecord, forget: list[str]) -> bool:
        """Write the final ``stopped`` record; mark the service stopped if we were the last.

        Returns True when the ``stopped`` marker was set.
        """
        last = not self.others_running()
        pipe = self.client().pipeline(transaction=False)
        for wid in forget:
            pipe.delete(Keys.worker(wid))
            pipe.zrem(Keys.workers(), wid)
        if last:
            marker = json.dumps({"at": now_ms(), "by": self.sid})
            pipe.set(Keys.stopped(), marker, ex=STOPPED_TTL)
        pipe.delete(Keys.control(self.sid))
        self._publish(pipe, record)
        pipe.execute()
        return last

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
