"""``/rtc``: the Verto JSON-RPC WebSocket the pinned ``@telnyx/webrtc`` SDK logs in to.

Follows docs/WEBRTC-SIGNALLING.md: ``login`` (a token minted by this sandbox for a live
credential, or the credential's SIP username and password) gets ``{sessid}``, then the
server sends ``telnyx_rtc.clientReady`` and answers the SDK's ``telnyx_rtc.gatewayState``
with ``REGED`` (the SDK's ``telnyx.ready``). Pings are answered, and sent every
``ping_interval`` seconds. Call requests (``answer``, ``bye``, ``modify``, ``info``) go
to :class:`~devserver.sandbox.rtc.legs.Legs`. Login failures are ``-32001`` with a machine
``data.reason``, never ``-32000`` (which makes the SDK loop); ``-32000`` is kept for a call
request on a socket that has not logged in. Each socket writes through one queue, so
frames go out in the order they were produced. Tokens and passwords are never logged.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import logging
import secrets
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from devserver.sandbox import tokens
from devserver.sandbox.store import Credential, Store

if TYPE_CHECKING:
    from devserver.sandbox.rtc.legs import Legs

logger = logging.getLogger(__name__)

CALL_METHODS = {
    "telnyx_rtc.answer",
    "telnyx_rtc.attach",
    "telnyx_rtc.bye",
    "telnyx_rtc.modify",
    "telnyx_rtc.info",
}


class RpcError(Exception):
    """A JSON-RPC error answer: ``code``, ``message`` and a machine ``reason``."""

    def __init__(self, code: int, message: str, reason: str) -> None:
        super().__init__(message)
        self.code, self.message, self.reason = code, message, reason

    def body(self) -> dict[str, Any]:
        """The ``error`` member."""
        return {"code": self.code, "message": self.message, "data": {"reason": self.reason}}


def auth_failure(reason: str) -> RpcError:
    """A rejected login (the SDK emits LOGIN_FAILED and stays connected)."""
    return RpcError(-32001, "Authentication Failure", reason)


class Session:
    """One logged-in (or not yet) WebSocket of the SDK."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.sessid: str | None = None
        self.user: str | None = None  # the credential's sip_username once logged in
        self.credential_id: str | None = None
        # Sent with the login answer: an SDK holding one logs in again as a reconnection
        # (``reconnection`` and its old ``sessid``), which is what lets calls be reattached.
        self.voice_sdk_id = secrets.token_hex(8)
        self.ready = False
        self.outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._ids = itertools.count(1)

    def send(self, frame: dict[str, Any]) -> None:
        """Queue a frame (written in order by the session's writer)."""
        self.outbox.put_nowait({"jsonrpc": "2.0", **frame})

    def request(self, method: str, params: dict[str, Any]) -> int:
        """Queue a server request; integer ids never collide with the SDK's UUIDs."""
        rid = next(self._ids)
        self.send({"id": rid, "method": method, "params": params})
        return rid

    async def close(self) -> None:
        """Close the socket from the server side (the SDK reconnects)."""
        await self.ws.close()


