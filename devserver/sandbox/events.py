"""Webhook bodies shaped like the spec's ``Call*Event`` schemas.

``hangup_cause`` keeps to the spec's enum (``call_rejected``, ``normal_clearing``,
``originator_cancel``, ``timeout``, ``time_limit``, ``user_busy``, ``not_found``,
``no_answer``, ``unspecified``); ``sip_hangup_cause`` is the SIP status a carrier would
give for it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from devserver.sandbox.store import Call

SIP_CAUSES = {
    "normal_clearing": "unspecified",
    "originator_cancel": "487",
    "timeout": "408",
    "user_busy": "486",
    "not_found": "404",
    "call_rejected": "603",
    "no_answer": "480",
}


def iso_us(moment: datetime) -> str:
    """Webhook timestamps carry microseconds, as in Telnyx's examples."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event(call: Call, event_type: str, now: datetime) -> dict[str, Any]:
    """A webhook body for ``call.initiated``, ``.answered``, ``.bridged`` or ``.hangup``."""
    payload: dict[str, Any] = {
        "call_control_id": call.call_control_id,
        "call_leg_id": call.call_leg_id,
        "call_session_id": call.call_session_id,
        "connection_id": call.connection_id,
        "from": call.from_,
        "to": call.to,
    }
    if event_type != "call.bridged":  # CallBridged has no start_time or state
        payload["start_time"] = iso_us(call.start_time)
    if call.client_state is not None:
        payload["client_state"] = call.client_state
    if event_type == "call.initiated":
        payload.update(direction="outgoing", state="bridging")
    elif event_type == "call.answered":
        payload["state"] = "answered"
    elif event_type == "call.hangup":
        cause = call.hangup_cause or "unspecified"
        payload.update(
            state="hangup",
            hangup_cause=cause,
            hangup_source=call.hangup_source or "unknown",
            sip_hangup_cause=SIP_CAUSES.get(cause, "unspecified"),
            call_quality_stats=None,
            end_time=iso_us(call.end_time or now),
        )
    data = {
        "event_type": event_type,
        "id": str(uuid.uuid4()),
        "occurred_at": iso_us(now),
        "payload": dict(sorted(payload.items())),
        "record_type": "event",
    }
    return {"data": data}
