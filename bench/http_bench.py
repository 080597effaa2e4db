"""The web side under daphne, with no workers at all (issue: HTTP API).

- POST /api/webrtc/call answered 503 at once: p50/p99 over sequential keep-alive
  requests (a naive client would wait the whole 10 s timeout instead);
- GET /api/webrtc/status throughput against a trivial async Django view, same server,
  same load generator, interleaved runs.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import time
from typing import Any

import aiohttp
from yarl import URL

from bench.common import (
    ROOT,
    Env,
    emit,
    free_port,
    median,
    pct,
    peak_rss_mb,
    pg_database,
    pg_problem,
    product_env,
    profile,
)


async def _wait_up(url: str, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < end:
            try:
                async with session.get(url) as r:
                    if r.status < 500 or r.status == 503:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


async def _login(session: aiohttp.ClientSession, base: str) -> str:
    async with session.get(f"{base}/admin/login/") as r:
        await r.read()
    csrf = session.cookie_jar.filter_cookies(URL(base))["csrftoken"].value
    form = {"username": "bench", "password": "bench-pw", "csrfmiddlewaretoken": csrf, "next": "/"}
    async with session.post(f"{base}/admin/login/", data=form) as r:
        await r.read()
    return session.cookie_jar.filter_cookies(URL(base))["csrftoken"].value


async def latencies(base: str, n: int, floor: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """POST /api/webrtc/call answered 503 (logged in, CSRF), and its same-run floor, GET of
    the trivial view (no session): sequential keep-alive requests, one of each in turn,
    so that both see the same machine."""
    # unsafe=True: keep cookies for an IP address host (127.0.0.1).
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as agent, aiohttp.ClientSession() as plain:
        csrf = await _login(agent, base)
        headers = {"X-CSRFToken": csrf, "Referer": base + "/"}
        calls: list[float] = []
        trivial: list[float] = []
        statuses = set()
        for i in range(n + 50):
            t = time.perf_counter()
            async with agent.post(
                f"{base}/api/webrtc/call", json={"to": "+12025550143"}, headers=headers
            ) as r:
                await r.read()
                statuses.add(r.status)
            t2 = time.perf_counter()
            if floor:
                async with plain.get(f"{base}/bench/trivial") as r:
                    await r.read()
            if i >= 50:  # warm-up
                calls.append((t2 - t) * 1000)
                if floor:
                    trivial.append((time.perf_counter() - t2) * 1000)
    return {**_spread(calls), "statuses": sorted(statuses)}, _spread(trivial)


def _spread(samples: list[float]) -> dict[str, Any]:
    if not samples:
        return {"n": 0}
    return {"p50_ms": round(pct(samples, 50), 2), "p99_ms": round(pct(samples, 99), 2),
            "n": len(samples)}  # fmt: skip


async def throughput(url: str, seconds: float, connections: int) -> float:
    done = 0
    end = time.monotonic() + seconds
    conn = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=conn) as session:

        async def loop() -> None:
            nonlocal done
            while time.monotonic() < end:
                async with session.get(url) as r:
                    await r.read()
                done += 1

        started = time.monotonic()
        await asyncio.gather(*(loop() for _ in range(connections)))
    return done / (time.monotonic() - started)


SETTINGS = {"DJANGO_SETTINGS_MODULE": "bench.settings", "TELEPHONY_RATE_LIMIT_CALL": "1000000/m"}
BOOT_USER = (
    "import django; django.setup(); from django.contrib.auth import get_user_model as g; "
    "g().objects.create_user('bench', password='bench-pw', is_staff=True)"
)


def serve(env: Env) -> tuple[Any, str]:
    """daphne on the product (and /bench/trivial) with a user to log in as; its process
    and base URL."""
    subprocess.run([sys.executable, "-c", BOOT_USER], env=env.environ, check=True, cwd=ROOT)
    port = free_port()
    web = env.start(
        sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
        "config.asgi:application", name="daphne",
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    asyncio.run(_wait_up(f"{base}/bench/trivial"))
    return web, base


def postgres_latencies(n: int) -> dict[str, Any]:
    """The 503 and its trivial-view floor again, the database on the machine's PostgreSQL
    (where opening a connection costs most)."""
    problem = pg_problem()
    if problem:
        return {"skipped": problem}
    with pg_database("tel_http") as url, product_env(**SETTINGS, DATABASE_URL=url) as env:
        _, base = serve(env)
        call_503, floor = asyncio.run(latencies(base, n))
    return {"call_503": call_503, "trivial_latency": floor}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument(
        "--profile", help="write py-spy raw stacks of daphne answering 3000 more 503s here"
    )
    args = parser.parse_args()
    with product_env(**SETTINGS) as env:
        web, base = serve(env)
        latency, floor = asyncio.run(latencies(base, args.n))
        if args.profile:
            spy = profile(web.pid, 60, args.profile)
            time.sleep(1)  # py-spy attached
            asyncio.run(latencies(base, 3000, floor=False))  # the 503s alone
            spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            spy.wait(timeout=30)
        status_rps, trivial_rps = [], []
        for _ in range(args.runs):
            trivial_rps.append(
                asyncio.run(throughput(f"{base}/bench/trivial", args.seconds, args.connections))
            )
            status_rps.append(
                asyncio.run(throughput(f"{base}/api/webrtc/status", args.seconds, args.connections))
            )
        web_peak_rss = peak_rss_mb(web.pid)
    postgres = postgres_latencies(args.n) if not args.no_postgres else {"skipped": "--no-postgres"}
    emit(
        {
            "call_503": latency,
            "trivial_latency": floor,
            "postgres": postgres,
            "status_rps": [round(x, 1) for x in status_rps],
            "trivial_rps": [round(x, 1) for x in trivial_rps],
            "ratio": round(median(status_rps) / median(trivial_rps), 3),
            "web_peak_rss_mb": web_peak_rss,
        }
    )


if __name__ == "__main__":
    main()
