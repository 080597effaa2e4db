"""The telephony worker: consumes channel ``telephony`` with bounded, concurrent intake.

Unlike ``channels.worker`` it takes a message off the channel only when it has a free
slot (``TELEPHONY_WORKER_CONCURRENCY``), so a SIGKILL loses at most what it was working
on, and one slow Telnyx call never blocks the others. For every request it:

1. drops it, unexecuted, if its deadline has passed;
2. claims its ``request_id`` in Redis (SET NX), so a duplicate delivery or a second
   worker can never execute it again;
3. runs the operation inside the time left, and pushes the reply on ``reply_to``, the
   request's own reply key, which its caller pops with one BLPOP.

Its event loop beats into Redis every ``TELEPHONY_HEARTBEAT_INTERVAL``; a blocked loop
stops beating, which is how the supervisor tells a hung worker from a busy one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psutil
import redis
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections

from telephony import exceptions as exc
from telephony.connections import get_async_redis
from telephony.keys import Keys
from telephony.layers import TelephonyChannelLayer
from telephony.procutil import host_id
from telephony.protocol import CHANNEL, FIRE_AND_FORGET, Heartbeat, Reply, Request
from telephony.state import now_ms
from telephony.worker.adapter import TelnyxAdapter
from telephony.worker.breaker import breaker_from_settings
from telephony.worker.claims import Claim, claim_request
from telephony.worker.hygiene import credential_hygiene
from telephony.worker.operations import Operations
from telephony.worker.process import own_memory
from telephony.worker.provider import RequestContext
from telephony.worker.reconciler import reconcile_once
from telephony.worker.recording_retention import recording_hygiene
from telephony.worker.recordings import RecordingFetcher
from telephony.worker.replies import send_reply
from telephony.worker.stats import Pending, WorkerStats

logger = logging.getLogger(__name__)

INTAKE_IDLE = 1  # seconds one pop off the channel may block: how soon a stop ends intake
MIN_START_BUDGET = 0.05  # seconds left below which a request is not started at all
CLAIM_EXTRA_MS = 60_000  # claims outlive the deadline, so late duplicates still see them


class TelephonyWorker:
    """One worker process's event loop: intake, heartbeat, reconciler, graceful drain."""

    def __init__(
        self,
        *,
        adapter: TelnyxAdapter | None = None,
        layer: TelephonyChannelLayer | None = None,
        concurrency: int | None = None,
        clock: Callable[[], float] = time.time,
        spare: bool = False,
        worker_id: str | None = None,
    ) -> None:
        # ``worker_id`` (host:pid) is given only by tests that run two workers in one process.
        self.worker_id = worker_id or f"{host_id()}:{os.getpid()}"
        self.concurrency = concurrency or int(settings.TELEPHONY_WORKER_CONCURRENCY)
        self.clock = clock
        self.layer = layer or get_channel_layer()
        if not hasattr(self.layer, "receive_or_idle"):
            raise ImproperlyConfigured(
                f"CHANNEL_LAYERS must use {TelephonyChannelLayer.__module__}."
                f"{TelephonyChannelLayer.__name__} (the worker's intake needs receive_or_idle)"
            )
        self.adapter = adapter or TelnyxAdapter(
            api_key=settings.TELNYX_API_KEY,
            base_url=settings.TELNYX_BASE_URL,
            breaker=breaker_from_settings(),
            max_connections=max(self.concurrency * 2, 20),
        )
        self.ops = Operations(self.adapter, worker_id=self.worker_id)
        self.recordings = RecordingFetcher(self.adapter, worker_id=self.worker_id)
        self.handlers: dict[
            str, Callable[[RequestContext, dict[str, Any]], Awaitable[dict[str, Any]]]
        ] = {
            "credential.create": self.ops.credential_create,
            "call.dial": self.ops.call_dial,
            "call.hangup": self.ops.call_hangup,
            "call.status": self.ops.call_status,
            "call.event": self.ops.call_event,
            "call.record": self.ops.call_record,
            "health.ping": self.ops.health_ping,
            "recording.fetch": self.recordings.recording_fetch,
        }
        self.stats = WorkerStats()
        self.started_at = now_ms()
        self.supervisor_id = os.environ.get("TELEPHONY_SUPERVISOR_ID", "")
        self.draining = False
        self.spare = spare
        self._promoted = asyncio.Event()
        self._stop = asyncio.Event()
        self._closing = False
        self._slots = asyncio.Semaphore(self.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._process = psutil.Process()

    # -- life cycle ----------------------------------------------------------------------

    def stop(self) -> None:
        """Stop intake; in-flight requests finish within the shutdown grace."""
        if not self._stop.is_set():
            logger.info(
                "[Telephony Worker] Stopping worker_id=%s in_flight=%d",
                self.worker_id,
                self.stats.in_flight,
            )
            self.draining = True
            self._stop.set()

    def promote(self) -> None:
        """SIGUSR1: a spare starts taking requests (and beats at once, so it counts)."""
        if self.spare and not self._stop.is_set():
            self.spare = False
            self._promoted.set()
            logger.info("[Telephony Worker] Promoted worker_id=%s: taking requests", self.worker_id)

    async def run(self, *, handle_signals: bool = True) -> None:
        """Serve until :meth:`stop` (SIGTERM/SIGINT), then drain; tests run it in their loop
        with ``handle_signals=False`` and call :meth:`stop` and :meth:`promote` directly."""
        if handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)
            # Before the first beat: the supervisor signals a spare only once it has beaten.
            loop.add_signal_handler(signal.SIGUSR1, self.promote)
        await self._beat()  # first beat: we are up, the adapter is loaded
        logger.info(
            "[Telephony Worker] Started worker_id=%s concurrency=%d%s",
            self.worker_id,
            self.concurrency,
            " as a spare (idle until promoted)" if self.spare else "",
        )
        background = [asyncio.create_task(self._heartbeat_loop(), name="heartbeat")]
        was_spare = self.spare
        if was_spare:
            await self._until_promoted()
        intake = asyncio.create_task(self._intake_loop(), name="intake")
        if not self._stop.is_set():
            background.append(asyncio.create_task(self._reconcile_loop(), name="reconciler"))
            if was_spare:  # counted as serving now, not a heartbeat later
                background.append(asyncio.create_task(self._beat_once(), name="promoted-beat"))
        await self._stop.wait()
        # Intake ends by itself within INTAKE_IDLE: a pop is never cancelled midway, since
        # that can lose the message Redis was handing over. Cancelled only if Redis hangs.
        await asyncio.wait({intake}, timeout=INTAKE_IDLE + 2.0)
        if not intake.done():
            intake.cancel()
            await asyncio.wait({intake}, timeout=1.0)
        await self._drain(float(settings.TELEPHONY_SHUTDOWN_GRACE))
        # The loops also end on this flag: on Python 3.11 a cancel that lands while redis-py
        # writes a command can be swallowed (its wait_for), and the loop would beat on.
        self._closing = True
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await self._forget()
        await self.recordings.aclose()  # a cancelled fetch hands its lease back first
        await self.adapter.aclose()
        logger.info(
            "[Telephony Worker] Stopped worker_id=%s handled=%d failed=%d",
            self.worker_id, self.stats.handled, self.stats.failed,
        )  # fmt: skip

    async def _until_promoted(self) -> None:
        """A spare waits here, fully loaded, until SIGUSR1 (or a stop)."""
        waits = {
            asyncio.create_task(self._promoted.wait()),
            asyncio.create_task(self._stop.wait()),
        }
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()

    async def _drain(self, grace: float) -> None:
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                logger.warning("[Telephony Worker] %d requests cut off at shutdown", len(pending))
                await asyncio.gather(*pending, return_exceptions=True)

    # -- intake --------------------------------------------------------------------------

    async def _intake_loop(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            await self._slots.acquire()
            try:
                message = await self.layer.receive_or_idle(CHANNEL, idle=INTAKE_IDLE)
            except asyncio.CancelledError:
                self._slots.release()
                raise
            except (redis.RedisError, OSError) as e:
                self._slots.release()
                logger.warning(
                    "[Telephony Worker] channel layer unreachable (%s); retrying", type(e).__name__
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.1
            if message is None:  # nothing within INTAKE_IDLE: look at the stop flag again
                self._slots.release()
                continue
            task = asyncio.create_task(self._handle(message))
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def _handle(self, message: Any) -> None:
        try:
            request = Request.decode(message)
        except exc.InvalidRequest as e:
            logger.warning("[Telephony Worker] malformed request dropped: %s", e.message)
            return
        op, rid, deadline = request.op, request.request_id, request.deadline_s
        remaining = deadline - self.clock()
        if remaining < MIN_START_BUDGET:
            self.stats.dropped_late += 1
            logger.warning(
                "[Telephony Worker] request_id=%s op=%s dropped: deadline passed %.0f ms ago",
                rid,
                op,
                -remaining * 1000,
            )
            return
        try:
            claim = await claim_request(
                rid, self.worker_id, ttl_ms=int(remaining * 1000) + CLAIM_EXTRA_MS
            )
        except (redis.RedisError, OSError) as e:
            logger.warning(
                "[Telephony Worker] request_id=%s not claimed, Redis error %s",
                rid,
                type(e).__name__,
            )
            return
        if claim is Claim.TAKEN:
            self.stats.duplicates += 1
            logger.info(
                "[Telephony Worker] request_id=%s op=%s duplicate delivery ignored", rid, op
            )
            return
        if claim is Claim.UNREPLICATED:  # a failover could lose the claim: do not run it
            logger.warning(
                "[Telephony Worker] request_id=%s op=%s refused: no replica confirmed the claim",
                rid,
                op,
            )
            refused = exc.ServiceUnavailable(reason="claim_not_replicated")
            reply, _ = self._failed(rid, op, refused)
            if op not in FIRE_AND_FORGET:
                await self._reply(request, reply)
            return
        self.stats.in_flight += 1
        started = time.monotonic()
        ctx = RequestContext(request_id=rid, deadline=deadline)
        try:
            async with asyncio.timeout(remaining):
                result = await self.handlers[op](ctx, request.payload)
            reply = Reply.success(rid, result)
            self.stats.handled += 1
            code = "ok"
        except TimeoutError:
            err: exc.TelephonyError = exc.WorkerTimeout(
                "The request ran out of time in the worker."
            )
            reply, code = self._failed(rid, op, err)
        except exc.TelephonyError as e:
            reply, code = self._failed(rid, op, e)
        except Exception:
            logger.exception("[Telephony Worker] request_id=%s op=%s crashed", rid, op)
            reply, code = self._failed(rid, op, exc.TelephonyError())
        finally:
            self.stats.in_flight -= 1
        self.stats.record(op, time.monotonic() - started, code)
        if op in FIRE_AND_FORGET:  # nobody waits for it: a reply would only pile up
            return
        await self._reply(request, reply)

    async def _reply(self, request: Request, reply: Reply) -> None:
        try:
            await send_reply(self.layer, request, reply, now=self.clock())
        except Exception as e:
            logger.warning(
                "[Telephony Worker] request_id=%s reply lost: %s",
                request.request_id,
                type(e).__name__,
            )

    def _failed(self, rid: str, op: str, err: exc.TelephonyError) -> tuple[Reply, str]:
        self.stats.failed += 1
        self.stats.handled += 1
        self.stats.last_error = err.reason
        logger.info("[Telephony Worker] request_id=%s op=%s failed: %s", rid, op, err.reason)
        return Reply.failure(rid, err), err.reason

    # -- heartbeat and housekeeping -------------------------------------------------------

    def heartbeat(self) -> Heartbeat:
        """The record the supervisor and ``status()`` read."""
        host, pid = self.worker_id.rsplit(":", 1)
        breaker = self.adapter.breaker
        mem = own_memory()
        return Heartbeat(
            id=self.worker_id,
            host=host,
            pid=int(pid),
            supervisor_id=self.supervisor_id,
            started_at=self.started_at,
            beat_at=now_ms(),
            handled=self.stats.handled,
            failed=self.stats.failed,
            dropped_late=self.stats.dropped_late,
            duplicates=self.stats.duplicates,
            in_flight=self.stats.in_flight,
            rss_mb=mem.rss_mb or round(self._process.memory_info().rss / 1048576, 1),
            pss_mb=mem.pss_mb,
            uss_mb=mem.uss_mb,
            last_error=self.stats.last_error,
            breaker=breaker.state,
            breaker_detail=breaker.snapshot(),
            latency=self.stats.summary(),
            concurrency=self.concurrency,
            draining=self.draining,
            spare=self.spare,
        )

    async def _beat(self) -> None:
        r = get_async_redis()
        ttl = int(float(settings.TELEPHONY_HEARTBEAT_TIMEOUT) * 1000)
        pipe = r.pipeline(transaction=False)
        pipe.set(Keys.worker(self.worker_id), self.heartbeat().encode(), px=ttl)
        pipe.zadd(Keys.workers(), {self.worker_id: now_ms()})
        pipe.zremrangebyscore(Keys.workers(), "-inf", now_ms() - 3_600_000)
        pipe.get(Keys.breaker_forced())
        pending = self.stats.take_pending()
        self._queue_metrics(pipe, pending)
        try:
            results = await pipe.execute()
        except BaseException:
            self.stats.restore_pending(pending)
            raise
        forced = results[3]
        self.adapter.breaker.forced = forced if forced in ("open", "closed") else None

    @staticmethod
    def _queue_metrics(pipe: Any, pending: Pending) -> None:
        """Add counters recorded since the last beat to the heartbeat's pipeline."""
        requests, latency, latency_sum = pending
        for name, n in requests.items():
            pipe.hincrby(Keys.metric_requests(), name, n)
        for name, n in latency.items():
            pipe.hincrby(Keys.metric_latency(), name, n)
        for name, ms in latency_sum.items():
            pipe.hincrbyfloat(Keys.metric_latency(), name, round(ms, 3))

    async def _heartbeat_loop(self) -> None:
        interval = float(settings.TELEPHONY_HEARTBEAT_INTERVAL)
        while not self._closing:
            await asyncio.sleep(interval)
            await self._beat_once()

    async def _beat_once(self) -> None:
        try:
            await self._beat()
        except (redis.RedisError, OSError) as e:
            logger.warning("[Telephony Worker] heartbeat failed: %s", type(e).__name__)
        except Exception:
            logger.exception("[Telephony Worker] heartbeat crashed; continuing")

    async def _forget(self) -> None:
        try:
            r = get_async_redis()
            await r.delete(Keys.worker(self.worker_id))
            await r.zrem(Keys.workers(), self.worker_id)
        except (redis.RedisError, OSError):
            pass

    async def _reconcile_loop(self) -> None:
        interval = float(settings.TELEPHONY_RECONCILE_INTERVAL)
        while not self._closing:
            await asyncio.sleep(interval)
            try:
                await sync_to_async(close_old_connections)()
                await reconcile_once(self.ops)
                await credential_hygiene(self.adapter, worker_id=self.worker_id)
                await recording_hygiene(self.recordings)
            except (redis.RedisError, OSError) as e:
                logger.warning("[Telephony Reconciler] skipped: %s", type(e).__name__)
            except Exception:
                logger.exception("[Telephony Reconciler] pass crashed; continuing")
