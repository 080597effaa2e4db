"""Call lifecycles and their signed webhooks: initiated, answered, hangup.

Each dialled call gets one lifecycle task that changes its state on a timetable (answer
after ``answer_after`` seconds, remote hangup after ``talk_time``) and queues events,
and one sender task that delivers them in order. A hangup through the API ends the call
at once; the lifecycle then queues ``call.hangup`` and never ``call.answered``.

Signing follows Telnyx: ``telnyx-signature-ed25519`` is base64 of the ed25519 signature
over ``f"{timestamp}|{body}"`` and ``telnyx-timestamp`` is unix seconds; the bytes sent
are exactly the bytes signed. The public key is base64 of the raw 32-byte verify key,
which is what Telnyx's portal shows. Delivery retries connection errors and 5xx answers
a couple of times with a short timeout; failures are logged and recorded, never raised.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import aiohttp

from devserver.sandbox.events import event
from devserver.sandbox.signing import Signer
from devserver.sandbox.store import Call, Clock, utcnow

logger = logging.getLogger(__name__)


@dataclass
class WebhookSettings:
    """Timetable and delivery knobs; changeable at run time via ``POST /_sandbox/webhooks``."""

    initiated_after: float = 0.05
    answer_after: float = 1.0
    talk_time: float = 5.0
    answer: bool = True
    webhook_url: str | None = None
    timeout: float = 2.0
    retries: int = 2

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)

    def updated(self, data: Any) -> WebhookSettings:
        """A copy with the control endpoint's changes applied. Raises ValueError."""
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        current = self.as_dict()
        for key, value in data.items():
            if key in ("initiated_after", "answer_after", "talk_time", "timeout"):
                ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
            elif key == "retries":
                ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
            elif key == "answer":
                ok = isinstance(value, bool)
            elif key == "webhook_url":
                ok = value is None or isinstance(value, str)
            else:
                raise ValueError(f"unknown key {key!r}")
            if not ok:
                raise ValueError(f"invalid value for {key}: {value!r}")
            current[key] = value
        return WebhookSettings(**current)


class CallListener(Protocol):
    """Who else must know about a call's lifecycle (the WebRTC side: agent legs, bridges)."""

    def ring(self, call: Call) -> None:
        """A call to a registered SIP user was initiated: ring its clients."""

    def answered(self, call: Call) -> None:
        """A call to a number was answered by the timetable."""

    def ended(self, call: Call) -> None:
        """A call's ``call.hangup`` was queued."""


