"""Preloaded workers (issue 14, part 1): a wipe-out's recovery and a worker's marginal memory.

- cold_start (the baseline): a plain ``manage.py telephony_worker`` started alone, from
  spawn to its first heartbeat; then, after it served ``--warm`` requests, its RSS.
- wipe_out: a fresh ``telephony_supervisor`` (2 workers, 1 spare, default settings, the
  template on) under ``--callers`` callers; every worker and the spare get SIGKILL at the
  same moment; the figure is the kill to the first success of a request sent after it.
  A fresh supervisor per run, so each wipe-out is the first in its restart window.
- memory: in the same supervisors, after the load, each forked worker's USS (the pages
  only it maps: what one more worker costs) and PSS, and the template's RSS.

Targets (issue 14): wipe-out <= 1 s and >= 10x faster than the cold start; marginal USS
<= 25 % of a cold worker's RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import time
import uuid
from typing import Any

from asgiref.sync import sync_to_async

from bench.common import Env, emit, median, product_env, run_loop, setup_django
from bench.supervisor_bench import (
    RECOVERY_TIMEOUT,
    Load,
    at,
    own_workers,
    poll,
    secs,
    sid,
    start_supervisor,
    stop_supervisor,
    supervisor_events,
)
from telephony.worker.process import memory


async def beat_of(pid: int) -> Any:
    from telephony.state import aread_state

    state = await aread_state()
    return next((w for w in state.workers if w.pid == pid), None)


async def warm(users: list[Any], n: int) -> None:
    from telephony.web.client import get_telephony_service

    service = get_telephony_service()
    for i in range(n):
        await service.agenerate_credential(users[i % len(users)])


async def cold_start(env: Env, users: list[Any], args: Any) -> dict[str, Any]:
    t0 = time.time()
    proc = env.manage("telephony_worker", name="cold")
    try:

        async def beating() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"cold worker exited with {proc.returncode}; see {env.var}")
            return await beat_of(proc.pid) is not None

        t_up = await poll(beating, 120.0, 0.02)
        await asyncio.sleep(0.3)  # the web side's state cache sees it
        await warm(users, args.warm)
        mem = memory(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return {"start_s": secs(t0, t_up), "rss_mb": mem.rss_mb, "uss_mb": mem.uss_mb}


async def wipe_out(env: Env, users: list[Any], args: Any) -> dict[str, Any]:
    sup = await start_supervisor(env, 2, {}, 1)
    try:
        await warm(users, args.warm)
        load = Load(users, args.timeout)
        running = load.start(args.callers)
        await asyncio.sleep(1.0)
        rec = await sync_to_async(record_of)(sup)
        victims = [w.pid for w in rec.workers]
        mem = {p: memory(p) for p in victims}
        template = memory(rec.template_pid) if rec.template_pid else None
        t_kill = time.time()
        for pid in victims:
            os.kill(pid, signal.SIGKILL)

        async def served() -> bool:
            return load.first_success_after(t_kill) is not None

        async def whole() -> bool:
            _, now = await own_workers(sup)
            return len(now) == 2 and not set(now) & set(victims)

        await poll(served, RECOVERY_TIMEOUT)
        t_whole = await poll(whole, RECOVERY_TIMEOUT)
        await load.finish(running)
    finally:
        stop_supervisor(sup)
    events = await sync_to_async(supervisor_events)(sup, "worker_restarted")
    fallback = events.get("template_fallback")
    after = [e for e in load.log if e[2] > t_kill]
    return {
        "killed": len(victims),
        "kill_to_success_s": secs(t_kill, load.first_success_after(t_kill)),
        "kill_to_exit_seen_s": secs(t_kill, at(events.get("worker_exited"))),
        "restart_backoff_s": (events.get("worker_restarted") or {}).get("delay"),
        "kill_to_both_workers_s": secs(t_kill, t_whole),
        "cold_fallbacks": bool(fallback),
        "failed_after_kill": sum(1 for e in after if e[3] != "ok"),
        "failure_codes": sorted({e[3] for e in after if e[3] != "ok"}),
        "worker_uss_mb": [m.uss_mb for m in mem.values()],
        "worker_pss_mb": [m.pss_mb for m in mem.values()],
        "worker_rss_mb": [m.rss_mb for m in mem.values()],
        "template_rss_mb": template.rss_mb if template else None,
        "template_load_s": (events.get("template_ready") or {}).get("load_seconds"),
    }


def record_of(sup: subprocess.Popen[bytes]) -> Any:
    from telephony.connections import get_redis
    from telephony.keys import Keys
    from telephony.protocol import SupervisorRecord

    return SupervisorRecord.decode(get_redis().get(Keys.supervisor(sid(sup))))


def med(values: list[Any]) -> float | None:
    nums = [v for v in values if isinstance(v, int | float)]
    return round(median(nums), 3) if nums else None


async def run(env: Env, args: Any) -> dict[str, Any]:
    from django.contrib.auth import get_user_model

    users = [
        await get_user_model().objects.acreate_user(f"pre-{uuid.uuid4().hex[:8]}")
        for _ in range(args.callers)
    ]
    colds = [await cold_start(env, users, args) for _ in range(args.cold_runs)]
    wipes = [await wipe_out(env, users, args) for _ in range(args.runs)]
    cold_s = med([c["start_s"] for c in colds])
    wipe_s = med([w["kill_to_success_s"] for w in wipes])
    cold_rss = med([c["rss_mb"] for c in colds])
    uss = med([u for w in wipes for u in w["worker_uss_mb"]])
    return {
        "cold_start": {"runs": colds, "median_start_s": cold_s, "median_rss_mb": cold_rss},
        "wipe_out": {
            "runs": wipes,
            "median_kill_to_success_s": wipe_s,
            "max_kill_to_success_s": max(
                (w["kill_to_success_s"] for w in wipes if w["kill_to_success_s"] is not None),
                default=None,
            ),
            "speedup_vs_cold": round(cold_s / wipe_s, 1) if cold_s and wipe_s else None,
        },
        "memory": {
            "median_worker_uss_mb": uss,
            "median_worker_pss_mb": med([p for w in wipes for p in w["worker_pss_mb"]]),
            "median_worker_rss_mb": med([r for w in wipes for r in w["worker_rss_mb"]]),
            "median_template_rss_mb": med([w["template_rss_mb"] for w in wipes]),
            "uss_over_cold_rss": round(uss / cold_rss, 3) if uss and cold_rss else None,
        },
        "settings": {
            "callers": args.callers,
            "warm_requests": args.warm,
            "timeout_s": args.timeout,
            "workers": 2,
            "spares": 1,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3, help="wipe-outs (a supervisor each)")
    parser.add_argument("--cold-runs", type=int, default=3, help="cold worker starts")
    parser.add_argument("--callers", type=int, default=10)
    parser.add_argument("--warm", type=int, default=50, help="requests before measuring memory")
    parser.add_argument("--timeout", type=float, default=3.0, help="request deadline (s)")
    args = parser.parse_args()
    from devserver.sandbox.control import SandboxProcess

    sandbox = SandboxProcess.start(args=["--credential-limit", "100000"], stderr=subprocess.DEVNULL)
    try:
        tel = {
            "TELNYX_API_KEY": sandbox.api_key,
            "TELNYX_BASE_URL": sandbox.base_url,
            "TELNYX_CONNECTION_ID": sandbox.connection_id,
            "TELNYX_CALL_CONNECTION_ID": sandbox.call_connection_id,
            "TELNYX_FROM_NUMBER": sandbox.from_number,
            "TELEPHONY_RECONCILE_INTERVAL": "3600",
            "TELEPHONY_ACCOUNT_CREDENTIAL_LIMIT": "100000",
        }
        with product_env(**tel) as env:
            setup_django(env)
            emit(run_loop(run(env, args)))
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
