"""The ``/_sandbox`` control endpoints tests and tools use to steer a running sandbox.

No authentication: the sandbox binds 127.0.0.1 unless told otherwise. Bad input answers
400 ``{"error": "..."}``. The endpoints and their JSON are listed in server.py.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from devserver.sandbox.faults import FaultRule
from devserver.sandbox.recording import Recording
from devserver.sandbox.synth import SynthRequest, synthesize

if TYPE_CHECKING:
    from devserver.sandbox.server import Sandbox

logger = logging.getLogger(__name__)


class Admin:
    """Handlers for ``/_sandbox/...``, acting on one sandbox."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def add_routes(self, app: web.Application, prefix: str = "/_sandbox") -> None:
        """Mount every control endpoint under ``prefix``."""
        app.router.add_get(f"{prefix}/info", self.info)
        app.router.add_get(f"{prefix}/log", self.log)
        app.router.add_get(f"{prefix}/faults", self.faults_get)
        app.router.add_post(f"{prefix}/faults", self.faults_post)
        app.router.add_delete(f"{prefix}/faults", self.faults_delete)
        app.router.add_get(f"{prefix}/webhooks", self.webhooks_get)
        app.router.add_post(f"{prefix}/webhooks", self.webhooks_post)
        app.router.add_post(f"{prefix}/reset", self.reset)
        app.router.add_post(f"{prefix}/clock", self.clock)
        app.router.add_get(f"{prefix}/recordings", self.recordings)
        app.router.add_post(f"{prefix}/recordings", self.recordings_make)
        app.router.add_get(f"{prefix}/downloads", self.downloads)

    async def info(self, request: web.Request) -> web.Response:
        """The ready-line data."""
        return web.json_response(self.sandbox.info())

    async def log(self, request: web.Request) -> web.Response:
        """The request log, oldest first."""
        return web.json_response(list(self.sandbox.log.entries))

    async def faults_get(self, request: web.Request) -> web.Response:
        """The active fault rules."""
        return web.json_response(self.sandbox.faults.as_list())

    async def faults_post(self, request: web.Request) -> web.Response:
        """Add or replace the rule for one operation (or ``*``)."""
        try:
            data = await request.json()
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            rule = FaultRule.from_dict(data)
        except ValueError as e:
            return web.json_response({"error": str(e)}, status=400)
        self.sandbox.faults.set(rule)
        logger.info("[Telnyx Sandbox] Fault set %s", rule.as_dict())
        return web.json_response(self.sandbox.faults.as_list())

    async def faults_delete(self, request: web.Request) -> web.Response:
        """Remove every fault rule."""
        self.sandbox.faults.clear()
        return web.json_response([])

    async def webhooks_get(self, request: web.Request) -> web.Response:
        """Webhook deliveries, optionally for one ``call_control_id``."""
        call = request.query.get("call_control_id")
        items = [
            d for d in self.sandbox.webhooks.deliveries if call in (None, d["call_control_id"])
        ]
        return web.json_response(items)

    async def webhooks_post(self, request: web.Request) -> web.Response:
        """Change call timing and the default webhook URL for later calls."""
        try:
            data = await request.json()
            settings = self.sandbox.webhooks.settings.updated(data)
        except ValueError as e:
            return web.json_response({"error": str(e)}, status=400)
        self.sandbox.webhooks.settings = settings
        return web.json_response(settings.as_dict())

    async def recordings(self, request: web.Request) -> web.Response:
        """Every recording, whatever its state, with its file (for tests), by call."""
        call = request.query.get("call_control_id")
        items = [
            _recording(r)
            for r in self.sandbox.recordings.items.values()
            if call in (None, r.call.call_control_id)
        ]
        return web.json_response(items)

    async def downloads(self, request: web.Request) -> web.Response:
        """Recording downloads served so far, oldest first (``downloads.py``)."""
        return web.json_response(list(self.sandbox.downloads.log))

    async def recordings_make(self, request: web.Request) -> web.Response:
        """Make a recording of a known call at once (``synth.py``); 201 with it."""
        try:
            req = SynthRequest.from_dict(await request.json())
        except (ValueError, TypeError) as e:
            return web.json_response({"error": str(e)}, status=400)
        if req.call_control_id not in self.sandbox.store.calls:
            return web.json_response({"error": "no such call"}, status=404)
        rec = await synthesize(self.sandbox.recordings, req)
        return web.json_response(_recording(rec), status=201)

    async def clock(self, request: web.Request) -> web.Response:
        """Move the store's clock ``{"offset_seconds": N}`` from real time, so that what is
        created next is dated then (tests of age and expiry without sleeping)."""
        try:
            data = await request.json()
            offset = float(data["offset_seconds"])
        except (ValueError, TypeError, KeyError):
            return web.json_response({"error": 'expected {"offset_seconds": number}'}, status=400)
        self.sandbox.store.offset = datetime.timedelta(seconds=offset)
        return web.json_response({"offset_seconds": offset})

    async def reset(self, request: web.Request) -> web.Response:
        """Back to a clean sandbox; ``keep_state`` clears only log, faults and deliveries."""
        try:
            data = await request.json() if request.can_read_body else {}
        except ValueError:
            return web.json_response({"error": "expected a JSON object"}, status=400)
        keep_state = bool(isinstance(data, dict) and data.get("keep_state"))
        if not keep_state:
            await self.sandbox.webhooks.cancel_all()
            self.sandbox.webhooks.settings = dataclasses.replace(self.sandbox.config.webhook)
            self.sandbox.store.reset()
            await self.sandbox.rtc.reset()
            await self.sandbox.recordings.close()
        self.sandbox.log.clear()
        self.sandbox.faults.clear()
        self.sandbox.webhooks.deliveries.clear()
        self.sandbox.downloads.log.clear()
        return web.json_response({"reset": True, "keep_state": keep_state})


def _recording(r: Recording) -> dict[str, Any]:
    return {
        "id": r.id,
        "call_control_id": r.call.call_control_id,
        "status": r.status,
        "format": r.format,
        "channels": r.channels,
        "file_channels": r.file_channels,
        "path": str(r.path) if r.path else None,
        "size": r.size,
        "duration_millis": r.duration_millis,
    }
