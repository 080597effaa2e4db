"""Agents answered by the sandbox itself, for load and chaos runs without browsers.

With ``auto_answer_agents`` set to a delay in seconds, a Dial to
``sip:<user>@sip.telnyx.com`` whose user is a live credential of the store, and which no
WebRTC client is logged in for, is answered by the sandbox after that delay: the agent
leg gets ``call.answered`` exactly as if a browser had answered, a customer leg dialled
with ``link_to`` + ``bridge_on_answer`` is then bridged to it as usual, and the leg ends
when it is hung up (or its bridged partner ends). No socket, no media. A user nobody
knows is still ``not_found``; a logged-in browser still rings. Faults on the Dial apply:
``outcome=no_answer`` rings until ``timeout_secs``, ``outcome=busy`` ends ``user_busy``.
"""

from __future__ import annotations

import asyncio

from devserver.sandbox.store import Call, Store
from devserver.sandbox.webhooks import Webhooks


def parse_delay(value: object) -> float | None:
    """``auto_answer_agents`` from the control API: None (off) or seconds >= 0.

    Raises ValueError for anything else.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 600:
        raise ValueError(f"auto_answer_agents must be null or seconds in 0..600: {value!r}")
    return float(value)


def known_user(store: Store, user: str) -> bool:
    """True when ``user`` is the SIP username of a credential that has not expired."""
    now = store.clock()
    return any(c.sip_username == user and not c.expired(now) for c in store.credentials.values())


async def auto_answer(call: Call, delay: float, store: Store, webhooks: Webhooks) -> None:
    """Answer ``call`` after ``delay`` unless it ended meanwhile (or the Dial's fault says not).

    Ending is left to the usual paths: an API hangup, or the bridge partner's hangup
    (``Legs.ended``), both of which wake the webhook runner's lifecycle.
    """
    wait = min(delay, call.timeout_secs) if call.outcome != "no_answer" else call.timeout_secs
    await asyncio.sleep(wait)
    if not call.is_alive:
        return
    if call.outcome == "busy":
        cause, source = "user_busy", "callee"
    elif call.outcome == "no_answer" or delay >= call.timeout_secs:
        cause, source = "timeout", "unknown"
    else:
        call.state, call.answer_time = "answered", store.clock()
        webhooks.emit(call, "call.answered")
        return
    call.end(store.clock(), cause=cause, source=source)
    webhooks.call_ended(call)
