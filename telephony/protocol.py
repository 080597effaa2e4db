"""The messages exchanged over the channel layer between the web side and the workers.

Request (sent to channel ``telephony``)::

    {"type": "call.dial", "request_id": "<uuid>", "reply_to": "<channel>",
     "deadline": <epoch ms>, "payload": {...}}

Reply (sent to ``reply_to``)::

    {"type": "telephony.reply", "request_id": "...", "ok": true, "result": {...}}
    {"type": "telephony.reply", "request_id": "...", "ok": false, "error": {...}}
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from telephony.exceptions import InvalidRequest, TelephonyError

CHANNEL = "telephony"
REPLY_TYPE = "telephony.reply"
OPERATIONS = (
    "credential.create",
    "call.dial",
    "call.hangup",
    "call.status",
    "call.event",
    "health.ping",
)
# Sent without waiting for an answer (a webhook forwarded to the workers): no reply is sent.
FIRE_AND_FORGET = frozenset({"call.event"})
NO_REPLY = "telephony.noreply"  # the reply_to of fire-and-forget requests; never read

# Upper bounds of the request-latency histogram a worker publishes (heartbeat and metrics).
LATENCY_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)

# A supervisor's own states, in its record (the service states are in telephony.state).
STARTING = "starting"  # no worker has beaten yet
RUNNING = "running"
FAILED = "failed"  # restart intensity exceeded: no more restarts until a reset
STOPPING = "stopping"
STOPPED = "stopped"
RUNNING_STATES = frozenset({STARTING, RUNNING, FAILED})


def new_request(
    op: str,
    *,
    reply_to: str,
    timeout: float,
    payload: dict[str, Any],
    request_id: str | None = None,
) -> dict[str, Any]:
    """Build a request message with a fresh request id and a deadline ``timeout`` from now."""
    if op not in OPERATIONS:
        raise InvalidRequest(f"Unknown operation {op!r}.")
    return {
        "type": op,
        "request_id": request_id or str(uuid.uuid4()),
        "reply_to": reply_to,
        "deadline": int((time.time() + timeout) * 1000),
        "payload": payload,
    }


def ok_reply(request_id: str, result: dict[str, Any]) -> dict[str, Any]:
    return {"type": REPLY_TYPE, "request_id": request_id, "ok": True, "result": result}


def error_reply(request_id: str, error: TelephonyError) -> dict[str, Any]:
    return {"type": REPLY_TYPE, "request_id": request_id, "ok": False, "error": error.to_dict()}


def validate_request(message: Any) -> tuple[str, str, str, float, dict[str, Any]]:
    """Return (op, request_id, reply_to, deadline seconds, payload) or raise InvalidRequest."""
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
    return op, rid, reply_to, float(deadline) / 1000.0, payload
