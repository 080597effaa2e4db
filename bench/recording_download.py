"""A 100 MB recording from a local server: throughput and peak memory of the worker's
download, against a plain ``httpx`` stream to nothing in the same run.

Modes, each in its own child process (so one's memory high-water mark is not another's):

- ``baseline``: ``httpx`` streams the body and drops it (the floor: HTTP alone);
- ``download``: :func:`telephony.worker.recording_download.download_to_spool` (stream,
  sha256 on the way, write to the spool file);
- ``store``: that, then :func:`telephony.worker.recording_store.store_verified` into a
  file-system ``recordings`` storage and the read-back sha256 check (what a fetch does
  before marking the row ``stored``).

The server is aiohttp's ``FileResponse`` (sendfile) in a thread of the child. Each child
times ``--runs`` downloads, then one more under ``tracemalloc`` for its peak; the RSS
delta is VmHWM at the end minus VmRSS before the first download.

    python -m bench.recording_download --size-mb 100 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench.common import emit, free_port, median

MODES = ("baseline", "download", "store")
MB = 1024 * 1024


def _proc_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _serve(directory: Path, port: int, ready: threading.Event) -> None:
    from aiohttp import web

    async def send(request: web.Request) -> web.FileResponse:
        return web.FileResponse(directory / request.match_info["name"])

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/{name}", send)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


async def _once(mode: str, url: str, work: Path, size: int) -> None:
    import httpx

    async with httpx.AsyncClient(timeout=60) as client:
        if mode == "baseline":
            async with client.stream("GET", url) as resp:
                async for _ in resp.aiter_raw(64 * 1024):
                    pass
            return
        from telephony.worker.recording_download import download_to_spool

        spool = work / "spool.part"
        spool.unlink(missing_ok=True)
        got = await download_to_spool(client, url, spool, max_bytes=size + 1)
        assert got.size == size
    if mode == "store":
        from telephony.worker.recording_store import recordings_storage, store_verified

        recordings_storage().delete("bench/file.mp3")
        await asyncio.to_thread(store_verified, "bench/file.mp3", spool, got.size, got.sha256)


def child(mode: str, size_mb: int, runs: int) -> dict[str, Any]:
    """One mode's figures (runs in its own process)."""
    import django
    from django.conf import settings

    work = Path(tempfile.mkdtemp(prefix="tel-bench-rec-"))
    settings.configure(
        STORAGES={
            "recordings": {
                "BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": str(work / "storage")},
            }
        }
    )
    django.setup()
    size = size_mb * MB
    source = work / "file.mp3"
    with source.open("wb") as fh:
        for _ in range(size_mb):
            fh.write(os.urandom(MB))
    port, ready = free_port(), threading.Event()
    threading.Thread(target=_serve, args=(work, port, ready), daemon=True).start()
    ready.wait(10)
    url = f"http://127.0.0.1:{port}/file.mp3"
    asyncio.run(_once(mode, url, work, size))  # warm-up: imports, connections, page cache
    rss_before = _proc_kb("VmRSS")
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        asyncio.run(_once(mode, url, work, size))
        seconds.append(time.perf_counter() - started)
    rss_delta = (_proc_kb("VmHWM") - rss_before) / 1024
    tracemalloc.start()
    asyncio.run(_once(mode, url, work, size))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    subprocess.run(["rm", "-rf", str(work)], check=False)
    return {
        "mbps": [round(size_mb / s, 1) for s in seconds],
        "tracemalloc_peak_mb": round(peak / MB, 2),
        "rss_delta_mb": round(max(rss_delta, 0.0), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", choices=MODES)
    args = parser.parse_args()
    if args.child:
        emit(child(args.child, args.size_mb, args.runs))
        return
    modes: dict[str, Any] = {}
    for mode in MODES:
        argv = [sys.executable, "-m", "bench.recording_download", "--child", mode]
        argv += ["--size-mb", str(args.size_mb), "--runs", str(args.runs)]
        out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=600).stdout
        modes[mode] = json.loads(out.strip().splitlines()[-1])
    emit({"size_mb": args.size_mb, "runs": args.runs, "modes": modes})


def recording_section(res: dict[str, Any], checks: list[Any]) -> list[str]:
    """The report's section (``bench/report.py`` renders it)."""
    from bench.report import Check, _header, _ok  # a cycle at import time

    lines = ["## 7. Recording download: a 100 MB file from a local server", ""]
    lines += _header(res.get("recording"))
    ok = _ok(res.get("recording"))
    if not ok:
        return lines
    modes = ok[-1]["modes"]
    lines += [
        "| mode | throughput (median MB/s, runs) | tracemalloc peak | RSS delta |",
        "|---|---|---|---|",
    ]
    labels = {
        "baseline": "baseline: plain httpx stream to nothing",
        "download": "worker download: stream + sha256 + spool file",
        "store": "worker fetch: download + save to storage + read-back sha256",
    }
    for mode in MODES:
        m = modes[mode]
        runs = ", ".join(f"{v:g}" for v in m["mbps"])
        lines.append(
            f"| {labels[mode]} | {median(m['mbps']):g} ({runs}) | "
            f"{m['tracemalloc_peak_mb']:g} MB | {m['rss_delta_mb']:g} MB |"
        )
    lines += [
        "",
        "The file never sits in memory: the peak is the chunks in flight (64 KiB reads, "
        "1 MiB read-back blocks), not the file's size.",
        "",
    ]
    base = median(modes["baseline"]["mbps"])
    checks.append(
        Check(
            "recording download, 100 MB: peak memory (tracemalloc)",
            modes["store"]["tracemalloc_peak_mb"],
            16,
            "<=",
            "MB",
            f"baseline {modes['baseline']['tracemalloc_peak_mb']:g} MB",
        )
    )
    # What matters: the largest file we accept fits in one link's 10 minutes, many times over.
    need = 2048 / 600  # TELEPHONY_RECORDING_MAX_BYTES' default (2 GiB) in MB, per 600 s
    checks.append(
        Check(
            "recording download, 100 MB: throughput (download + sha256 + spool)",
            median(modes["download"]["mbps"]),
            round(need, 1),
            ">=",
            "MB/s",
            f"baseline {base:g} MB/s; 2 GiB within a link's 10 min",
        )
    )
    return lines


if __name__ == "__main__":
    main()