class Webhooks:
    """Runs call lifecycles and delivers their events; owns every task it starts."""

    def __init__(self, signer: Signer, settings: WebhookSettings, *, clock: Clock = utcnow) -> None:
        self.signer = signer
        self.settings = settings
        self.clock = clock
        self.listener: CallListener | None = None
        # told of each call event as it is queued (recordings start on answer, end on hangup)
        self.observers: list[Callable[[Call, str], None]] = []
        self.deliveries: list[dict[str, Any]] = []
        self._ended: dict[str, asyncio.Event] = {}
        self._queues: dict[str, asyncio.Queue[dict[str, Any] | None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._senders: dict[str, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the HTTP client used for deliveries."""
        self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        """Stop every lifecycle and close the HTTP client."""
        await self.cancel_all()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def cancel_all(self) -> None:
        """Cancel lifecycles and pending deliveries (reset and shutdown)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._ended.clear()
        self._queues.clear()
        self._senders.clear()

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _put(self, queue: asyncio.Queue[dict[str, Any] | None], call: Call, kind: str) -> None:
        when = call.answer_time if kind == "call.answered" else None
        if kind == "call.hangup":
            when = call.end_time
        queue.put_nowait(event(call, kind, when or self.clock()))
        for observer in self.observers:
            try:
                observer(call, kind)
            except Exception:
                logger.exception(
                    "[Telnyx Sandbox] Event observer failed event=%s call=%s",
                    kind,
                    call.call_control_id,
                )

    def send(self, call: Call, body: dict[str, Any]) -> None:
        """Deliver an event outside the call's lifecycle (recordings: after the hangup).

        Queued behind the call's own events while it has a lifecycle, else delivered once
        they are, as Telnyx sends ``call.recording.saved`` after ``call.hangup``.
        """
        queue = self._queues.get(call.call_control_id)
        if queue is not None:
            queue.put_nowait(body)
            return
        sender = self._senders.get(call.call_control_id)

        async def run() -> None:
            if sender is not None:
                await asyncio.wait([sender])
            url = self._url(call, body["data"]["event_type"])
            await self._deliver(url, body, call)

        self._spawn(run())

    def call_started(self, call: Call, *, driven: bool = False) -> None:
        """Begin the lifecycle of a freshly dialled call (timetable fixed now).

        A ``driven`` call (to a registered SIP user) is answered and hung up by its
        WebRTC client, not by the timetable.
        """
        s = self.settings
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._ended[call.call_control_id] = asyncio.Event()
        self._queues[call.call_control_id] = queue
        plan = (s.initiated_after, s.answer, s.answer_after, s.talk_time)
        self._spawn(self._lifecycle(call, queue, driven, *plan))
        sender = self._senders[call.call_control_id] = self._spawn(self._sender(call, queue))
        sender.add_done_callback(lambda _t: self._senders.pop(call.call_control_id, None))

    def emit(self, call: Call, event_type: str) -> None:
        """Queue an event for a live call (answered by a client, bridged)."""
        queue = self._queues.get(call.call_control_id)
        if queue is not None:
            self._put(queue, call, event_type)

    def call_ended(self, call: Call) -> None:
        """The call was hung up outside its timetable: wake its lifecycle."""
        ended = self._ended.get(call.call_control_id)
        if ended is not None:
            ended.set()

    async def _wait_end(self, call: Call, seconds: float | None) -> bool:
        """Wait up to ``seconds`` (None: for ever) for a hangup; True if it came."""
        ended = self._ended[call.call_control_id]
        try:
            timeout = None if seconds is None else max(seconds, 0)
            await asyncio.wait_for(ended.wait(), timeout=timeout)
        except TimeoutError:
            return not call.is_alive
        return True

    async def _lifecycle(
        self,
        call: Call,
        queue: asyncio.Queue[dict[str, Any] | None],
        driven: bool,
        initiated_after: float,
        answer: bool,
        answer_after: float,
        talk_time: float,
    ) -> None:
        try:
            await asyncio.sleep(initiated_after)
            self._put(queue, call, "call.initiated")
            if driven:
                if self.listener is not None and call.is_alive:
                    self.listener.ring(call)
                await self._wait_end(call, None)
            elif call.outcome == "busy":
                if not await self._wait_end(call, answer_after):
                    call.end(self.clock(), cause="user_busy", source="callee")
            elif answer and call.outcome != "no_answer":
                if not await self._wait_end(call, answer_after) and call.is_alive:
                    call.state, call.answer_time = "answered", self.clock()
                    self._put(queue, call, "call.answered")
                    if self.listener is not None:
                        self.listener.answered(call)
                    if not await self._wait_end(call, talk_time):
                        call.end(self.clock(), cause="normal_clearing", source="callee")
            elif not await self._wait_end(call, talk_time):
                call.end(self.clock(), cause="timeout", source="unknown")
            self._put(queue, call, "call.hangup")
            self._queues.pop(call.call_control_id, None)
            if self.listener is not None:
                self.listener.ended(call)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("[Telnyx Sandbox] Call lifecycle failed call=%s", call.call_control_id)
        finally:
            queue.put_nowait(None)
            self._ended.pop(call.call_control_id, None)
            self._queues.pop(call.call_control_id, None)

    async def _sender(self, call: Call, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        while (body := await queue.get()) is not None:
            event_type = body["data"]["event_type"]
            url = self._url(call, event_type)
            try:
                await self._deliver(url, body, call)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception(
                    "[Telnyx Sandbox] Webhook delivery crashed event=%s call=%s",
                    event_type,
                    call.call_control_id,
                )

    def _url(self, call: Call, event_type: str) -> str | None:
        return call.webhook_urls.get(event_type) or call.webhook_url or self.settings.webhook_url

    async def _deliver(self, url: str | None, body: dict[str, Any], call: Call) -> None:
        data = body["data"]
        record: dict[str, Any] = {
            "event_type": data["event_type"],
            "event_id": data["id"],
            "call_control_id": call.call_control_id,
            "url": url,
            "status": None,
            "attempts": 0,
            "delivered": False,
            "error": None,
            "ts": int(time.time() * 1000),
            "body": body,
        }
        if url is None or self._session is None:
            self.deliveries.append(record)
            return
        raw = json.dumps(body, separators=(",", ":")).encode()
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout)
        for attempt in range(1, self.settings.retries + 2):
            record["attempts"] = attempt
            stamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "telnyx-webhooks (sandbox)",
                "telnyx-timestamp": stamp,
                "telnyx-signature-ed25519": self.signer.sign(raw, stamp),
            }
            try:
                async with self._session.post(url, data=raw, headers=headers, timeout=timeout) as r:
                    await r.read()
                    record["status"], record["error"] = r.status, None
                    if r.status < 500:
                        break
            except (aiohttp.ClientError, TimeoutError) as e:
                record["error"] = f"{type(e).__name__}: {e}"
            if attempt <= self.settings.retries:
                await asyncio.sleep(0.2 * attempt)
        record["delivered"] = record["status"] is not None and 200 <= record["status"] < 300
        if not record["delivered"]:
            logger.warning(
                "[Telnyx Sandbox] Webhook not delivered event=%s call=%s status=%s error=%s",
                data["event_type"],
                call.call_control_id,
                record["status"],
                record["error"],
            )
        self.deliveries.append(record)
