"""The sandbox HTTP server: Telnyx API v2 under ``/v2`` and test controls under ``/_sandbox``.

Every ``/v2`` request passes one middleware that resolves its operationId, checks the
bearer key, applies the fault rules, runs the handler and writes the request log entry.
The control endpoints (no auth; the server binds 127.0.0.1 unless told otherwise)::

    GET    /_sandbox/info       the ready-line data
    GET    /_sandbox/log        the request log (see requestlog.py for the entry shape)
    GET    /_sandbox/faults     active fault rules
    POST   /_sandbox/faults     {"operation": "DialCall" | "*", "latency_ms", "error_rate",
                                 "status", "retry_after", "hang", "malformed", "execute", "count"}
    DELETE /_sandbox/faults     remove every rule
    GET    /_sandbox/webhooks   webhook deliveries (event, call, url, status, attempts, body)
    POST   /_sandbox/webhooks   {"answer_after", "talk_time", "answer", "initiated_after",
                                 "webhook_url", "timeout", "retries"}: for calls dialled later
    GET    /_sandbox/recordings every recording, any state, with its file (?call_control_id=)
    POST   /_sandbox/recordings {"call_control_id", "seconds", "format", ...}: one made at once
    GET    /_sandbox/downloads  recording downloads served (range, status, bytes, fault)
    POST   /_sandbox/reset      clear log, faults, deliveries, credentials, calls, recordings;
                                reseed connections (same ids); webhook timing back to start-up
                                values; close WebRTC sockets and peers.
                                {"keep_state": true} clears only the log, faults and deliveries.
    /_sandbox/rtc/...           the WebRTC side (see devserver/sandbox/rtc/__init__.py)

``GET /files/recordings/{id}.{format}?expires=&signature=`` serves recording files to
signed URLs, without the API key (``downloads.py``, ``docs/SANDBOX-RECORDING.md``).
``GET /rtc`` is the WebSocket the ``@telnyx/webrtc`` SDK connects to (``host`` option).

A client giving up during injected latency does not stop the operation, as with a real
provider; a ``hang`` is held until the client disconnects (or the server stops).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from devserver.sandbox import errors
from devserver.sandbox.admin import Admin
from devserver.sandbox.api import EXECUTED, Api
from devserver.sandbox.calls import DIALLED, Calls
from devserver.sandbox.config import SandboxConfig
from devserver.sandbox.downloads import Downloads, UrlSigner
from devserver.sandbox.errors import ApiError
from devserver.sandbox.faults import DECISION, Decision, FaultTable
from devserver.sandbox.recordings import Recordings
from devserver.sandbox.recordings_api import RecordingsApi
from devserver.sandbox.requestlog import RequestLog, deadline_header
from devserver.sandbox.routes import CALL_HANDLERS, RECORD_HANDLERS, RECORDINGS_HANDLERS, ROUTES
from devserver.sandbox.rtc import Rtc
from devserver.sandbox.signing import Signer
from devserver.sandbox.store import Seed, Store
from devserver.sandbox.webhooks import Webhooks

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MALFORMED = b'{"data": {"id": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "record_type": '


def error_response(exc: ApiError, *, retry_after: int | None = None) -> web.Response:
    """The JSON answer for a Telnyx error."""
    resp = web.json_response(exc.body(), status=exc.status)
    if retry_after is not None:
        resp.headers["Retry-After"] = str(retry_after)
    return resp


class Sandbox:
    """One sandbox: state, faults, request log, webhooks and the aiohttp app serving them."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.seed = Seed.generate(
            config.from_number,
            connection_id=config.connection_id,
            call_connection_id=config.call_connection_id,
        )
        self.store = Store(self.seed)
        self.faults = FaultTable(seed=config.fault_seed)
        self.log = RequestLog(config.log_file)
        self.signer = Signer.load_or_create(config.signing_key_file)
        self.webhooks = Webhooks(self.signer, dataclasses.replace(config.webhook))
        token_secret = secrets.token_bytes(32)
        self.api = Api(
            self.store, credential_limit=config.credential_limit, token_secret=token_secret
        )
        self.rtc = Rtc(
            self.store,
            self.webhooks,
            token_secret=token_secret,
            audio=config.audio,
            ping_interval=config.rtc_ping_interval,
            auto_answer_agents=config.auto_answer_agents,
            reattach_window=config.rtc_reattach_window,
        )
        self.stopping = False
        self.port = 0
        self.url_signer = UrlSigner(
            secrets.token_bytes(32),
            base_url=lambda: str(self.info()["base_url"]).removesuffix("/v2"),
            clock=self.store.clock,
            ttl=config.recording_url_ttl,
        )
        self.recordings = Recordings(
            self.store,
            self.webhooks,
            self.url_signer,
            directory=config.recordings_dir,
            find_conversation=self.rtc.conversation,
        )
        self.recordings_api = RecordingsApi(self.recordings)
        self.downloads = Downloads(self.url_signer, self.recordings.items.get, self.faults)
        self.calls = Calls(self.store, self.webhooks, self.recordings)
        self._reset_faults()

    def _reset_faults(self) -> None:
        self.faults.clear()
        for rule in self.config.faults:
            self.faults.set(rule)

    def info(self) -> dict[str, Any]:
        """The ready line: where the sandbox is and the ids a client needs."""
        host = self.config.host if self.config.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        base = f"http://{f'[{host}]' if ':' in host else host}:{self.port}"
        return {
            "event": "ready",
            "port": self.port,
            "base_url": f"{base}/v2",
            "control_url": f"{base}/_sandbox",
            "api_key": self.config.api_key,
            "public_key": self.signer.public_key,
            "connection_id": self.seed.connection_id,
            "call_connection_id": self.seed.call_connection_id,
            "from_number": self.seed.from_number,
            "rtc_url": f"ws{base[4:]}/rtc",
        }

    def app(self) -> web.Application:
        """The aiohttp application (API routes, control routes, middleware)."""

        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path == "/v2" or request.path.startswith("/v2/"):
                return await self._api_request(request, handler)
            return await handler(request)

        app = web.Application(middlewares=[middleware], client_max_size=1024**2)
        for method, path, operation, attr in ROUTES:
            owner: Any = self.api
            if attr in CALL_HANDLERS:
                owner = self.calls
            elif attr in RECORD_HANDLERS:
                owner = self.recordings
            elif attr in RECORDINGS_HANDLERS:
                owner = self.recordings_api
            app.router.add_route(method, path, getattr(owner, attr), name=operation)
        Admin(self).add_routes(app)
        self.downloads.add_routes(app)
        self.rtc.add_routes(app)
        app.on_startup.append(lambda _app: self.webhooks.start())
        app.on_shutdown.append(lambda _app: self.rtc.close())
        app.on_cleanup.append(lambda _app: self._cleanup())
        return app

    async def _cleanup(self) -> None:
        await self.webhooks.close()
        await self.recordings.shutdown()
        self.log.close()

    # ------------------------------------------------------------------- API requests

    async def _api_request(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.monotonic()
        route = request.match_info.route
        operation = route.name if request.match_info.http_exception is None else None
        entry: dict[str, Any] = {
            "ts": int(time.time() * 1000),
            "method": request.method,
            "path": request.path,
            "operation": operation,
            "status": None,
            "request_id": request.headers.get("X-Request-Id"),
            "deadline": deadline_header(request.headers.get("X-Request-Deadline")),
            "latency_ms": 0,
            "duration_ms": None,
            "fault": None,
            "executed": False,
            "executed_at": None,
            "call_control_id": None,  # a Dial's new call, and its client_state
            "client_state": None,
        }
        try:
            resp = await self._answer(request, handler, operation, entry)
            entry["status"] = resp.status if resp is not None else None
            return resp if resp is not None else web.Response(status=499)
        finally:
            entry["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
            self.log.add(entry)
            logger.debug(
                "[Telnyx Sandbox] %s %s op=%s status=%s request_id=%s",
                request.method,
                request.path,
                operation,
                entry["status"],
                entry["request_id"],
            )

    async def _answer(
        self, request: web.Request, handler: Handler, operation: str | None, entry: dict[str, Any]
    ) -> web.StreamResponse | None:
        http_error = request.match_info.http_exception
        if http_error is not None:
            missing = http_error.status == 405
            return error_response(errors.method_not_allowed() if missing else errors.not_found())
        if not self._authorized(request):
            return error_response(errors.unauthenticated())
        assert operation is not None
        decision = self.faults.decide(operation)
        request[DECISION] = decision
        entry["latency_ms"] = decision.latency_ms
        entry["fault"] = decision.label or decision.call_label
        if decision.latency_ms:
            # Read (and cache) the body first: a client that gives up during the latency
            # closes the connection, and the operation must still run, as at Telnyx.
            await request.read()
            await asyncio.sleep(decision.latency_ms / 1000)
        if decision.label and not decision.execute:
            return await self._fault(request, decision)
        resp = await self._run(request, handler)
        if request.get(EXECUTED):
            entry["executed"], entry["executed_at"] = True, int(time.time() * 1000)
        dialled = request.get(DIALLED)
        if dialled is not None:
            entry["call_control_id"] = dialled.call_control_id
            entry["client_state"] = dialled.client_state
        if decision.label:
            return await self._fault(request, decision)
        return resp

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        expected = self.config.api_key.encode()
        return scheme.lower() == "bearer" and hmac.compare_digest(key.strip().encode(), expected)

    async def _run(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as e:
            request[EXECUTED] = False
            return error_response(e)
        except Exception:
            request[EXECUTED] = False
            logger.exception("[Telnyx Sandbox] Handler failed path=%s", request.path)
            return error_response(errors.internal())

    async def _fault(self, request: web.Request, decision: Decision) -> web.StreamResponse | None:
        if decision.hang:
            while not self.stopping and request.transport is not None:
                if request.transport.is_closing():
                    break
                await asyncio.sleep(0.05)
            if request.transport is not None:  # stopping: drop the connection unanswered
                request.transport.close()
            return None
        if decision.malformed:
            return web.Response(body=MALFORMED, status=200, content_type="application/json")
        assert decision.status is not None
        retry_after = decision.retry_after if decision.status == 429 else None
        return error_response(errors.fault(decision.status), retry_after=retry_after)


async def serve(
    config: SandboxConfig,
    *,
    on_ready: Callable[[dict[str, Any]], None],
    stop: asyncio.Event,
) -> None:
    """Run a sandbox until ``stop`` is set, then shut down cleanly."""
    sandbox = Sandbox(config)
    runner = web.AppRunner(sandbox.app(), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.host, config.port))
        site = web.SockSite(runner, sock, backlog=2048)
        await site.start()
    except BaseException:
        sock.close()
        await runner.cleanup()
        raise
    sandbox.port = sock.getsockname()[1]
    logger.info(
        "[Telnyx Sandbox] Started port=%s connection_id=%s call_connection_id=%s",
        sandbox.port,
        sandbox.seed.connection_id,
        sandbox.seed.call_connection_id,
    )
    on_ready(sandbox.info())
    try:
        await stop.wait()
    finally:
        sandbox.stopping = True
        await runner.cleanup()
        sock.close()
        logger.info("[Telnyx Sandbox] Stopped port=%s", sandbox.port)
