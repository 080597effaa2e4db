"""The two legs of a call: how webhooks name them, and what a leg's hangup means.

Shared by the worker (which dials the legs and puts our state in ``client_state``) and
the web side (which reads it back from webhooks), so both decode the same way and agree
on what each hangup does to the row. Pure functions: no I/O, no SDK.

``client_state`` is base64 of ``{"call": "<our call id>", "leg": "agent"|"customer"}``
(Telnyx requires base64 and echoes it in every webhook of that leg). Older calls carry
base64 of the bare call id; they decode with no leg.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from telephony.models import CallStatus, HangupSide

SIP_DOMAIN = "sip.telnyx.com"
MAX_CLIENT_STATE = 512  # ours is about 90 characters; anything longer is not ours


class Leg(StrEnum):
    """The agent leg rings the agent's browser; the customer leg is the PSTN call."""

    AGENT = "agent"
    CUSTOMER = "customer"

    @property
    def other(self) -> Leg:
        return Leg.CUSTOMER if self is Leg.AGENT else Leg.AGENT


def agent_sip_uri(sip_username: str) -> str:
    """Where the agent leg is dialled: the agent's WebRTC login, a SIP user at Telnyx."""
    return f"sip:{sip_username}@{SIP_DOMAIN}"


def encode_client_state(call_id: uuid.UUID | str, leg: Leg) -> str:
    """Our call id and the leg, as the base64 text Telnyx accepts in ``client_state``."""
    doc = json.dumps({"call": str(call_id), "leg": leg.value}, separators=(",", ":"))
    return base64.b64encode(doc.encode()).decode()


def decode_client_state(value: Any) -> tuple[uuid.UUID, Leg | None] | None:
    """(call id, leg) from a webhook's ``client_state``; None for anything not ours."""
    if not isinstance(value, str) or not value or len(value) > MAX_CLIENT_STATE:
        return None
    try:
        text = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    try:
        return uuid.UUID(text), None  # the single-leg form: base64 of the call id
    except ValueError:
        pass
    try:
        doc = json.loads(text)
        return uuid.UUID(str(doc["call"])), Leg(doc["leg"])
    except (ValueError, KeyError, TypeError):
        return None


# -- what a leg's hangup means ----------------------------------------------------------

NO_ANSWER_CAUSES = frozenset({"timeout", "no_answer"})
BUSY_CAUSES = frozenset({"user_busy", "call_rejected"})
UNREACHABLE_CAUSES = frozenset({"not_found", "unspecified"})


@dataclass(frozen=True)
class Outcome:
    """What a hangup does to the row: its terminal status (None: not decided by this
    event), the error code saying why, and who hung up (None: not told by this event)."""

    status: str | None
    error_code: str = ""
    side: str | None = None


def hangup_outcome(
    leg: Leg, *, cause: str, source: str, answered: bool, customer_dialed: bool
) -> Outcome:
    """The row's outcome when ``leg`` hangs up with Telnyx's ``hangup_cause``/``hangup_source``.

    ``source == "caller"`` means our side ended the leg (we place both legs): a hangup we
    sent because of the other leg, whose own event or our own code says what happened.
    ``answered`` is the customer having answered; ``customer_dialed`` the customer leg
    having been placed.
    """
    ours = source == "caller"
    if answered:
        side = None if ours else (HangupSide.AGENT if leg is Leg.AGENT else HangupSide.CUSTOMER)
        return Outcome(CallStatus.COMPLETED, side=side)
    if leg is Leg.CUSTOMER:
        if cause in BUSY_CAUSES:
            return Outcome(CallStatus.BUSY, side=HangupSide.CUSTOMER)
        if cause in NO_ANSWER_CAUSES:
            return Outcome(CallStatus.NO_ANSWER, side=HangupSide.CUSTOMER)
        if cause == "originator_cancel" or ours:
            return Outcome(CallStatus.CANCELED)  # we cancelled it: the agent hung up
        return Outcome(CallStatus.FAILED, "customer_leg_failed", HangupSide.SYSTEM)
    if not customer_dialed:
        if cause in NO_ANSWER_CAUSES:
            return Outcome(CallStatus.NO_ANSWER, "agent_no_answer", HangupSide.SYSTEM)
        if cause in UNREACHABLE_CAUSES:
            return Outcome(CallStatus.FAILED, "agent_unreachable", HangupSide.SYSTEM)
    if ours:
        return Outcome(None)
    return Outcome(CallStatus.CANCELED, side=HangupSide.AGENT)
