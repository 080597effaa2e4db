"""The two messages of a round trip over the channel layer: a request and its reply.

Request (sent to channel ``telephony``)::

    {"type": "call.dial", "request_id": "<uuid>", "reply_to": "<channel>",
     "deadline": <epoch ms>, "payload": {...}}

Reply (sent to ``reply_to``)::

    {"type": "telephony.reply", "request_id": "...", "ok": true, "result": {...}}
    {"type": "telephony.reply", "request_id": "...", "ok": false, "error": {...}}

Channel messages are dicts (channels-redis serialises them), so ``encode`` returns the
dict and ``decode`` takes whatever came off the channel.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from telephony.exceptions import InvalidRequest, TelephonyError
from telephony.protocol._codec import malformed

CHANNEL = "telephony"
REPLY_TYPE = "telephony.reply"
OPERATIONS = (
    "credential.create",
    "call.dial",
    "call.hangup",
    "call.status",
    "call.event",
    "call.record",
    "health.ping",
    "recording.fetch",
)
# Sent without waiting for an answer (a webhook forwarded to the workers): no reply is sent.
FIRE_AND_FORGET = frozenset({"call.event", "recording.fetch"})
NO_REPLY = "telephony.noreply"  # the reply_to of fire-and-forget requests; never read


@dataclass(frozen=True)
class Request:
    """One operation for a worker, with the deadline after which nobody waits for it."""

    op: str
    request_id: str
    reply_to: str
    deadline: float  # epoch milliseconds, as on the wire
    payload: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def new(
        cls,
        op: str,
        *,
        reply_to: str,
        timeout: float,
        payload: dict[str, Any],
        request_id: str | None = None,
    ) -> Request:
        """A request with a fresh request id and a deadline ``timeout`` seconds from now."""
        if op not in OPERATIONS:
            raise InvalidRequest(f"Unknown operation {op!r}.")
        return cls(
            op=op,
            request_id=request_id or str(uuid.uuid4()),
            reply_to=reply_to,
            deadline=int((time.time() + timeout) * 1000),
            payload=payload,
        )

    @property
    def deadline_s(self) -> float:
        """The deadline in epoch seconds (what clocks compare against)."""
        return self.deadline / 1000.0

    def encode(self) -> dict[str, Any]:
        return {
            "type": self.op,
            "request_id": self.request_id,
            "reply_to": self.reply_to,
            "deadline": self.deadline,
            "payload": self.payload,
        }

    @classmethod
    def decode(cls, message: Any) -> Request:
        """The request in ``message``, or ``InvalidRequest`` saying what is wrong with it."""
        if not isinstance(message, dict):
            raise InvalidRequest("Request is not a mapping.")
        op, rid, reply_to = message.get("type"), message.get("request_id"), message.get("reply_to")
        deadline, payload = message.get("deadline"), message.get("payload", {})
        if op not in OPERATIONS:
            raise InvalidRequest(f"Unknown operation {op!r}.")
        if not isinstance(rid, str) or not rid:
            raise InvalidRequest("Request has no request_id.")
        if not isinstance(reply_to, str) or not reply_to:
            raise InvalidRequest("Request has no reply_to.")
        if not isinstance(deadline, int | float) or isinstance(deadline, bool):
            raise InvalidRequest("Request has no deadline.")
        if not isinstance(payload, dict):
            raise InvalidRequest("Request payload is not a mapping.")
        return cls(op=op, request_id=rid, reply_to=reply_to, deadline=deadline, payload=payload)


@dataclass(frozen=True)
class Reply:
    """A worker's answer: a result, or an error rebuilt on the caller's side."""

    request_id: str
    ok: bool
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None  # TelephonyError.to_dict()

    @classmethod
    def success(cls, request_id: str, result: dict[str, Any]) -> Reply:
        return cls(request_id=request_id, ok=True, result=result)

    @classmethod
    def failure(cls, request_id: str, error: TelephonyError) -> Reply:
        return cls(request_id=request_id, ok=False, error=error.to_dict())

    def unwrap(self) -> dict[str, Any]:
        """The result, or the worker's error raised here."""
        if self.ok:
            return dict(self.result or {})
        raise TelephonyError.from_dict(self.error or {})

    def encode(self) -> dict[str, Any]:
        body = {"result": self.result} if self.ok else {"error": self.error}
        return {"type": REPLY_TYPE, "request_id": self.request_id, "ok": self.ok, **body}

    @classmethod
    def decode(cls, message: Any) -> Reply:
        """The reply in ``message``, or ``InvalidRequest`` (reason ``malformed_reply``)."""
        if not isinstance(message, dict):
            raise malformed("reply", "not a mapping")
        if message.get("type") != REPLY_TYPE:
            raise malformed("reply", f"type is {message.get('type')!r}")
        rid, ok = message.get("request_id"), message.get("ok")
        if not isinstance(rid, str) or not isinstance(ok, bool):
            raise malformed("reply", "request_id or ok missing")
        body = message.get("result" if ok else "error")
        if body is not None and not isinstance(body, dict):
            raise malformed("reply", "result or error is not a mapping")
        return cls(request_id=rid, ok=ok, result=body if ok else None, error=None if ok else body)
