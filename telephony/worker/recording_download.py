"""Stream one recording into a spool file: resumable, size-capped, hashed on the way.

No Django and no SDK here, only ``httpx``: the worker's fetch (:mod:`.recordings`) and the
benchmark (``bench/recording_download.py``) use it alike. The file never sits in memory:
chunks go to the spool file and into the sha256 as they arrive. A spool left by an
earlier attempt (a cut connection, a worker that died) is resumed with ``Range:
bytes=N-``, and the answer's ``Content-Range`` must start exactly there; a server that
ignores the range (200) restarts the spool from zero; a 416 with ``bytes */N`` says the
spool is already complete. The URL is a secret: no message
or log line here contains it.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from telephony.exceptions import RecordingFetchFailed, RecordingLinkExpired, RecordingTooLarge

CHUNK = 64 * 1024
EXPIRED_STATUSES = frozenset({403, 404, 410})
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True)
class Downloaded:
    """The complete spool file: its size, its sha256, and where this attempt started."""

    size: int
    sha256: str
    resumed_from: int


def lock_path(spool: Path) -> Path:
    return spool.with_name(spool.name + ".lock")


@contextmanager
def spool_lock(spool: Path) -> Iterator[None]:
    """Hold the spool for one attempt, or raise ``spool_busy`` at once.

    A lease can lapse while its worker is alive but stalled; without this, the worker that
    takes over on the same host would append to the same spool file. ``flock`` is dropped
    by the kernel when its holder dies, so a dead worker's spool is free at once.
    """
    spool.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path(spool), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RecordingFetchFailed(
                "Another attempt is still writing this spool.", reason="spool_busy"
            ) from None
        yield
    finally:
        os.close(fd)


def discard_spool(spool: Path) -> None:
    """Remove a spool and its lock file (the recording is stored, or given up)."""
    spool.unlink(missing_ok=True)
    lock_path(spool).unlink(missing_ok=True)


def _hash_file(path: Path, upto: int) -> hashlib._Hash:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        left = upto
        while left > 0 and (block := fh.read(min(CHUNK * 16, left))):
            digest.update(block)
            left -= len(block)
    return digest


def _prepare(spool: Path, max_bytes: int) -> int:
    """Bytes already spooled (0 for none, or for a spool that cannot be right)."""
    spool.parent.mkdir(parents=True, exist_ok=True)
    have = spool.stat().st_size if spool.exists() else 0
    if have > max_bytes:
        spool.unlink()
        return 0
    return have


def _discard(spool: Path) -> None:
    spool.unlink(missing_ok=True)


def _expected_total(resp: httpx.Response, have: int) -> tuple[int, int | None]:
    """(first byte of this answer, total size or None) from a 200 or 206 answer."""
    length = resp.headers.get("content-length", "")
    if resp.status_code == 200:
        return 0, int(length) if length.isdigit() else None
    match = _CONTENT_RANGE.fullmatch(resp.headers.get("content-range", "").strip())
    if match is None:
        raise RecordingFetchFailed(
            "A partial answer without a usable Content-Range.", reason="bad_range"
        )
    start, end, total = int(match[1]), int(match[2]), match[3]
    if start != have:
        raise RecordingFetchFailed(
            "The partial answer does not start where we stopped.", reason="bad_range"
        )
    if length.isdigit() and int(length) != end - start + 1:
        raise RecordingFetchFailed(
            "Content-Length disagrees with Content-Range.", reason="bad_range"
        )
    return start, int(total) if total != "*" else None


async def download_to_spool(
    client: httpx.AsyncClient,
    url: str,
    spool: Path,
    *,
    max_bytes: int,
    on_progress: Callable[[int], Awaitable[None]] | None = None,
) -> Downloaded:
    """Download ``url`` into ``spool`` (resuming what is there); the finished file's facts.

    Raises :class:`RecordingLinkExpired` (403/404/410: ask for fresh links),
    :class:`RecordingTooLarge` (declared or streamed past ``max_bytes``; the spool is
    removed) and :class:`RecordingFetchFailed` for everything worth another try later
    (cut connection, short body, bad range, other statuses); the spool keeps what came.
    ``on_progress`` is awaited after each chunk with the bytes on disk (lease renewal).
    """
    have = _prepare(spool, max_bytes)
    digest = await asyncio.to_thread(_hash_file, spool, have) if have else hashlib.sha256()
    headers = {"Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        async with client.stream("GET", url, headers=headers) as resp:
            if resp.status_code in EXPIRED_STATUSES:
                raise RecordingLinkExpired(reason="url_expired")
            if resp.status_code == 416 and have:
                if resp.headers.get("content-range", "").strip() == f"bytes */{have}":
                    return Downloaded(size=have, sha256=digest.hexdigest(), resumed_from=have)
                _discard(spool)  # we hold more than there is: start over
                raise RecordingFetchFailed("The server refused our range.", reason="bad_range")
            if resp.status_code not in (200, 206) or (resp.status_code == 206 and not have):
                raise RecordingFetchFailed(
                    f"The download answered {resp.status_code}.",
                    reason=f"http_{resp.status_code}",
                )
            start, total = _expected_total(resp, have)
            if start == 0 and have:  # the server ignored the range: the whole file again
                have, digest = 0, hashlib.sha256()
            if total is not None and total > max_bytes:
                _discard(spool)
                raise RecordingTooLarge(f"The recording is {total} bytes; at most {max_bytes}.")
            size = have
            with open(spool, "ab" if have else "wb") as fh:  # noqa: ASYNC230 (page-cache writes)
                async for chunk in resp.aiter_raw():  # as read: a cut loses nothing
                    size += len(chunk)
                    if size > max_bytes:
                        fh.close()
                        _discard(spool)
                        raise RecordingTooLarge(f"The recording passed {max_bytes} bytes.")
                    fh.write(chunk)
                    digest.update(chunk)
                    if on_progress is not None:
                        await on_progress(size)
    except (httpx.HTTPError, httpx.InvalidURL) as e:  # the URL stays out: only the error's kind
        raise RecordingFetchFailed(
            f"The download broke off ({type(e).__name__}).", reason="connection_lost"
        ) from None
    if total is not None and size != total:
        raise RecordingFetchFailed(f"Got {size} of {total} bytes.", reason="size_mismatch")
    return Downloaded(size=size, sha256=digest.hexdigest(), resumed_from=have)
