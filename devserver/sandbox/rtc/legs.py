"""Agent legs (Dial to ``sip:<user>@sip.telnyx.com``), bridges, and their media.

What Telnyx does between Call Control and a WebRTC client, played locally:

- ``ring``: the Dial's user has no logged-in socket -> ``call.hangup`` ``not_found``
  (unless ``auto_answer`` is set and the user is a live credential: :mod:`.auto`).
  Otherwise an :class:`~.media.AgentPeer` makes the offer and every socket of that user
  gets ``telnyx_rtc.invite``. The first ``telnyx_rtc.answer`` wins (``call.answered``);
  the other sockets get a bye (``LOSE_RACE``, "Call completed elsewhere"). Unanswered
  after the Dial's ``timeout_secs`` -> ``call.hangup`` ``timeout``.
- ``answered``: a number dialled with ``link_to`` + ``bridge_on_answer`` is bridged to
  the linked leg on answer (``call.bridged`` for both legs); the agent then hears the
  simulated customer instead of ringback.
- ``ended``: a leg's bye is sent to its sockets and its peer closed. A bridged partner
  is hung up too (``normal_clearing``, source ``caller``), because the spec says an
  unbridged leg is hung up unless it was dialled with ``park_after_unbridge: self``.
  Legs that were only linked, not bridged, are left alone: the product hangs them up.
- A browser bye ends its leg (``normal_clearing`` once answered; a reject while ringing
  is ``user_busy``/``call_rejected``).
- ``reattach``: a socket that closes under an answered leg leaves it *detached* for
  ``reattach_window`` seconds, its media going on. When the SDK logs in again as a
  reconnection of that session (``reconnection`` and the old ``sessid``, which it sends
  because the login answer carried a ``voice_sdk_id``), ``clientReady`` names the leg in
  ``reattached_sessions`` and the leg is offered again in ``telnyx_rtc.attach`` with a
  fresh peer; the browser's ``telnyx_rtc.attach`` answer moves the leg to it. Past the
  window (or with a window of 0) the leg ends with ``unspecified``, source ``unknown``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from devserver.sandbox.calls import sip_user
from devserver.sandbox.rtc.audio import AudioSettings, Conversation
from devserver.sandbox.rtc.auto import auto_answer, known_user
from devserver.sandbox.rtc.leg import (
    BROWSER_CAUSES,
    BYE,
    DTMF,
    KEEP_ENDED,
    LOSE_RACE,
    UNSPECIFIED,
    AgentLeg,
    send_bye,
    unknown_call,
)
from devserver.sandbox.rtc.signalling import RpcError, Session, Signalling
from devserver.sandbox.store import Call, Store
from devserver.sandbox.webhooks import Webhooks

logger = logging.getLogger(__name__)


# Seconds an answered leg whose socket closed waits for that session to log in again.
REATTACH_WINDOW = 30.0


def _offer_params(leg: AgentLeg, sdp: str) -> dict[str, Any]:
    """An offer to the agent's browser: ``telnyx_rtc.invite``, or ``telnyx_rtc.attach``."""
    call = leg.call
    params = {
        "callID": leg.call_id,
        "sdp": sdp,
        "caller_id_name": call.from_,
        "caller_id_number": call.from_,
        "callee_id_name": leg.user,
        "callee_id_number": leg.user,
        "telnyx_call_control_id": call.call_control_id,
        "telnyx_session_id": call.call_session_id,
        "telnyx_leg_id": call.call_leg_id,
    }
    if call.client_state is not None:
        params["client_state"] = call.client_state
    return params


