"""Round trip and CPU per request against the peers a user would pick, in one run (issue 14).

- the product: ``credential.create`` through the client, one worker, no provider latency
  (the sandbox answers at once); p50/p99, and the worker's CPU per request from its own
  CPU counters (user + system), which do not depend on how busy the machine is; and
  ``health.ping``, the same round trip without the provider call;
- a raw redis-py echo: LPUSH + BRPOP through a worker-like echo process
  (``bench/redis_echo.py``), the floor under any one-hop round trip;
- Celery 5, Redis as broker and result backend, a no-op task with the same payload, once
  with the prefork pool and once with the threads pool; CPU of the worker's process tree;
- a page with 100 call buttons against the same page without them, CPU per render.

Celery comes from ``var/bench-deps`` (``make bench`` installs requirements-bench.txt
there), appended to ``sys.path`` after the product's own packages.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import psutil

from bench.common import ROOT, emit, pct, product_env, setup_django, wait_for_workers

DEPS = ROOT / "var" / "bench-deps"
PAYLOAD_USER = 1


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children, from the kernel's counters."""
    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def summary(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": round(pct(ms, 50), 3), "p99_ms": round(pct(ms, 99), 3), "n": len(ms)}


async def timed(n: int, fn: Callable[[], Awaitable[Any]]) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


async def measure(pid: int, n: int, fn: Callable[[], Awaitable[Any]]) -> dict[str, float]:
    """Warm up, then n sequential round trips: latency and the server's CPU per request."""
    await timed(max(20, n // 10), fn)
    before = cpu_seconds(pid)
    ms = await timed(n, fn)
    return {**summary(ms), "cpu_ms_per_request": round((cpu_seconds(pid) - before) / n * 1000, 3)}


async def product(worker_pid: int, n: int) -> dict[str, dict[str, float]]:
    from django.contrib.auth import get_user_model

    from telephony.web.client import get_telephony_service

    service = get_telephony_service()
    user = await get_user_model().objects.acreate_user(f"bench-{uuid.uuid4().hex[:6]}")
    return {
        "credential": await measure(worker_pid, n, lambda: service.agenerate_credential(user)),
        # No provider call: the isolation's own cost (channel layer, claim, reply).
        "ping": await measure(worker_pid, n, lambda: service.aping(timeout=10)),
    }


async def redis_echo(echo_pid: int, url: str, n: int) -> dict[str, float]:
    import redis.asyncio as aioredis

    from bench.redis_echo import REQUESTS

    r = aioredis.Redis.from_url(url, socket_timeout=15)

    async def round_trip() -> None:
        reply_to = f"bench:echo:reply:{uuid.uuid4().hex}"
        body = json.dumps({"reply_to": reply_to, "payload": {"user_id": PAYLOAD_USER}})
        await r.lpush(REQUESTS, body)
        assert await r.blpop([reply_to], timeout=10) is not None

    try:
        return await measure(echo_pid, n, round_trip)
    finally:
        await r.aclose()


def celery(env: Any, pool: str, n: int) -> dict[str, float]:
    """A Celery worker with ``pool``, then n sequential ``noop.delay(payload).get()``."""
    sys.path.append(str(DEPS))
    url = "redis+socket://" + env.redis_url.removeprefix("unix://")
    os.environ["BENCH_CELERY_URL"] = url
    from bench.celery_app import app, noop

    concurrency = "1" if pool == "prefork" else "8"
    boot = f"import sys; sys.path.append({str(DEPS)!r}); from celery.__main__ import main; main()"
    worker = env.start(
        sys.executable, "-c", boot, "-A", "bench.celery_app", "worker", "-P", pool,
        "-c", concurrency, "-Q", f"celery-{pool}", "--without-gossip", "--without-mingle",
        "--without-heartbeat", "-l", "WARNING",
        name=f"celery-{pool}", extra={"BENCH_CELERY_URL": url},
    )  # fmt: skip

    def once() -> None:
        noop.apply_async(({"user_id": PAYLOAD_USER},), queue=f"celery-{pool}").get(timeout=30)

    end = time.monotonic() + 60
    while True:  # the worker is up once a task comes back
        try:
            once()
            break
        except Exception:
            if time.monotonic() > end:
                raise

    async def call() -> None:
        once()

    try:
        return asyncio.run(measure(worker.pid, n, call))
    finally:
        app.close()


def page_render_cpu(renders: int) -> dict[str, float]:
    """CPU per render of a page with 100 call buttons, and of the same page without."""
    from django.contrib.auth.models import AnonymousUser
    from django.template import Context, Template
    from django.test import RequestFactory

    from tests.telephony.conftest import fake_ready_worker

    fake_ready_worker()
    numbers = [f"+1202555{n:04d}" for n in range(100)]
    with_buttons = Template(
        "{% load telephony %}<ul>{% for n in numbers %}<li>{{ n }} "
        "{% call_button n %}</li>{% endfor %}</ul>"
    )
    without = Template("<ul>{% for n in numbers %}<li>{{ n }} </li>{% endfor %}</ul>")
    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    out = {}
    for name, template in (("buttons", with_buttons), ("plain", without)):
        for _ in range(10):
            template.render(Context({"numbers": numbers, "request": request}))
        started = time.process_time()
        for _ in range(renders):
            template.render(Context({"numbers": numbers, "request": request}))
        out[f"{name}_cpu_ms"] = round((time.process_time() - started) / renders * 1000, 3)
    out["ratio"] = round(out["buttons_cpu_ms"] / out["plain_cpu_ms"], 2)
    return out


def profile(worker_pid: int, seconds: float, out: str) -> subprocess.Popen[bytes]:
    """py-spy on the worker, while the caller drives it (native frames off, idle excluded)."""
    spy = DEPS / "bin" / "py-spy"
    return subprocess.Popen(
        [str(spy), "record", "-p", str(worker_pid), "-d", str(int(seconds)), "-r", "500",
         "-f", "raw", "-o", out],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--renders", type=int, default=200)
    parser.add_argument("--no-celery", action="store_true")
    parser.add_argument("--profile", help="write py-spy collapsed stacks of the worker here")
    args = parser.parse_args()
    from devserver.sandbox.control import SandboxProcess

    sandbox = SandboxProcess.start(args=["--credential-limit", "100000"])
    try:
        tel = {
            "TELNYX_API_KEY": sandbox.api_key,
            "TELNYX_BASE_URL": sandbox.base_url,
            "TELNYX_CONNECTION_ID": sandbox.connection_id,
            "TELEPHONY_ACCOUNT_CREDENTIAL_LIMIT": "100000",
        }
        with product_env(**tel) as env:
            setup_django(env)
            worker = env.manage("telephony_worker", name="worker")
            echo = env.start(sys.executable, "-m", "bench.redis_echo", env.redis_url, name="echo")
            wait_for_workers(1)
            result: dict[str, Any] = {}
            spy = profile(worker.pid, 30, args.profile) if args.profile else None
            result["product"] = asyncio.run(product(worker.pid, args.n))
            if spy is not None:
                spy.terminate()
                spy.wait(timeout=30)
            result["redis_echo"] = asyncio.run(redis_echo(echo.pid, env.redis_url, args.n))
            if not args.no_celery:
                for pool in ("prefork", "threads"):
                    result[f"celery_{pool}"] = celery(env, pool, args.n)
            result["page"] = page_render_cpu(args.renders)
            emit(result)
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
