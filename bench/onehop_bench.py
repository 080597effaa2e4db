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
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import psutil

from bench.common import (
    DEPS,
    ROOT,
    emit,
    pct,
    product_env,
    profile,
    setup_django,
    wait_for_workers,
)

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
    """CPU per render of a page with 100 call buttons, and of the same page without.

    The page is an agent's (logged in, the service ready). ``buttons`` renders the same
    page again and again, as a CRM shows the same contacts; ``buttons_cold`` empties the
    tag's caches before each render (100 numbers never seen); ``empty_tags`` is the same
    page with a tag that returns "" instead: Django's own cost of 100 tag calls, the
    floor of any tag. These pages are a bare list, a number a row, the worst case for
    the ratio. ``demo``/``demo_plain`` are the product's own contacts page (``/``: a
    table, a name, a company and a number a row, the base layout) with 100 contacts,
    with its call buttons and with them taken out.
    """
    from django import template as dj
    from django.template import Context, Template, engines
    from django.test import RequestFactory

    from telephony.templatetags import telephony as tags
    from tests.telephony.conftest import fake_ready_worker

    class Agent:
        is_authenticated = True
        is_staff = False
        pk = 1

        def get_username(self) -> str:
            return "agent"

    library = dj.Library()
    library.simple_tag(lambda n: "", name="empty_tag")
    engines["django"].engine.template_builtins.append(library)  # type: ignore[attr-defined]
    fake_ready_worker()
    numbers = [f"+1202555{n:04d}" for n in range(100)]
    row = "<ul>{% for n in numbers %}<li>{{ n }} TAG</li>{% endfor %}</ul>"
    bare = {
        "buttons": Template("{% load telephony %}" + row.replace("TAG", "{% call_button n %}")),
        "buttons_cold": Template(
            "{% load telephony %}" + row.replace("TAG", "{% call_button n %}")
        ),
        "empty_tags": Template(row.replace("TAG", "{% empty_tag n %}")),
        "plain": Template(row.replace("TAG", "")),
    }
    demo_source = (ROOT / "templates" / "dashboard" / "contacts.html").read_text()
    button = "{% call_button c.number name=c.name %}"
    assert button in demo_source, "the demo page's call button tag changed"
    demo = {
        "demo": engines["django"].from_string(demo_source),
        "demo_plain": engines["django"].from_string(demo_source.replace(button, "")),
    }
    contacts = [
        {"name": f"Contact {n}", "company": f"Company {n % 7}", "number": number}
        for n, number in enumerate(numbers)
    ]

    def request() -> Any:
        made = RequestFactory().get("/")
        made.user = Agent()  # type: ignore[assignment]  # a fresh request: nothing carried over
        return made

    def bare_render(page: Any, cold: bool = False) -> Callable[[], float]:
        def render() -> float:
            if cold:
                tags.clear_caches()
            ctx = Context({"numbers": numbers, "request": request()})
            started = time.process_time()
            page.render(ctx)
            return time.process_time() - started

        return render

    def demo_render(page: Any) -> Callable[[], float]:
        def render() -> float:
            req = request()
            started = time.process_time()
            page.render({"contacts": contacts}, req)  # with the context processors, as a view
            return time.process_time() - started

        return render

    warm = {name: bare_render(page) for name, page in bare.items() if name != "buttons_cold"}
    warm |= {name: demo_render(page) for name, page in demo.items()}
    out: dict[str, float] = {}
    # Interleaved rounds, one render of each page per round, and the median render: a
    # noisy neighbour or a garbage collection then weighs on every page alike. The cold
    # page comes last, as it empties the caches the others use.
    for renderers in (warm, {"buttons_cold": bare_render(bare["buttons_cold"], cold=True)}):
        spent: dict[str, list[float]] = {name: [] for name in renderers}
        for round_ in range(10 + renders):
            for name, render in renderers.items():
                took = render()
                if round_ >= 10:  # warm-up
                    spent[name].append(took)
        for name, samples in spent.items():
            out[f"{name}_cpu_ms"] = round(statistics.median(samples) * 1000, 3)
    out["demo_ratio"] = round(out["demo_cpu_ms"] / out["demo_plain_cpu_ms"], 2)
    out["ratio"] = round(out["buttons_cpu_ms"] / out["plain_cpu_ms"], 2)
    out["cold_ratio"] = round(out["buttons_cold_cpu_ms"] / out["plain_cpu_ms"], 2)
    out["floor_ratio"] = round(out["empty_tags_cpu_ms"] / out["plain_cpu_ms"], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--renders", type=int, default=200)
    parser.add_argument("--no-celery", action="store_true")
    parser.add_argument("--profile", help="write py-spy collapsed stacks of the worker here")
    parser.add_argument("--page-only", action="store_true", help="only the call-button page")
    args = parser.parse_args()
    if args.page_only:
        with product_env() as env:
            setup_django(env)
            emit({"page": page_render_cpu(args.renders)})
        return
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
                spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
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