class Signalling:
    """Every ``/rtc`` socket, indexed by the SIP username it logged in as."""

    def __init__(
        self,
        store: Store,
        token_secret: bytes,
        *,
        ping_interval: float = 30.0,
    ) -> None:
        self.store = store
        self.token_secret = token_secret
        self.ping_interval = ping_interval
        self.legs: Legs | None = None
        self.sessions: set[Session] = set()

    def logged_in(self, user: str) -> list[Session]:
        """The sockets logged in as ``user``, oldest first."""
        return [s for s in self.sessions if s.user == user and s.sessid is not None]

    def report(self) -> list[dict[str, Any]]:
        """The sockets for the control API (no secrets)."""
        return [
            {"sessid": s.sessid, "sip_username": s.user, "ready": s.ready} for s in self.sessions
        ]

    async def drop(self, user: str | None = None) -> int:
        """Close every socket (of ``user``); returns how many were closed."""
        victims = [s for s in self.sessions if user is None or s.user == user]
        await asyncio.gather(*(s.close() for s in victims), return_exceptions=True)
        return len(victims)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """The WebSocket handler for ``GET /rtc``."""
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=4 * 1024**2)
        await ws.prepare(request)
        session = Session(ws)
        self.sessions.add(session)
        loop = asyncio.get_running_loop()
        writer = loop.create_task(self._writer(session))
        pinger = loop.create_task(self._pinger(session)) if self.ping_interval > 0 else None
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    frame = json.loads(msg.data)
                except ValueError:
                    continue  # the SDK's speed-test strings, or noise
                if isinstance(frame, dict):
                    await self._frame(session, frame)
        finally:
            self.sessions.discard(session)
            session.outbox.put_nowait(None)
            for task in (writer, pinger):
                if task is not None:
                    task.cancel()
            await asyncio.gather(writer, *([pinger] if pinger else []), return_exceptions=True)
            if self.legs is not None:
                self.legs.session_closed(session)
            logger.info("[Telnyx Sandbox] RTC socket closed sessid=%s", session.sessid)
        return ws

    async def _writer(self, session: Session) -> None:
        while (frame := await session.outbox.get()) is not None:
            if session.ws.closed:
                return
            await session.ws.send_str(json.dumps(frame, separators=(",", ":")))

    async def _pinger(self, session: Session) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            if session.sessid is not None:
                session.request("telnyx_rtc.ping", {})

    async def _frame(self, session: Session, frame: dict[str, Any]) -> None:
        method, rid = frame.get("method"), frame.get("id")
        if not isinstance(method, str):
            return  # the SDK's acknowledgement of one of our requests
        raw = frame.get("params")
        params: dict[str, Any] = raw if isinstance(raw, dict) else {}
        try:
            result = await self._dispatch(session, method, params)
        except RpcError as e:
            session.send({"id": rid, "error": e.body()})
            return
        except Exception:
            logger.exception("[Telnyx Sandbox] RTC request failed method=%s", method)
            session.send({"id": rid, "error": {"code": -32603, "message": "Internal error"}})
            return
        if method == "login" and result is not None:
            session.send({"id": rid, "result": result, "voice_sdk_id": session.voice_sdk_id})
            reattached = self.legs.reattach(session) if self.legs is not None else []
            session.request("telnyx_rtc.clientReady", {"reattached_sessions": reattached})
            return
        if result is not None and rid is not None:
            session.send({"id": rid, "result": result})

    async def _dispatch(
        self, session: Session, method: str, params: dict[str, Any]
    ) -> dict[str, Any] | None:
        if method == "login":
            return self._login(session, params)
        if method == "telnyx_rtc.ping":
            return {"method": "telnyx_rtc.ping"}
        if method == "telnyx_rtc.gatewayState":
            if session.sessid is None:
                raise RpcError(-32000, "Authentication Required", "not_logged_in")
            session.ready = True
            return {"params": {"state": "REGED"}}
        if method in CALL_METHODS:
            if session.sessid is None:
                raise RpcError(-32000, "Authentication Required", "not_logged_in")
            assert self.legs is not None
            return await self.legs.request(session, method, params)
        raise RpcError(-32601, "Method not found", "unknown_method")

    def _login(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        cred = self._credential(params)
        old = params.get("sessid")
        if (
            session.sessid is None
            and params.get("reconnection") is True
            and isinstance(old, str)
            and self.legs is not None
            and self.legs.detached_from(old, cred.sip_username)
        ):
            session.sessid = old  # the same session again: its calls can be reattached
        if session.sessid is None:
            session.sessid = secrets.token_hex(16)
        session.user, session.credential_id = cred.sip_username, cred.id
        logger.info("[Telnyx Sandbox] RTC login sessid=%s credential=%s", session.sessid, cred.id)
        return {"message": "logged in", "sessid": session.sessid}

    def _credential(self, params: dict[str, Any]) -> Credential:
        now = self.store.clock()
        token = params.get("login_token")
        if isinstance(token, str) and token:
            try:
                claims = tokens.verify(token, secret=self.token_secret)
            except (ValueError, TypeError):
                raise auth_failure("invalid_token") from None
            if not isinstance(claims, dict):
                raise auth_failure("invalid_token")
            exp = claims.get("exp")
            if not isinstance(exp, int) or exp <= now.timestamp():
                raise auth_failure("token_expired")
            cred = self.store.credentials.get(str(claims.get("sub")))
        else:
            login, passwd = params.get("login"), params.get("passwd")
            if not isinstance(login, str) or not isinstance(passwd, str):
                raise auth_failure("missing_credentials")
            user = login.split("@", 1)[0]
            found = (c for c in self.store.credentials.values() if c.sip_username == user)
            cred = next(found, None)
            if cred is not None and not hmac.compare_digest(cred.sip_password, passwd):
                raise auth_failure("invalid_password")
        if cred is None:
            raise auth_failure("unknown_credential")
        if cred.expired(now):
            raise auth_failure("credential_expired")
        return cred
