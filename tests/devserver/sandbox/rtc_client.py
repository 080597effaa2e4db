"""A Python stand-in for the ``@telnyx/webrtc`` SDK, for the sandbox's ``/rtc`` tests.

Speaks the frames of docs/WEBRTC-SIGNALLING.md over a real WebSocket and, to answer an
invite, runs a real aiortc peer that sends a tone (the "agent's microphone") and
measures what it receives. Also async helpers to steer the sandbox without blocking the
event loop the peer runs on.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import av
import httpx
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from devserver.sandbox.control import SandboxProcess
from devserver.sandbox.rtc.audio import AudioSettings, Conversation, Meter
from devserver.sandbox.rtc.media import ConversationTrack


class VertoClient:
    """One signalling socket: requests with UUID ids, server requests queued."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.requests: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sessid: str | None = None
        self.voice_sdk_id: str | None = None
        self.ready_params: dict[str, Any] = {}
        self.pc: RTCPeerConnection | None = None
        self.heard = Meter()
        self.closed = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(cls, http: aiohttp.ClientSession, url: str) -> VertoClient:
        """Open the socket."""
        return cls(await http.ws_connect(url))

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                frame = msg.json()
                future = self.replies.pop(str(frame.get("id")), None)
                if "method" not in frame and future is not None:
                    future.set_result(frame)
                else:
                    self.requests.put_nowait(frame)
        finally:
            self.closed.set()

    async def call(self, method: str, params: dict[str, Any], timeout: float = 10) -> Any:
        """Send a request and wait for its reply frame."""
        rid = str(uuid.uuid4())
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.replies[rid] = future
        await self.ws.send_json({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        return await asyncio.wait_for(future, timeout)

    async def expect(self, method: str, timeout: float = 10) -> dict[str, Any]:
        """The next server request with this method (others are skipped)."""
        end = time.monotonic() + timeout
        while True:
            frame = await asyncio.wait_for(self.requests.get(), max(0.01, end - time.monotonic()))
            if frame.get("method") == method:
                return frame

    async def ack(self, frame: dict[str, Any]) -> None:
        """Acknowledge a server request the way the SDK does."""
        reply = {"jsonrpc": "2.0", "id": frame["id"], "result": {"method": frame["method"]}}
        await self.ws.send_json(reply)

    async def login(self, token: str, **extra: Any) -> dict[str, Any]:
        """``login`` with a token (``extra``: e.g. the SDK's ``reconnection`` and ``sessid``);
        on success also does clientReady -> gatewayState and keeps clientReady's params."""
        reply: dict[str, Any] = await self.call("login", {"login_token": token, **extra})
        if "result" in reply:
            self.sessid = reply["result"]["sessid"]
            self.voice_sdk_id = reply.get("voice_sdk_id")
            self.ready_params = (await self.expect("telnyx_rtc.clientReady"))["params"]
            state = await self.call("telnyx_rtc.gatewayState", {})
            assert state["result"] == {"params": {"state": "REGED"}}
        return reply

    async def answer(
        self, invite: dict[str, Any], *, tone_hz: float = 600.0, method: str = "telnyx_rtc.answer"
    ) -> Any:
        """Answer an invite (or, ``method`` ``telnyx_rtc.attach``, an attach) with a real
        peer sending ``tone_hz``; returns the reply frame."""
        await self.ack(invite)
        mic = Conversation(AudioSettings(tone_hz=tone_hz, tone_level=0.2, echo_gain=0))
        mic.bridged = True
        pc = self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.on("track", lambda track: asyncio.ensure_future(self._listen(track)))
        await pc.setRemoteDescription(RTCSessionDescription(invite["params"]["sdp"], "offer"))
        pc.addTrack(ConversationTrack(mic))
        await pc.setLocalDescription(await pc.createAnswer())
        params = {"sessid": self.sessid, "sdp": pc.localDescription.sdp, "dialogParams": {}}
        params["dialogParams"]["callID"] = invite["params"]["callID"]
        if method == "telnyx_rtc.attach":
            params["dialogParams"]["attach"] = True
        return await self.call(method, params)

    async def _listen(self, track: Any) -> None:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
        try:
            while True:
                frame = await track.recv()
                for out in resampler.resample(frame):
                    self.heard.add(out.to_ndarray().reshape(-1).astype(np.int16))
        except Exception:
            return

    async def dialog(self, method: str, call_id: str, **params: Any) -> Any:
        """A call request (bye, modify, info) for ``call_id``."""
        body = {"sessid": self.sessid, "dialogParams": {"callID": call_id}, **params}
        return await self.call(method, body)

    async def close(self) -> None:
        """Close the peer and the socket."""
        if self.pc is not None:
            await self.pc.close()
        await self.ws.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


async def until(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 10, what: str = "condition"
) -> Any:
    """Poll an async check until it returns something truthy; AssertionError at the deadline."""
    end = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class Api:
    """Async access to the sandbox's API and control endpoints."""

    def __init__(self, sandbox: SandboxProcess, client: httpx.AsyncClient) -> None:
        self.sandbox, self.client = sandbox, client
        self.auth = {"Authorization": f"Bearer {sandbox.api_key}"}

    async def token(self) -> tuple[dict[str, Any], str]:
        """A new credential on the seeded connection, and a login token for it."""
        base = self.sandbox.base_url
        body = {"connection_id": self.sandbox.connection_id}
        resp = await self.client.post(f"{base}/telephony_credentials", json=body, headers=self.auth)
        cred = resp.json()["data"]
        resp = await self.client.post(
            f"{base}/telephony_credentials/{cred['id']}/token", headers=self.auth
        )
        return cred, resp.text

    async def dial(self, to: str, **extra: Any) -> httpx.Response:
        """Dial from the sandbox's number on its Call Control App."""
        body = {
            "connection_id": self.sandbox.call_connection_id,
            "to": to,
            "from": self.sandbox.from_number,
            **extra,
        }
        url = f"{self.sandbox.base_url}/calls"
        return await self.client.post(url, json=body, headers=self.auth)

    async def hangup(self, call_control_id: str) -> httpx.Response:
        """HangupCall."""
        url = f"{self.sandbox.base_url}/calls/{call_control_id}/actions/hangup"
        return await self.client.post(url, json={}, headers=self.auth)

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        """A ``/_sandbox`` request; its JSON."""
        url = f"{self.sandbox.control_url}/{path}"
        resp = await self.client.request(method, url, json=body)
        return resp.json()

    async def events(self, call_control_id: str) -> list[dict[str, Any]]:
        """Webhook bodies recorded for a call, in order."""
        items = await self.control("GET", f"webhooks?call_control_id={call_control_id}")
        return [d["body"]["data"] for d in items]

    async def wait_event(self, call_control_id: str, event_type: str) -> dict[str, Any]:
        """Wait for one webhook of a type for a call; its payload."""

        async def found() -> dict[str, Any] | None:
            for data in await self.events(call_control_id):
                if data["event_type"] == event_type:
                    return dict(data["payload"])
            return None

        payload: dict[str, Any] = await until(found, what=f"{event_type} for {call_control_id}")
        return payload
