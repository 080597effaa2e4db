"""The Call Recordings REST operations: list, retrieve (fresh URLs), delete one or many.

Only completed recordings exist for this API, as the spec says of ``status``; a
recording still running, or one that ended in ``call.recording.error``, is not found.
Every answer carries freshly signed ``download_urls``. Deleting removes the file, so an
older URL then answers 404.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from devserver.sandbox import errors
from devserver.sandbox.api import EXECUTED, body, filters, page, reply
from devserver.sandbox.recording import Recording
from devserver.sandbox.recordings import Recordings
from devserver.sandbox.store import paginate, parse_iso

# filter[...] keys compared for equality with a recording's call
EQUAL = {
    "call_control_id": lambda r: r.call.call_control_id,
    "call_leg_id": lambda r: r.call.call_leg_id,
    "call_session_id": lambda r: r.call.call_session_id,
    "connection_id": lambda r: r.call.connection_id,
    "from": lambda r: r.call.from_,
    "to": lambda r: r.call.to,
}
NEVER = {"conference_id", "conference_region", "sip_call_id"}  # no conferences, no SIP ids
TIMES: dict[str, Callable[[Recording], datetime | None]] = {
    "created_at": lambda r: r.created_at,
    "start_time": lambda r: r.started_at,
    "end_time": lambda r: r.ended_at,
}


class RecordingsApi:
    """The ``/recordings`` handlers, over one sandbox's :class:`Recordings`."""

    def __init__(self, recordings: Recordings) -> None:
        self.recordings = recordings

    def _completed(self) -> list[Recording]:
        done = [r for r in self.recordings.items.values() if r.status == "completed"]
        return sorted(done, key=lambda r: r.created_at, reverse=True)

    def _render(self, rec: Recording) -> dict[str, Any]:
        return rec.render(self.recordings.signer.urls(rec))

    def _get(self, recording_id: str) -> Recording:
        rec = self.recordings.items.get(recording_id)
        if rec is None or rec.status != "completed":
            raise errors.not_found()
        return rec

    async def index(self, request: web.Request) -> web.Response:
        """GetRecordings: newest first, filtered by call, numbers and time, paginated."""
        number, size = page(request, default_size=20)
        items = self._completed()
        for key, value in filters(request).items():
            if key in EQUAL:
                items = [r for r in items if EQUAL[key](r) == value]
            elif key in NEVER:
                items = []
            elif key.rsplit(".", 1)[0] in TIMES and key.rsplit(".", 1)[-1] in ("gte", "lte"):
                items = self._by_time(items, key, value)
            else:
                raise errors.bad_query(f"filter[{key}]", f"Unknown filter: {key}.")
        chunk, meta = paginate(items, number=number, size=size)
        return reply(request, [self._render(r) for r in chunk], meta=meta)

    @staticmethod
    def _by_time(items: list[Recording], key: str, value: str) -> list[Recording]:
        field, op = key.rsplit(".", 1)
        try:
            limit = parse_iso(value)
        except ValueError:
            name = f"filter[{field}][{op}]"
            raise errors.bad_query(name, f"{name} must be an ISO 8601 datetime.") from None
        out = []
        for rec in items:
            moment = TIMES[field](rec)
            if moment is not None and (moment >= limit if op == "gte" else moment <= limit):
                out.append(rec)
        return out

    async def retrieve(self, request: web.Request) -> web.Response:
        """GetRecording, with freshly signed ``download_urls``."""
        return reply(request, self._render(self._get(request.match_info["recording_id"])))

    async def delete(self, request: web.Request) -> web.Response:
        """DeleteRecording: the file goes; answers with the recording as it was."""
        rec = self._get(request.match_info["recording_id"])
        data = self._render(rec)
        self.recordings.delete(rec)
        return reply(request, data)

    async def delete_many(self, request: web.Request) -> web.Response:
        """DeleteRecordings: all or nothing; 404 when any id is unknown."""
        data = await body(request, "DeleteRecordings")
        ids = data["ids"]
        if not ids:
            raise errors.invalid("/ids", "The 'ids' parameter is required and cannot be blank.")
        found = [self._get(i) for i in dict.fromkeys(ids)]
        for rec in found:
            self.recordings.delete(rec)
        request[EXECUTED] = True
        return web.json_response({"status": "ok"})
