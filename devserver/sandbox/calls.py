"""Handlers for the call control operations: Dial, call status and Hangup.

Dial validates like call control does (Call Control App id, E.164 numbers or SIP URIs,
Base-64 ``client_state``, webhook URLs, ``link_to``), honours ``command_id`` the way
Telnyx does (a repeated Dial is ignored) and hands the new call to the webhook runner,
which plays its lifecycle. A Dial to ``sip:<user>@sip.telnyx.com`` rings that user's
WebRTC clients (``devserver.sandbox.rtc``); a Dial with ``link_to`` shares the linked
call's session and, with ``bridge_on_answer``, is bridged to it on answer. Hangup ends a
live call at once.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web

from devserver.sandbox import errors
from devserver.sandbox.api import body, reply
from devserver.sandbox.api import client_state as check_client_state
from devserver.sandbox.faults import DECISION, Decision
from devserver.sandbox.store import Call, Store
from devserver.sandbox.webhooks import Webhooks

if TYPE_CHECKING:
    from devserver.sandbox.recordings import Recordings

DIALLED = web.RequestKey("sandbox.dialled", Call)  # the call a Dial created, for the log
E164 = re.compile(r"^\+[1-9]\d{1,14}$")
TELNYX_SIP = re.compile(r"^sips?:([^@;]+)@sip\.telnyx\.com(?:[:;].*)?$", re.IGNORECASE)


def sip_user(to: str) -> str | None:
    """The user part of ``sip:<user>@sip.telnyx.com`` (a registered credential), else None."""
    match = TELNYX_SIP.match(to)
    return match.group(1) if match else None


def _is_number(value: str) -> bool:
    if value.startswith(("sip:", "sips:")):
        return len(value) > 5
    return bool(E164.match(value.split(",", 1)[0]))


class Calls:
    """The call control handlers, bound to one store and one webhook runner."""

    def __init__(self, store: Store, webhooks: Webhooks, recordings: Recordings) -> None:
        self.store = store
        self.webhooks = webhooks
        self.recordings = recordings

    async def dial(self, request: web.Request) -> web.Response:
        """DialCall: validates like call control, then starts the call's lifecycle."""
        data = await body(request, "DialCall")
        if data["connection_id"] not in self.store.call_apps:
            raise errors.invalid(
                "/connection_id",
                "The requested connection_id (Call Control App ID) is either invalid or does "
                "not exist. Only Call Control Apps with valid webhook URL are accepted.",
                title="Invalid value for connection_id (Call Control App ID)",
            )
        targets = data["to"] if isinstance(data["to"], list) else [data["to"]]
        for field, values in (("to", targets), ("from", [data["from"]])):
            if not values or not all(_is_number(v) for v in values):
                detail = f"The '{field}' parameter must be in E164 format."
                raise errors.invalid(
                    f"/{field}", detail, code="10016", title="Phone number must be in +E164 format"
                )
        client_state = check_client_state(data)
        urls = {"webhook_url": data.get("webhook_url")} | {
            f"webhook_urls/{k}": v for k, v in (data.get("webhook_urls") or {}).items()
        }
        for pointer, url in urls.items():
            if url is not None and urlsplit(url).scheme not in ("http", "https"):
                raise errors.invalid(
                    f"/{pointer}",
                    "The URL provided was invalid.",
                    code="10003",
                    title="Invalid URL",
                )
        linked = self._linked(data)
        timeout_secs = data.get("timeout_secs", 30)
        if not 5 <= timeout_secs <= 600:
            detail = "timeout_secs must be between 5 and 600 seconds."
            code, title = "10033", "Value outside of range"
            raise errors.invalid("/timeout_secs", detail, code=code, title=title)
        command_id = data.get("command_id")
        earlier = self.store.call_by_command(command_id) if command_id else None
        if earlier is not None:  # Telnyx ignores a repeated Dial with the same command_id
            return web.json_response({"data": self._dialled(earlier)})
        call = self.store.call_create(
            connection_id=data["connection_id"],
            to=targets[0],
            from_=data["from"],
            client_state=client_state,
            webhook_url=data.get("webhook_url"),
            webhook_urls=dict(data.get("webhook_urls") or {}),
            command_id=command_id,
            link_to=data.get("link_to"),
            bridge_on_answer=bool(data.get("bridge_on_answer")),
            park_after_unbridge=data.get("park_after_unbridge"),
            timeout_secs=timeout_secs,
        )
        if linked is not None:
            call.call_session_id = linked.call_session_id
        decision = request.get(DECISION) or Decision()
        call.outcome = decision.outcome
        call.media_stop_after, call.drop_after = decision.media_stop_after, decision.drop_after
        request[DIALLED] = call
        recording = self.recordings.from_dial(call, data, decision)
        call.recording_id = recording.id if recording is not None else None
        self.webhooks.call_started(call, driven=sip_user(call.to) is not None)
        return reply(request, self._dialled(call))

    def _linked(self, data: dict[str, Any]) -> Call | None:
        """The call ``link_to`` names; 422 when it is needed and missing, or unknown."""
        link_to = data.get("link_to")
        for key in ("bridge_on_answer", "bridge_intent", "park_after_unbridge"):
            if data.get(key) and not link_to:
                detail = f"link_to is required when {key} is set."
                raise errors.invalid("/link_to", detail)
        if link_to is None:
            return None
        linked = self.store.calls.get(link_to)
        if linked is None:
            detail = "The call control id in link_to does not exist."
            raise errors.invalid("/link_to", detail)
        return linked

    @staticmethod
    def _dialled(call: Call) -> dict[str, Any]:
        out: dict[str, Any] = {
            "call_control_id": call.call_control_id,
            "call_leg_id": call.call_leg_id,
            "call_session_id": call.call_session_id,
            "is_alive": False,  # the spec: always false for Dial (dialling is asynchronous)
            "record_type": "call",
        }
        if call.client_state is not None:
            out["client_state"] = call.client_state
        if call.recording_id is not None:  # Dial with record: record-from-answer
            out["recording_id"] = call.recording_id
        return out

    def _call(self, request: web.Request) -> Call:
        call = self.store.calls.get(request.match_info["call_control_id"])
        if call is None:
            raise errors.not_found()
        return call

    async def retrieve_call(self, request: web.Request) -> web.Response:
        """RetrieveCallStatus."""
        return reply(request, self._call(request).render(self.store.clock()))

    async def hangup(self, request: web.Request) -> web.Response:
        """HangupCall: ends a live call now (``call.hangup`` follows, no ``call.answered``)."""
        call = self._call(request)
        data = await body(request, "HangupCall")
        command_id = data.get("command_id")
        if command_id and command_id in call.hangup_commands:
            return web.json_response({"data": {"result": "ok"}})
        if not call.is_alive:
            raise errors.call_ended()
        if command_id:
            call.hangup_commands.add(command_id)
        if data.get("client_state") is not None:
            call.client_state = data["client_state"]
        cause = "normal_clearing" if call.state == "answered" else "originator_cancel"
        call.end(self.store.clock(), cause=cause, source="caller")
        self.webhooks.call_ended(call)
        return reply(request, {"result": "ok"})
