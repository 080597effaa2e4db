"""Shared by the recording tests: a local download server with faults, a fake adapter for
Telnyx's recordings API, a per-test recordings storage, and rows.

The server is a real aiohttp server on a free port, run in the test's own event loop;
it serves signed-looking links (``/r/<name>?token=...``) with Range support and can
refuse a token (an expired link), cut a body off after N bytes, ignore ranges, or send
slowly. Everything it was asked is in ``requests``.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from django.utils import timezone

from telephony import exceptions as exc
from telephony.models import Recording
from telephony.worker.provider import RecordingInfo, RequestContext
from telephony.worker.recordings import RecordingFetcher
from tests.helpers import free_port


@dataclass
class DownloadServer:
    """Files by name; faults set by the test; every request's path and Range recorded."""

    files: dict[str, bytes] = field(default_factory=dict)
    expired: set[str] = field(default_factory=set)  # tokens answered 403
    cut_after: int | None = None  # close the connection after this many body bytes (once)
    ignore_range: bool = False
    chunk_delay: float = 0.0
    requests: list[tuple[str, str]] = field(default_factory=list)  # (token, Range header)
    port: int = 0

    def url(self, name: str, token: str = "t1") -> str:
        return f"http://127.0.0.1:{self.port}/r/{name}?token={token}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        token = request.query.get("token", "")
        self.requests.append((token, request.headers.get("Range", "")))
        body = self.files.get(request.match_info["name"])
        if body is None or token in self.expired:
            return web.Response(status=403, text="Request has expired")
        start = 0
        ranged = request.headers.get("Range", "")
        if ranged.startswith("bytes=") and not self.ignore_range:
            start = int(ranged[6:].split("-")[0])
            if start >= len(body):
                return web.Response(status=416, headers={"Content-Range": f"bytes */{len(body)}"})
        resp = web.StreamResponse(status=206 if start else 200)
        resp.content_length = len(body) - start
        resp.content_type = "audio/mpeg"
        if start:
            resp.headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
        await resp.prepare(request)
        part, limit = body[start:], self.cut_after
        if limit is not None:
            self.cut_after = None
            await resp.write(part[:limit])
            assert request.transport is not None
            request.transport.close()  # the connection dies midway
            return resp
        for i in range(0, len(part), 65536):
            await resp.write(part[i : i + 65536])
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
        await resp.write_eof()
        return resp


@pytest.fixture
async def download_server() -> AsyncIterator[DownloadServer]:
    server = DownloadServer(port=free_port())
    app = web.Application()
    app.router.add_get("/r/{name}", server.handle)
    runner = web.AppRunner(app, access_log=None)  # its lines hold the links
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", server.port).start()
    try:
        yield server
    finally:
        await runner.cleanup()


class FakeRecordingsAdapter:
    """Telnyx's recordings API as the fetcher sees it: fresh links, listing, deletes."""

    def __init__(self, server: DownloadServer) -> None:
        self.server = server
        self.remote: dict[str, RecordingInfo] = {}  # what Telnyx has, by recording id
        self.gets: list[str] = []
        self.deletes: list[str] = []
        self.fail_deletes: exc.TelephonyError | None = None
        self.refresh_token = "fresh"

    def add(self, recording_id: str, name: str, **kw: Any) -> None:
        self.remote[recording_id] = RecordingInfo(
            id=recording_id,
            call_leg_id=kw.get("call_leg_id", "leg-1"),
            call_session_id=kw.get("call_session_id", ""),
            channels="dual",
            started_at=kw.get("started_at"),
            ended_at=None,
            duration_millis=kw.get("duration_millis", 61_500),
            download_urls={"mp3": self.server.url(name, self.refresh_token)},
        )

    async def get_recording(self, ctx: RequestContext, recording_id: str) -> RecordingInfo:
        self.gets.append(recording_id)
        if recording_id not in self.remote:
            raise exc.ProviderRejected("Telnyx answered 404.", reason="provider_not_found")
        return self.remote[recording_id]

    async def list_recordings(
        self, ctx: RequestContext, *, call_leg_id: str = "", call_session_id: str = ""
    ) -> list[RecordingInfo]:
        return [r for r in self.remote.values() if r.call_leg_id == call_leg_id]

    async def aclose(self) -> None:
        pass

    async def delete_recording(self, ctx: RequestContext, recording_id: str) -> bool:
        if self.fail_deletes is not None:
            raise self.fail_deletes
        self.deletes.append(recording_id)
        return self.remote.pop(recording_id, None) is not None


@pytest.fixture
def fake(download_server: DownloadServer) -> FakeRecordingsAdapter:
    return FakeRecordingsAdapter(download_server)


@pytest.fixture
async def fetcher(
    fake: FakeRecordingsAdapter, storage_dir: Path
) -> AsyncIterator[RecordingFetcher]:
    """A fetcher on the fake API, with an injected clock (``fetcher.now``)."""
    f = RecordingFetcher(fake, worker_id="w1", now=Clock())
    yield f
    await f.aclose()


async def refreshed(row: Recording) -> Recording:
    return await Recording.objects.aget(pk=row.pk)


@pytest.fixture
def storage_dir(settings: Any, tmp_path: Path) -> Iterator[Path]:
    """A recordings storage and a VAR_DIR (spool) of this test's own."""
    root = tmp_path / "recordings"
    settings.STORAGES = {
        **settings.STORAGES,
        "recordings": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root), "base_url": None},
        },
    }
    settings.VAR_DIR = tmp_path / "var"
    settings.TELEPHONY_RECORDING_DELETE_REMOTE = False
    settings.TELEPHONY_RECORDING_RETENTION_DAYS = None
    yield root


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def spool_files(settings: Any) -> list[Path]:
    spool = Path(settings.VAR_DIR) / "recording-spool"
    return sorted(spool.iterdir()) if spool.exists() else []


def audio(size: int, seed: int = 1) -> bytes:
    """Deterministic bytes of a given size (a stand-in for an mp3)."""
    block = b"".join(hashlib.sha256(f"{seed}:{i}".encode()).digest() for i in range(2048))
    return (block * (size // len(block) + 1))[:size]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def make_row(telnyx_id: str = "rec-1", **kw: Any) -> Recording:
    fields: dict[str, Any] = {
        "telnyx_recording_id": telnyx_id,
        "format": "mp3",
        "channels": "dual",
        "call_leg_id": "leg-1",
        "started_at": datetime(2030, 1, 1, 12, 0, tzinfo=UTC),
    }
    fields.update(kw)
    row = await Recording.objects.acreate(**fields)
    if "created_at" in kw:  # auto_now_add ignores a given value
        await Recording.objects.filter(pk=row.pk).aupdate(created_at=kw["created_at"])
        row = await Recording.objects.aget(pk=row.pk)
    return row


class Clock:
    """An injected ``timezone.now`` the test moves forward."""

    def __init__(self) -> None:
        self.at = timezone.now()

    def __call__(self) -> datetime:
        return self.at


def new_id() -> str:
    return str(uuid.uuid4())