class Legs:
    """The webhook runner's listener and the signalling's call handler."""

    def __init__(
        self, store: Store, webhooks: Webhooks, signalling: Signalling, settings: AudioSettings
    ) -> None:
        self.store, self.webhooks, self.signalling = store, webhooks, signalling
        self.settings = settings
        self.auto_answer: float | None = None  # seconds: the sandbox answers agents itself
        self.reattach_window = REATTACH_WINDOW  # seconds a detached leg waits; 0: ends at once
        self.legs: dict[str, AgentLeg] = {}
        self._by_call_id: dict[str, AgentLeg] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        webhooks.listener = self
        signalling.legs = self

    def _spawn(self, coro: Any, owner: set[asyncio.Task[None]] | None = None) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        for tasks in (self._tasks, owner):
            if tasks is not None:
                tasks.add(task)
                task.add_done_callback(tasks.discard)

    def _end(self, call: Call, cause: str, source: str) -> None:
        call.end(self.store.clock(), cause=cause, source=source)
        self.webhooks.call_ended(call)

    def find(self, call_control_id: str) -> AgentLeg | None:
        """The agent leg with this id, or the one a customer leg is linked or bridged to."""
        leg = self.legs.get(call_control_id)
        call = self.store.calls.get(call_control_id)
        if leg is None and call is not None:
            for other in (call.bridged_with, call.link_to):
                if other is not None and other in self.legs:
                    return self.legs[other]
        return leg

    def set_settings(self, settings: AudioSettings) -> None:
        """New audio settings for later legs and the live ones."""
        self.settings = settings
        for leg in self.legs.values():
            leg.conversation.settings = settings

    # ------------------------------------------------------------- CallListener

    def ring(self, call: Call) -> None:
        """An agent leg was initiated: offer media and invite the user's sockets."""
        self._spawn(self._ring(call))

    async def _ring(self, call: Call) -> None:
        user = sip_user(call.to) or ""
        if not self.signalling.logged_in(user):
            if self.auto_answer is not None and known_user(self.store, user):
                self._spawn(auto_answer(call, self.auto_answer, self.store, self.webhooks))
                return
            self._end(call, "not_found", "callee")
            return
        from devserver.sandbox.rtc.media import AgentPeer  # aiortc: ~1 s, paid at first ring

        conversation = Conversation(self.settings)
        peer = AgentPeer(conversation, label=call.call_control_id)
        leg = AgentLeg(call, user, str(uuid.uuid4()), conversation, peer)
        self.legs[call.call_control_id], self._by_call_id[leg.call_id] = leg, leg
        self._forget_old()
        sdp = await peer.offer()
        sessions = self.signalling.logged_in(user)
        if leg.finished or not call.is_alive:
            return
        if not sessions:
            self._end(call, "not_found", "callee")
            return
        params = _offer_params(leg, sdp)
        for session in sessions:
            leg.ringing.add(session)
            session.request("telnyx_rtc.invite", params)
        logger.info(
            "[Telnyx Sandbox] Invite call=%s sockets=%s", call.call_control_id, len(sessions)
        )
        self._spawn(self._ring_timeout(leg), leg.tasks)

    # ---------------------------------------------------------------- reattach

    def detached_from(self, sessid: str, user: str) -> bool:
        """Whether a live leg of ``user`` waits for session ``sessid`` to come back."""
        return any(
            leg.detached and leg.session is not None and leg.session.sessid == sessid
            and leg.user == user and not leg.finished and leg.call.is_alive
            for leg in self.legs.values()
        )  # fmt: skip

    def reattach(self, session: Session) -> list[str]:
        """``session`` logged in; the callIDs of its detached legs, each offered to it
        again (``telnyx_rtc.attach``) once its new peer has an offer."""
        legs = [
            leg for leg in self.legs.values()
            if leg.detached and not leg.finished and leg.call.is_alive
            and leg.session is not None and leg.session is not session
            and leg.session.sessid == session.sessid and leg.user == session.user
        ]  # fmt: skip
        for leg in legs:
            self._spawn(self._offer_again(leg, session), leg.tasks)
        return [leg.call_id for leg in legs]

    async def _offer_again(self, leg: AgentLeg, session: Session) -> None:
        from devserver.sandbox.rtc.media import AgentPeer

        # The browser drops its old peer connection when the attach arrives: so does the
        # sandbox, so that one track at a time plays the conversation.
        old, leg.attaching = leg.peer, AgentPeer(leg.conversation, label=leg.call.call_control_id)
        self._spawn(old.close())
        leg.peer = leg.attaching
        sdp = await leg.attaching.offer()
        if leg.finished or not leg.call.is_alive:
            return
        leg.session = session
        session.request("telnyx_rtc.attach", _offer_params(leg, sdp))
        logger.info("[Telnyx Sandbox] Attach offered call=%s", leg.call.call_control_id)

    async def _attached(
        self, session: Session, leg: AgentLeg, params: dict[str, Any], base: dict[str, Any]
    ) -> dict[str, Any]:
        if leg.session is not session or leg.attaching is None:
            raise unknown_call()
        sdp = params.get("sdp")
        if not isinstance(sdp, str) or not sdp.startswith("v=0"):
            raise RpcError(-32602, "Missing or invalid answer SDP", "invalid_sdp")
        try:
            await leg.attaching.answer(sdp)
        except Exception as e:
            logger.warning("[Telnyx Sandbox] Bad attach SDP call=%s: %s", leg.call_id, e)
            raise RpcError(-32602, "Missing or invalid answer SDP", "invalid_sdp") from None
        leg.attaching, leg.detached = None, False
        logger.info("[Telnyx Sandbox] Reattached call=%s", leg.call.call_control_id)
        return base | {"message": "CALL ATTACHED"}

    async def _detached_too_long(self, leg: AgentLeg, detachment: int) -> None:
        await asyncio.sleep(self.reattach_window)
        still = leg.detached and leg.detachments == detachment
        if still and not leg.finished and leg.call.is_alive:
            leg.ended_by = leg.session
            self._end(leg.call, "unspecified", "unknown")

    async def _ring_timeout(self, leg: AgentLeg) -> None:
        await asyncio.sleep(leg.call.timeout_secs)
        if leg.session is None and leg.call.is_alive:
            self._end(leg.call, "timeout", "unknown")

    def answered(self, call: Call) -> None:
        """A number was answered: bridge it to its ``link_to`` leg if asked to."""
        other = self.store.calls.get(call.link_to) if call.link_to else None
        if call.bridge_on_answer and other is not None and other.is_alive:
            if other.bridged_with is None:
                self.bridge(call, other)

    def bridge(self, a: Call, b: Call) -> None:
        """Bridge two live legs: ``call.bridged`` for each, media joined."""
        a.bridged_with, b.bridged_with = b.call_control_id, a.call_control_id
        for call in (a, b):
            self.webhooks.emit(call, "call.bridged")
            leg = self.legs.get(call.call_control_id)
            if leg is not None:
                leg.conversation.bridged = True

    def ended(self, call: Call) -> None:
        """A leg's ``call.hangup`` is queued: bye its sockets, close media, end the bridge."""
        leg = self.legs.get(call.call_control_id)
        if leg is not None and not leg.finished:
            leg.finished = True
            cause = BYE.get(call.hangup_cause or "", UNSPECIFIED)
            targets = ({leg.session} if leg.session else leg.ringing) - {leg.ended_by}
            for session in targets:
                if session is not None:
                    send_bye(session, leg, cause)
            leg.ringing.clear()
            for task in leg.tasks:
                task.cancel()
            self._spawn(leg.peer.close())
        partner = self.store.calls.get(call.bridged_with) if call.bridged_with else None
        if partner is None or not partner.is_alive:
            return
        if partner.park_after_unbridge == "self":
            partner.bridged_with = None
            partner_leg = self.legs.get(partner.call_control_id)
            if partner_leg is not None:
                partner_leg.conversation.bridged = False
        else:
            self._end(partner, "normal_clearing", "caller")

    # ---------------------------------------------------------------- signalling

    async def request(
        self, session: Session, method: str, params: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Answer a call request from a socket (None: leave it unanswered)."""
        raw = params.get("dialogParams")
        dialog: dict[str, Any] = raw if isinstance(raw, dict) else {}
        call_id = str(dialog.get("callID") or params.get("callID") or "")
        leg = self._by_call_id.get(call_id)
        base = {"callID": call_id, "sessid": session.sessid}
        if method == "telnyx_rtc.bye":
            if leg is not None and not leg.finished:
                self._browser_bye(session, leg, str(params.get("cause") or ""))
            return base | {"message": "CALL ENDED"}
        if leg is None or leg.finished:
            raise unknown_call()
        if method == "telnyx_rtc.answer":
            return await self._answer(session, leg, params, base)
        if method == "telnyx_rtc.attach":
            return await self._attached(session, leg, params, base)
        if leg.session is not session:
            raise unknown_call()
        if method == "telnyx_rtc.modify":
            return base | self._modify(leg, params.get("action"))
        dtmf = params.get("dtmf")
        if dtmf is not None:
            if not isinstance(dtmf, str) or not DTMF.match(dtmf):
                raise RpcError(-32602, "Invalid DTMF digits", "invalid_dtmf")
            leg.conversation.dtmf += dtmf
        return base | {"message": "SENT"}

    async def _answer(
        self, session: Session, leg: AgentLeg, params: dict[str, Any], base: dict[str, Any]
    ) -> dict[str, Any] | None:
        if leg.session is not None:
            raise RpcError(-32003, "Call answered elsewhere", "answered_elsewhere")
        if session not in leg.ringing:
            raise unknown_call()
        if leg.call.outcome == "no_answer":  # fault: the agent never answers
            return None
        sdp = params.get("sdp")
        if not isinstance(sdp, str) or not sdp.startswith("v=0"):
            raise RpcError(-32602, "Missing or invalid answer SDP", "invalid_sdp")
        leg.session = session
        leg.ringing.discard(session)
        for other in leg.ringing:
            send_bye(other, leg, LOSE_RACE)
        leg.ringing.clear()
        try:
            await leg.peer.answer(sdp)
        except Exception as e:
            logger.warning("[Telnyx Sandbox] Bad answer SDP call=%s: %s", leg.call_id, e)
            leg.ended_by = session
            self._end(leg.call, "unspecified", "callee")
            raise RpcError(-32602, "Missing or invalid answer SDP", "invalid_sdp") from None
        call = leg.call
        if not call.is_alive:
            raise unknown_call()
        call.state, call.answer_time = "answered", self.store.clock()
        self.webhooks.emit(call, "call.answered")
        if call.media_stop_after is not None:
            self._spawn(self._later(call.media_stop_after, leg.peer.set_stopped, True), leg.tasks)
        if call.drop_after is not None:
            self._spawn(self._later(call.drop_after, self._drop, session), leg.tasks)
        return base | {"message": "CALL ANSWERED"}

    @staticmethod
    async def _later(seconds: float, action: Any, arg: Any) -> None:
        await asyncio.sleep(seconds)
        result = action(arg)
        if asyncio.iscoroutine(result):
            await result

    @staticmethod
    async def _drop(session: Session) -> None:
        await session.close()

    def _browser_bye(self, session: Session, leg: AgentLeg, cause: str) -> None:
        if leg.session is session:
            leg.ended_by = session
            self._end(leg.call, "normal_clearing", "callee")
        elif leg.session is None and session in leg.ringing:
            leg.ringing.discard(session)
            if not leg.ringing:
                leg.ended_by = session
                self._end(leg.call, BROWSER_CAUSES.get(cause, "call_rejected"), "callee")

    @staticmethod
    def _modify(leg: AgentLeg, action: Any) -> dict[str, Any]:
        conversation = leg.conversation
        if action == "toggleHold":
            action = "unhold" if conversation.held else "hold"
        if action not in ("hold", "unhold"):
            raise RpcError(-32602, f"Unsupported modify action {action!r}", "unsupported_action")
        conversation.held = action == "hold"
        return {"action": action, "holdState": "held" if conversation.held else "active"}

    def session_closed(self, session: Session) -> None:
        """A socket went away: it rings no more; an answered leg on it waits to be
        reattached (or ends at once, with no window)."""
        for leg in list(self.legs.values()):
            leg.ringing.discard(session)
            if leg.session is session and not leg.finished and leg.call.is_alive:
                if self.reattach_window <= 0:
                    leg.ended_by = session
                    self._end(leg.call, "unspecified", "unknown")
                    continue
                if leg.attaching is not None:  # gone again before answering the attach
                    leg.attaching = None
                leg.detached = True
                leg.detachments += 1
                self._spawn(self._detached_too_long(leg, leg.detachments), leg.tasks)
                logger.info("[Telnyx Sandbox] Detached call=%s", leg.call.call_control_id)

    def _forget_old(self) -> None:
        finished = [k for k, leg in self.legs.items() if leg.finished]
        for key in finished[: max(0, len(finished) - KEEP_ENDED)]:
            leg = self.legs.pop(key)
            self._by_call_id.pop(leg.call_id, None)

    async def close(self) -> None:
        """Close every peer and forget every leg (reset and shutdown)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        legs = list(self.legs.values())
        self.legs.clear()
        self._by_call_id.clear()
        await asyncio.gather(*(leg.peer.close() for leg in legs), return_exceptions=True)
