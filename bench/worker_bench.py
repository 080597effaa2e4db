"""Isolation overhead and throughput of the telephony worker (issue: worker and client).

Latency, in one run, zero sandbox latency, ``credential.create`` for a user whose
credential exists (one token mint per request):
  - through the service client (web side -> channel layer -> worker -> sandbox -> back);
  - the same operation called directly in-process (no layer, no worker);
  - a bare channel-layer round trip (an echo process);
  - a Redis PING.
Throughput: 200 ms sandbox latency, 100 concurrent callers, one worker; the baseline is
the same operation behind a plain Channels consumer run by ``channels.worker.Worker``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from typing import Any

from bench.common import (
    emit,
    pct,
    peak_rss_mb,
    product_env,
    run_loop,
    setup_django,
    wait_for_workers,
)


async def _timed(n: int, fn: Any) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def _summary(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": round(pct(ms, 50), 3), "p99_ms": round(pct(ms, 99), 3), "n": len(ms)}


async def _throughput(service: Any, users: list[Any], seconds: float, callers: int) -> float:
    done = 0
    end = time.monotonic() + seconds

    async def caller(i: int) -> None:
        nonlocal done
        while time.monotonic() < end:
            await service.agenerate_credential(users[i % len(users)])
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(caller(i) for i in range(callers)))
    return done / (time.monotonic() - started)


async def run(n: int, seconds: float, runs: int) -> dict[str, Any]:
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from devserver.sandbox.control import SandboxControl
    from telephony.connections import get_async_redis
    from telephony.web.client import get_telephony_service
    from telephony.worker.adapter import RequestContext, TelnyxAdapter
    from telephony.worker.breaker import CircuitBreaker
    from telephony.worker.operations import Operations

    service = get_telephony_service()
    user = await get_user_model().objects.acreate_user(f"bench-{uuid.uuid4().hex[:6]}")
    await service.agenerate_credential(user)  # the credential exists from here on

    # -- latency ------------------------------------------------------------------------
    r = get_async_redis()
    ping = await _timed(n, r.ping)

    from channels.layers import get_channel_layer

    layer = get_channel_layer()

    async def layer_rt() -> None:
        reply_to = await layer.new_channel("bench.")
        await layer.send("bench-echo", {"type": "echo", "reply_to": reply_to})
        await layer.receive(reply_to)

    await _timed(50, layer_rt)  # warm-up
    bare = await _timed(n, layer_rt)

    await _timed(50, lambda: service.agenerate_credential(user))
    client = await _timed(n, lambda: service.agenerate_credential(user))

    adapter = TelnyxAdapter(
        api_key=settings.TELNYX_API_KEY, base_url=settings.TELNYX_BASE_URL, breaker=CircuitBreaker()
    )
    ops = Operations(adapter, worker_id="bench")

    async def direct_op() -> None:
        ctx = RequestContext(request_id=str(uuid.uuid4()), deadline=time.time() + 10)
        await ops.credential_create(ctx, {"user_id": user.pk})

    await _timed(50, direct_op)
    direct = await _timed(n, direct_op)
    await adapter.aclose()

    latency = {
        "redis_ping": _summary(ping),
        "layer_round_trip": _summary(bare),
        "client": _summary(client),
        "direct": _summary(direct),
    }
    latency["overhead_p50_ms"] = round(latency["client"]["p50_ms"] - latency["direct"]["p50_ms"], 3)
    latency["overhead_p99_ms"] = round(latency["client"]["p99_ms"] - latency["direct"]["p99_ms"], 3)

    # -- throughput at 200 ms provider latency ------------------------------------------------
    users = [
        await get_user_model().objects.acreate_user(f"tp-{uuid.uuid4().hex[:8]}")
        for _ in range(100)
    ]
    for u in users:
        await service.agenerate_credential(u)
    control = SandboxControl(settings.BENCH_SANDBOX_CONTROL)
    control.set_fault("CreateTelephonyCredentialToken", latency_ms=200)
    rates = [await _throughput(service, users, seconds, 100) for _ in range(runs)]
    control.clear_faults()
    return {"latency": latency, "throughput_rps": [round(x, 1) for x in rates]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--plain", action="store_true", help="run the throughput baseline instead")
    parser.add_argument("--concurrency", type=int, default=None)
    args = parser.parse_args()
    from devserver.sandbox.control import SandboxProcess

    sandbox = SandboxProcess.start(args=["--credential-limit", "100000"])
    try:
        tel = {
            "TELNYX_API_KEY": sandbox.api_key,
            "TELNYX_BASE_URL": sandbox.base_url,
            "TELNYX_CONNECTION_ID": sandbox.connection_id,
            "TELNYX_CALL_CONNECTION_ID": sandbox.call_connection_id,
            "TELNYX_FROM_NUMBER": sandbox.from_number,
            "TELEPHONY_QUEUE_CAPACITY": "100000",
            "TELEPHONY_ACCOUNT_CREDENTIAL_LIMIT": "100000",  # as many seats as the sandbox
            "TELEPHONY_REQUEST_TIMEOUT": "30",
        }
        if args.concurrency:
            tel["TELEPHONY_WORKER_CONCURRENCY"] = str(args.concurrency)
        with product_env(**tel) as env:
            setup_django(env)
            from django.conf import settings

            settings.BENCH_SANDBOX_CONTROL = sandbox.control_url  # type: ignore[misc]
            if args.plain:
                env.start(sys.executable, "-m", "bench.plain_consumer", name="plain")
                time.sleep(3)
                result = run_loop(run_plain(args.seconds, sandbox.control_url))
            else:
                worker = env.manage("telephony_worker", name="worker")
                env.start(sys.executable, "-m", "bench.echo", name="echo")
                wait_for_workers(1)
                result = asyncio.run(run(args.n, args.seconds, args.runs))
                result["worker_peak_rss_mb"] = peak_rss_mb(worker.pid)
            result["concurrency"] = int(tel.get("TELEPHONY_WORKER_CONCURRENCY", 50))
            emit(result)
    finally:
        sandbox.stop()


async def run_plain(seconds: float, control_url: str) -> dict[str, Any]:
    """The same throughput run against a plain Channels consumer (one message at a time)."""
    from django.contrib.auth import get_user_model

    from devserver.sandbox.control import SandboxControl
    from telephony.connections import get_async_redis
    from telephony.keys import Keys
    from telephony.protocol import Heartbeat
    from telephony.web.client import get_telephony_service

    # The plain consumer writes no heartbeat; a fake one lets the client send to it.
    r = get_async_redis()
    await r.set(Keys.worker("plain:0"), Heartbeat(id="plain:0").encode(), px=600_000)
    await r.zadd(Keys.workers(), {"plain:0": time.time() * 1000 + 600_000})
    service = get_telephony_service()
    users = [
        await get_user_model().objects.acreate_user(f"pl-{uuid.uuid4().hex[:8]}")
        for _ in range(100)
    ]
    for u in users[:5]:
        await service.agenerate_credential(u)
    control = SandboxControl(control_url)
    control.set_fault("CreateTelephonyCredentialToken", latency_ms=200)
    done = 0
    end = time.monotonic() + seconds

    async def caller(i: int) -> None:
        nonlocal done
        while time.monotonic() < end:
            call = asyncio.ensure_future(
                service.arequest(
                    "credential.create", {"user_id": users[i % 5].pk}, timeout=seconds + 5
                )
            )
            # Bounded: on Python 3.11 a timed-out call can hang (see bench/supervisor_bench.py).
            await asyncio.wait({call}, timeout=seconds + 7)
            if not call.done():
                call.cancel()  # it may never finish; do not wait for it
                return
            if not call.cancelled() and call.exception() is None:
                done += 1

    started = time.monotonic()
    await asyncio.gather(*(caller(i) for i in range(100)))
    control.clear_faults()
    return {"throughput_rps": [round(done / (time.monotonic() - started), 1)]}


if __name__ == "__main__":
    main()
