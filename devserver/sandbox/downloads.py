"""Recording files behind signed, expiring URLs, served like a presigned S3 object.

A URL is ``{base}/files/recordings/{id}.{format}?expires={unix}&signature={hex}``, the
signature an HMAC-SHA256, under a secret only this sandbox process knows, of
``"{id}.{format}:{expires}"``. No API key is needed, as with Telnyx's own links; a URL
with a wrong signature, or past ``expires``, is refused with 403, and the check happens
before the recording is looked up, so a forged URL learns nothing. URLs live
``url_ttl`` seconds (600, Telnyx's 10 minutes, unless configured); the store's clock
decides, so ``POST /_sandbox/clock`` moves expiry too.

Downloads support one HTTP ``Range`` (``bytes=a-b``, ``a-``, ``-n``): 206 with
``Content-Range``, 416 when unsatisfiable. Faults (operation ``DownloadRecording``):
``download_bytes_per_s`` throttles the body; ``download_cut_after=N`` closes the
connection after N bytes of the body; ``latency``, ``status`` and ``hang`` as usual.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web

from devserver.sandbox.faults import Decision, FaultTable

if TYPE_CHECKING:
    from devserver.sandbox.recording import Recording

logger = logging.getLogger(__name__)

CHUNK = 64 * 1024
RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
PATH = "/files/recordings/{recording_id}.{format}"


class UrlSigner:
    """Makes and checks the recording download URLs of one sandbox."""

    def __init__(
        self,
        secret: bytes,
        *,
        base_url: Callable[[], str],
        clock: Callable[[], datetime],
        ttl: float = 600.0,
    ) -> None:
        self._secret = secret
        self.base_url = base_url
        self.clock = clock
        self.ttl = ttl

    def _signature(self, name: str, expires: int) -> str:
        message = f"{name}:{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def url(self, recording_id: str, fmt: str, *, expired: bool = False) -> str:
        """A download URL valid for ``ttl`` seconds (already expired if ``expired``)."""
        offset = timedelta(seconds=-1 if expired else self.ttl)
        expires = int((self.clock() + offset).timestamp())
        name = f"{recording_id}.{fmt}"
        base = self.base_url().rstrip("/")
        signature = self._signature(name, expires)
        return f"{base}/files/recordings/{name}?expires={expires}&signature={signature}"

    def urls(self, rec: Recording, *, expired: bool = False) -> dict[str, str]:
        """``{format: url}`` for a recording (its one format)."""
        return {rec.format: self.url(rec.id, rec.format, expired=expired)}

    def valid(self, name: str, expires: str, signature: str) -> bool:
        """True for an unexpired URL this sandbox signed."""
        if not expires.isdigit():
            return False
        good = hmac.compare_digest(self._signature(name, int(expires)), signature)
        return good and int(expires) > self.clock().timestamp()


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` inclusive for a ``Range`` header; None for the whole file.

    Raises ``HTTPRequestRangeNotSatisfiable`` for a range outside the file.
    """
    if header is None:
        return None
    match = RANGE.match(header.strip())
    if match is None or match.groups() == ("", ""):
        return None  # not a single byte range: ignored, as RFC 9110 allows
    first, last = match.groups()
    if first == "":
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(int(last) if last else size - 1, size - 1)
    if start >= size or start > end:
        raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    return start, end


class Downloads:
    """The ``GET /files/recordings/...`` handler, and a log of what it served."""

    def __init__(
        self,
        signer: UrlSigner,
        recordings: Callable[[str], Recording | None],
        faults: FaultTable,
    ) -> None:
        self.signer = signer
        self.find = recordings
        self.faults = faults
        self.log: deque[dict[str, Any]] = deque(maxlen=10_000)

    def add_routes(self, app: web.Application) -> None:
        """Mount the file route."""
        app.router.add_get(PATH, self.download)

    async def download(self, request: web.Request) -> web.StreamResponse:
        """Serve the file (GET) or its headers (HEAD) for a valid URL, with Range and faults.

        Each request is logged (never its query: the signature stays out of logs) as
        ``{"ts", "method", "recording_id", "format", "range", "status", "bytes", "fault"}``.
        """
        entry: dict[str, Any] = {
            "ts": int(time.time() * 1000),
            "method": request.method,
            "recording_id": request.match_info["recording_id"],
            "format": request.match_info["format"],
            "range": request.headers.get("Range"),
            "status": None,
            "bytes": 0,
            "fault": None,
        }
        try:
            resp = await self._serve(request, entry)
            entry["status"] = resp.status
            return resp
        except web.HTTPException as e:
            entry["status"] = e.status
            raise
        finally:
            self.log.append(entry)

    async def _serve(self, request: web.Request, entry: dict[str, Any]) -> web.StreamResponse:
        rec_id, fmt = entry["recording_id"], entry["format"]
        q = request.query
        if not self.signer.valid(f"{rec_id}.{fmt}", q.get("expires", ""), q.get("signature", "")):
            raise web.HTTPForbidden(text="Request has expired or its signature does not match.")
        rec = self.find(rec_id)
        if rec is None or rec.format != fmt or rec.status != "completed" or rec.path is None:
            raise web.HTTPNotFound(text="The recording does not exist.")
        decision = self.faults.decide("DownloadRecording")
        entry["fault"] = decision.label or decision.call_label
        if decision.latency_ms:
            await asyncio.sleep(decision.latency_ms / 1000)
        if decision.hang:
            await _hold(request)
            raise web.HTTPServiceUnavailable
        if decision.status is not None:
            return web.Response(status=decision.status, text="Injected fault.")
        size = rec.path.stat().st_size
        span = byte_range(request.headers.get("Range"), size)
        start, end = span or (0, size - 1)
        resp = web.StreamResponse(status=206 if span else 200)
        resp.content_type = rec.content_type
        resp.content_length = end - start + 1
        resp.headers["Accept-Ranges"] = "bytes"
        if span:
            resp.headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        await resp.prepare(request)
        if request.method == "HEAD":
            await resp.write_eof()
        else:
            entry["bytes"] = await self._send(request, resp, rec, start, end, decision)
        return resp

    async def _send(
        self,
        request: web.Request,
        resp: web.StreamResponse,
        rec: Recording,
        start: int,
        end: int,
        decision: Decision,
    ) -> int:
        """Write bytes ``start..end`` of the file, paced and cut as the faults say; how many."""
        assert rec.path is not None
        left, sent = end - start + 1, 0
        cut, rate = decision.download_cut_after, decision.download_bytes_per_s
        loop = asyncio.get_running_loop()
        began = loop.time()
        with rec.path.open("rb") as f:
            f.seek(start)
            step = max(1, min(CHUNK, rate // 10)) if rate else CHUNK  # ~10 writes a second
            while left > 0:
                chunk = f.read(min(step, left))
                if not chunk:
                    break
                if rate:  # never ahead of ``rate`` bytes per second
                    wait = began + (sent + len(chunk)) / rate - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                if cut is not None and sent + len(chunk) >= cut:
                    await resp.write(chunk[: max(cut - sent, 0)])
                    logger.info("[Telnyx Sandbox] Download cut id=%s after=%s", rec.id, cut)
                    if request.transport is not None:
                        request.transport.close()
                    return cut
                await resp.write(chunk)
                sent += len(chunk)
                left -= len(chunk)
        await resp.write_eof()
        return sent


async def _hold(request: web.Request) -> None:
    """Answer nothing until the client gives up (the ``hang`` fault)."""
    while request.transport is not None:
        if request.transport.is_closing():
            break
        await asyncio.sleep(0.05)
