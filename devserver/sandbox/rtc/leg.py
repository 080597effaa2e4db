"""One agent leg's record, and the telnyx_rtc.bye causes the sandbox sends."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from devserver.sandbox.rtc.audio import Conversation
from devserver.sandbox.rtc.signalling import RpcError, Session
from devserver.sandbox.store import Call

if TYPE_CHECKING:
    from devserver.sandbox.rtc.media import AgentPeer

# hangup_cause -> (cause, causeCode, sipCode, sipReason) of the telnyx_rtc.bye we send
BYE = {
    "normal_clearing": ("NORMAL_CLEARING", 16, 200, "OK"),
    "originator_cancel": ("ORIGINATOR_CANCEL", 487, 487, "Request Terminated"),
    "timeout": ("NO_ANSWER", 19, 480, "Temporarily Unavailable"),
}
UNSPECIFIED = ("NORMAL_UNSPECIFIED", 31, 500, "Server Internal Error")
LOSE_RACE = ("LOSE_RACE", 502, 200, "Call completed elsewhere")
BROWSER_CAUSES = {"USER_BUSY": "user_busy", "CALL_REJECTED": "call_rejected"}
DTMF = re.compile(r"^[0-9A-D*#]+$")
KEEP_ENDED = 200  # finished legs kept for the control API


def unknown_call() -> RpcError:
    """A call request for a callID this socket does not hold."""
    return RpcError(-32002, "Call does not exist", "unknown_call")


@dataclass(eq=False)
class AgentLeg:
    """One agent leg: its Verto ``callID``, sockets, media and where it has got to."""

    call: Call
    user: str
    call_id: str
    conversation: Conversation
    peer: AgentPeer
    ringing: set[Session] = field(default_factory=set)
    session: Session | None = None
    ended_by: Session | None = None
    finished: bool = False
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    # The answering socket closed: the leg waits for that session to log in again
    # (Legs.reattach_window), its media going on meanwhile; ``attaching`` is the new peer
    # offered in ``telnyx_rtc.attach`` until the browser answers it.
    detached: bool = False
    detachments: int = 0  # how many times: a window's timer ends only its own detachment
    attaching: AgentPeer | None = None

    def report(self) -> dict[str, Any]:
        """For ``GET /_sandbox/rtc/calls/{id}``."""
        return {
            "call_control_id": self.call.call_control_id,
            "call_id": self.call_id,
            "sip_username": self.user,
            "client_state": self.call.client_state,
            "state": self.call.state,
            "answered_by": self.session.sessid if self.session else None,
            "detached": self.detached,
            "ringing_sessions": len(self.ringing),
            "bridged_with": self.call.bridged_with,
            "media_state": self.peer.pc.connectionState,
            **self.conversation.report(),
        }


def send_bye(session: Session, leg: AgentLeg, cause: tuple[str, int, int, str]) -> None:
    """Queue a ``telnyx_rtc.bye`` for the leg's callID on one socket."""
    name, code, sip_code, sip_reason = cause
    params = {"callID": leg.call_id, "cause": name, "causeCode": code}
    session.request("telnyx_rtc.bye", params | {"sipCode": sip_code, "sipReason": sip_reason})
