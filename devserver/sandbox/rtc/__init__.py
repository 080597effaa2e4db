"""The sandbox's WebRTC side: the ``/rtc`` signalling socket, agent legs and their media.

:class:`Rtc` wires the pieces into one sandbox: :mod:`.signalling` (Verto JSON-RPC for
the pinned ``@telnyx/webrtc``), :mod:`.legs` (agent legs, bridges, the first answer
wins), :mod:`.media` (an aiortc peer per agent leg) and :mod:`.audio` (ringback, the
simulated customer, measurements). Control endpoints, no authentication, like the rest of
``/_sandbox``::

    GET  /_sandbox/rtc                      audio settings and the logged-in sockets
    POST /_sandbox/rtc                      {"tone_hz", "tone_level", "echo_delay",
                                             "echo_gain", "ringback", "ringback_level",
                                             "auto_answer_agents": seconds | null,
                                             "reattach_window": seconds (0: none)}
    GET  /_sandbox/rtc/calls                every agent leg's report
    GET  /_sandbox/rtc/calls/{id}           one report, by agent or customer leg id:
                                            source, bridged, held, dtmf, media_stopped,
                                            from_agent / customer_hears {dominant_hz, rms,
                                            rms_dbfs, frames, seconds}
    POST /_sandbox/rtc/calls/{id}/media     {"stopped": true|false}: stop/resume RTP
    POST /_sandbox/rtc/drop                 {"sip_username": optional}: close sockets
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from devserver.sandbox.rtc.audio import AudioSettings, Conversation
from devserver.sandbox.rtc.auto import parse_delay
from devserver.sandbox.rtc.legs import REATTACH_WINDOW, Legs
from devserver.sandbox.rtc.signalling import Signalling
from devserver.sandbox.store import Store
from devserver.sandbox.webhooks import Webhooks


class Rtc:
    """The WebRTC side of one sandbox."""

    def __init__(
        self,
        store: Store,
        webhooks: Webhooks,
        *,
        token_secret: bytes,
        audio: AudioSettings,
        ping_interval: float,
        auto_answer_agents: float | None = None,
        reattach_window: float = REATTACH_WINDOW,
    ) -> None:
        self.initial_audio = audio
        self.initial_auto_answer = auto_answer_agents
        self.initial_reattach_window = reattach_window
        self.signalling = Signalling(store, token_secret, ping_interval=ping_interval)
        self.legs = Legs(store, webhooks, self.signalling, dataclasses.replace(audio))
        self.legs.auto_answer = auto_answer_agents
        self.legs.reattach_window = reattach_window

    def add_routes(self, app: web.Application, prefix: str = "/_sandbox/rtc") -> None:
        """Mount ``/rtc`` and the control endpoints."""
        app.router.add_get("/rtc", self.signalling.handle)
        app.router.add_get(prefix, self.info)
        app.router.add_post(prefix, self.configure)
        app.router.add_get(f"{prefix}/calls", self.calls)
        app.router.add_get(f"{prefix}/calls/{{id}}", self.call)
        app.router.add_post(f"{prefix}/calls/{{id}}/media", self.media)
        app.router.add_post(f"{prefix}/drop", self.drop)

    async def reset(self) -> None:
        """Forget legs, close peers and sockets; audio and auto-answer back to start-up."""
        await self.legs.close()
        await self.signalling.drop()
        self.legs.set_settings(dataclasses.replace(self.initial_audio))
        self.legs.auto_answer = self.initial_auto_answer
        self.legs.reattach_window = self.initial_reattach_window

    close = reset

    def conversation(self, call_control_id: str) -> Conversation | None:
        """The audio of the agent leg a call is (or is linked or bridged to), if it has media."""
        leg = self.legs.find(call_control_id)
        return leg.conversation if leg is not None else None

    async def info(self, request: web.Request) -> web.Response:
        """Audio settings, auto-answer and sockets."""
        return web.json_response(
            {
                "audio": self.legs.settings.as_dict(),
                "auto_answer_agents": self.legs.auto_answer,
                "reattach_window": self.legs.reattach_window,
                "sessions": self.signalling.report(),
            }
        )

    async def configure(self, request: web.Request) -> web.Response:
        """Change what the simulated customer plays (live legs too), or auto-answer."""
        auto, window = self.legs.auto_answer, self.legs.reattach_window
        try:
            data = await _json(request)
            if "auto_answer_agents" in data:
                auto = parse_delay(data.pop("auto_answer_agents"))
            if "reattach_window" in data:
                window = _seconds(data.pop("reattach_window"), "reattach_window")
            settings = self.legs.settings.updated(data)
        except ValueError as e:
            return web.json_response({"error": str(e)}, status=400)
        self.legs.set_settings(settings)
        self.legs.auto_answer, self.legs.reattach_window = auto, window
        return web.json_response(
            settings.as_dict() | {"auto_answer_agents": auto, "reattach_window": window}
        )

    async def calls(self, request: web.Request) -> web.Response:
        """Every agent leg still remembered."""
        return web.json_response([leg.report() for leg in self.legs.legs.values()])

    async def call(self, request: web.Request) -> web.Response:
        """One agent leg, by its id or the id of a customer leg linked or bridged to it."""
        leg = self.legs.find(request.match_info["id"])
        if leg is None:
            return web.json_response({"error": "no such agent leg"}, status=404)
        return web.json_response(leg.report())

    async def media(self, request: web.Request) -> web.Response:
        """Fault: stop or resume the RTP sent to the agent."""
        leg = self.legs.find(request.match_info["id"])
        if leg is None:
            return web.json_response({"error": "no such agent leg"}, status=404)
        try:
            data = await _json(request)
            stopped = data.get("stopped", True)
            if not isinstance(stopped, bool):
                raise ValueError("stopped must be a boolean")
        except ValueError as e:
            return web.json_response({"error": str(e)}, status=400)
        leg.peer.set_stopped(stopped)
        return web.json_response(leg.report())

    async def drop(self, request: web.Request) -> web.Response:
        """Fault: close the signalling sockets (of one SIP username)."""
        try:
            data = await _json(request)
        except ValueError as e:
            return web.json_response({"error": str(e)}, status=400)
        user = data.get("sip_username")
        return web.json_response({"closed": await self.signalling.drop(user)})


def _seconds(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 3600:
        raise ValueError(f"{name} must be a number of seconds from 0 to 3600")
    return float(value)


async def _json(request: web.Request) -> dict[str, Any]:
    data = await request.json() if request.can_read_body else {}
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data
