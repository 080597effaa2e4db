"""Recovery from dead and hung workers, with real supervisors (issue: supervisor).

Every run starts a fresh ``telephony_supervisor`` (so each failure is the first in its
restart window, as in production) with the DEFAULT heartbeat settings (beat every 1 s,
stale after 3 s) unless ``--fast`` says otherwise, against one sandbox at
``--latency-ms`` provider latency. The load is ``--callers`` service clients in this
process, each sending ``credential.create`` with a ``--timeout`` deadline, back to back.

- kill_one_of_two: two workers, kill -9 one under load. A failed request is attributed
  through the at-most-once claims in Redis: claimed by the killed worker, or sent before
  its exit was seen and claimed by nobody (taken off the channel by it: until its
  connection closes, Redis still completes the blocking pop it was waiting in, and hands
  it the next message), means it was in flight on the killed worker. Any other failure
  is what the target forbids.
- kill_to_success: one worker, kill -9 under load: time to the first success of a
  request sent after the kill (callers retry; the client answers 503 at once meanwhile).
- sigstop: one worker, no load, SIGSTOP: time until the state stops counting it, until
  the supervisor calls it hung, and until a different worker's first heartbeat.

Supervisors run with ``--spares`` idle spare workers (the product's default, 1), and wait
for them before the fault. kill1 and sigstop are also run with no spare (``--cold-runs``):
the same-run baseline, a restart that waits for a worker's cold start.

Supervisor-side moments come from its ``ServiceEvent`` rows (epoch ms), ours from
``time.time()``; everything runs on this host, so the clocks are the same.

Found here: on Python 3.11 a caller can hang past its deadline for good. When many replies
time out together, the reply receive that holds channels-redis's receive lock can be
cancelled just as redis-py's ``send_packed_command`` finishes its
``asyncio.wait_for(..., socket_timeout)``; 3.11's ``wait_for`` then drops the cancellation
(fixed in 3.12), the receive never ends, and neither does the client's own ``wait_for``
that waits for it. A second ``cancel()`` of that receive does end it. Callers here are
guarded and count such requests as ``client_hung``.

``process_start`` is the same-run floor under any restart: how long a bare Django process
takes, and one that also imports the worker (and the Telnyx SDK).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async

from bench.common import ROOT, Env, emit, median, product_env, run_loop, setup_django

HOST = socket.gethostname()
START_TIMEOUT = 90.0  # a supervisor and its workers up, on a busy 2-core host
RECOVERY_TIMEOUT = 60.0
HANG_MARGIN = 2.0  # a request not answered by deadline + this counts as a hung client
RETRY_PAUSE = 0.05  # a caller's pause after a 503, like a client honouring Retry-After
FAST = {"TELEPHONY_HEARTBEAT_INTERVAL": "0.2", "TELEPHONY_HEARTBEAT_TIMEOUT": "1.0"}


@dataclass
class Load:
    """Callers sending requests back to back until ``stop``; every outcome is logged."""

    users: list[Any]
    timeout: float
    log: list[tuple[str, float, float, str]] = field(default_factory=list)
    hung: list[asyncio.Future[Any]] = field(default_factory=list)
    stop: bool = False

    async def caller(self, i: int, until: float) -> None:
        from telephony import exceptions as exc
        from telephony.web.client import get_telephony_service

        service = get_telephony_service()
        payload = {"user_id": self.users[i % len(self.users)].pk}
        while not self.stop and time.time() < until:
            rid, sent = str(uuid.uuid4()), time.time()
            call = asyncio.ensure_future(
                service.arequest("credential.create", payload, request_id=rid, timeout=self.timeout)
            )
            # Guarded: on Python 3.11 a client can hang past its deadline (module doc).
            await asyncio.wait({call}, timeout=self.timeout + HANG_MARGIN)
            if not call.done():
                call.cancel()  # it may never finish: do not wait for it
                self.hung.append(call)
                outcome = "client_hung"
            elif isinstance(call.exception(), exc.TelephonyError):
                outcome = call.exception().code  # type: ignore[union-attr]
            else:
                call.result()  # anything else is a bench bug: raise it
                outcome = "ok"
            self.log.append((rid, sent, time.time(), outcome))
            if outcome == "service_unavailable":
                await asyncio.sleep(RETRY_PAUSE)

    def start(self, n: int) -> asyncio.Future[Any]:
        until = time.time() + RECOVERY_TIMEOUT + 30  # a bound, whatever happens
        return asyncio.gather(*(self.caller(i, until) for i in range(n)))

    async def finish(self, running: asyncio.Future[Any]) -> None:
        self.stop = True
        await asyncio.wait_for(running, timeout=self.timeout + HANG_MARGIN + 5)

    def slowest_failure_s(self) -> float | None:
        """The longest a failed request kept its caller waiting (the deadline is ``timeout``)."""
        waits = [d - s for _, s, d, o in self.log if o != "ok"]
        return round(max(waits), 3) if waits else None

    def first_success_after(self, t: float) -> float | None:
        done = [d for _, s, d, o in self.log if o == "ok" and s >= t]
        return min(done) if done else None


def sid(sup: subprocess.Popen[bytes]) -> str:
    return f"{HOST}:{sup.pid}"


async def own_workers(sup: subprocess.Popen[bytes]) -> tuple[Any, list[int]]:
    """The state now (no cache) and the pids of this supervisor's serving workers."""
    from telephony.state import aread_state

    state = await aread_state()
    pids = [w.pid for w in state.workers if w.supervisor_id == sid(sup) and w.serving]
    return state, sorted(pids)


async def poll(predicate: Any, timeout: float, interval: float = 0.02) -> float | None:
    """Await ``predicate()`` (async) until true; the time.time() it first was, or None."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if await predicate():
            return time.time()
        await asyncio.sleep(interval)
    return None


async def start_supervisor(env: Env, workers: int, extra: dict[str, str], spares: int) -> Any:
    extra = {**extra, "TELEPHONY_SPARE_WORKERS": str(spares)}
    sup = env.manage("telephony_supervisor", "--workers", str(workers), name="sup", extra=extra)

    async def ready() -> bool:
        if sup.poll() is not None:
            raise RuntimeError(f"supervisor exited with {sup.returncode}; see {env.var}")
        state, pids = await own_workers(sup)
        rec = next((s for s in state.supervisors if s.id == sid(sup)), None)
        return (
            state.status == "ready"
            and rec is not None
            and rec.state == "running"
            and len(pids) == workers
            and rec.spares == spares
        )

    if await poll(ready, START_TIMEOUT, 0.1) is None:
        stop_supervisor(sup)
        raise RuntimeError(f"{workers} workers not ready within {START_TIMEOUT} s")
    await asyncio.sleep(1.0)  # past the first beats: the workers are settled
    return sup


def stop_supervisor(sup: subprocess.Popen[bytes]) -> None:
    """SIGTERM (graceful stop), then SIGKILL to its whole process group (its workers)."""
    if sup.poll() is None:
        os.kill(sup.pid, signal.SIGTERM)
        try:
            sup.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(sup.pid, signal.SIGKILL)  # leftovers: a stopped or wedged worker
    except (ProcessLookupError, PermissionError):
        pass
    sup.wait(timeout=10)


def supervisor_events(sup: subprocess.Popen[bytes], wait_for: str = "") -> dict[str, Any]:
    """The first event of each kind this supervisor wrote (its thread writes them late)."""
    from telephony.models import ServiceEvent

    end = time.monotonic() + 10
    while True:
        rows = ServiceEvent.objects.filter(supervisor_id=sid(sup)).order_by("id")
        firsts: dict[str, Any] = {}
        for row in rows:
            firsts.setdefault(row.kind, row.data)
        if not wait_for or wait_for in firsts or time.monotonic() > end:
            return firsts
        time.sleep(0.1)


def secs(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(b - a, 3)


def at(event: dict[str, Any] | None) -> float | None:
    return event["at"] / 1000 if event else None


def claims(rids: list[str]) -> list[str | None]:
    from telephony.connections import get_redis
    from telephony.keys import Keys

    return list(get_redis().mget([Keys.claim(r) for r in rids])) if rids else []


# -- the scenarios --------------------------------------------------------------------------


async def kill_one_of_two(env: Env, users: list[Any], args: Any) -> dict[str, Any]:
    sup = await start_supervisor(env, 2, {}, args.spares)
    try:
        load = Load(users, args.timeout)
        running = load.start(args.callers)
        await asyncio.sleep(2.0)
        state, pids = await own_workers(sup)
        victim = pids[0]
        beat = next(w for w in state.workers if w.pid == victim)
        t_kill = time.time()
        os.kill(victim, signal.SIGKILL)

        async def replaced() -> bool:
            _, now = await own_workers(sup)
            return len(now) == 2 and victim not in now

        t_back = await poll(replaced, RECOVERY_TIMEOUT, 0.05)
        # Past every deadline of a request open at the kill, and a second of the new pair.
        await asyncio.sleep(max(0.0, t_kill + args.timeout + 1.0 - time.time()) + 1.0)
        await load.finish(running)
    finally:
        stop_supervisor(sup)
    failed = [e for e in load.log if e[3] != "ok"]
    owners = claims([e[0] for e in failed])
    killed = f"{HOST}:{victim}"
    exited = (await sync_to_async(supervisor_events)(sup, "worker_exited")).get("worker_exited")
    t_gone = at(exited) or t_kill  # its Redis connection closed by then at the latest
    claimed = sum(1 for o in owners if o == killed)
    taken = sum(1 for e, o in zip(failed, owners, strict=True) if o is None and e[1] < t_gone)
    others = [
        {"sent_after_kill_s": round(e[1] - t_kill, 4), "code": e[3], "claimed_by": o}
        for e, o in zip(failed, owners, strict=True)
        if o != killed and not (o is None and e[1] < t_gone)
    ]
    open_at_kill = sum(1 for _, s, d, _ in load.log if s <= t_kill < d)
    return {
        "requests": len(load.log),
        "ok": len(load.log) - len(failed),
        "failed": len(failed),
        "failed_claimed_by_killed": claimed,
        "failed_taken_by_killed_unclaimed": taken,
        "failed_other": len(failed) - claimed - taken,
        "failed_other_detail": others,
        "kill_to_exit_seen_s": secs(t_kill, t_gone),
        "failure_codes": sorted({e[3] for e in failed}),
        "open_at_kill": open_at_kill,
        "killed_in_flight_last_beat": beat.in_flight,
        "slowest_failure_s": load.slowest_failure_s(),
        "clients_hung": len(load.hung),
        "kill_to_replacement_s": secs(t_kill, t_back),
    }


async def kill_to_success(env: Env, users: list[Any], args: Any, spares: int) -> dict[str, Any]:
    sup = await start_supervisor(env, 1, {}, spares)
    try:
        load = Load(users, args.timeout)
        running = load.start(args.callers)
        await asyncio.sleep(1.5)
        [victim] = (await own_workers(sup))[1]
        t_kill = time.time()
        os.kill(victim, signal.SIGKILL)

        async def served() -> bool:
            return load.first_success_after(t_kill) is not None

        async def new_worker() -> bool:
            _, now = await own_workers(sup)
            return bool(now) and victim not in now

        t_new = await poll(new_worker, RECOVERY_TIMEOUT)
        await poll(served, RECOVERY_TIMEOUT)
        await load.finish(running)
    finally:
        stop_supervisor(sup)
    events = await sync_to_async(supervisor_events)(sup, "worker_restarted")
    exited, restarted = events.get("worker_exited"), events.get("worker_restarted")
    after = [e for e in load.log if e[2] > t_kill]
    first_503 = min((d for _, _, d, o in after if o == "service_unavailable"), default=None)
    return {
        "spare_took_over": bool(restarted and restarted.get("spare")),
        "kill_to_success_s": secs(t_kill, load.first_success_after(t_kill)),
        "kill_to_exit_seen_s": secs(t_kill, at(exited)),
        "restart_backoff_s": restarted and restarted.get("delay"),
        "worker_cold_start_s": secs(at(restarted), t_new),
        "kill_to_new_worker_s": secs(t_kill, t_new),
        "kill_to_first_503_s": secs(t_kill, first_503),
        "failed_after_kill": sum(1 for e in after if e[3] != "ok"),
        "failure_codes": sorted({e[3] for e in after if e[3] != "ok"}),
        "slowest_failure_s": load.slowest_failure_s(),
        "clients_hung": len(load.hung),
    }


async def sigstop(env: Env, extra: dict[str, str], spares: int) -> dict[str, Any]:
    sup = await start_supervisor(env, 1, extra, spares)
    try:
        [victim] = (await own_workers(sup))[1]
        t_stop = time.time()
        os.kill(victim, signal.SIGSTOP)

        async def not_counted() -> bool:
            _, now = await own_workers(sup)
            return victim not in now

        async def replaced() -> bool:
            _, now = await own_workers(sup)
            return bool(now) and victim not in now

        t_state = await poll(not_counted, RECOVERY_TIMEOUT)
        t_new = await poll(replaced, RECOVERY_TIMEOUT)
    finally:
        stop_supervisor(sup)
    events = await sync_to_async(supervisor_events)(sup, "worker_restarted")
    hung, exited = events.get("worker_hung"), events.get("worker_exited")
    restarted = events.get("worker_restarted")
    return {
        "spare_took_over": bool(restarted and restarted.get("spare")),
        "stop_to_replacement_s": secs(t_stop, t_new),
        "stop_to_state_change_s": secs(t_stop, t_state),
        "stop_to_hung_detected_s": secs(t_stop, at(hung)),
        "stop_to_exit_s": secs(t_stop, at(exited)),
        "exit_signal": exited and exited.get("signal"),
        "restart_backoff_s": restarted and restarted.get("delay"),
        "worker_cold_start_s": secs(at(restarted), t_new),
    }


def process_starts(env: Env, runs: int) -> dict[str, Any]:
    """The same-run floor under any restart: a bare Django process, and one that also
    imports the worker (and with it the Telnyx SDK), each to exit."""

    def timed(code: str) -> float:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env.environ, cwd=ROOT, check=True,
                       timeout=120)  # fmt: skip
        return time.perf_counter() - t

    django = [timed("import django; django.setup()") for _ in range(runs)]
    worker = [
        timed("import django; django.setup(); import telephony.worker.main") for _ in range(runs)
    ]
    return {
        "django_process_s": [round(x, 3) for x in django],
        "worker_import_process_s": [round(x, 3) for x in worker],
        "median_django_process_s": round(median(django), 3),
        "median_worker_import_process_s": round(median(worker), 3),
    }


def summarise(runs: list[dict[str, Any]], *keys: str) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": runs}
    for key in keys:
        values = [r[key] for r in runs if isinstance(r.get(key), int | float)]
        out[f"median_{key}"] = round(median(values), 3) if values else None
        out[f"max_{key}"] = max(values) if values else None
    return out


async def run(env: Env, args: Any) -> dict[str, Any]:
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from telephony.web.client import get_telephony_service

    users = [
        await get_user_model().objects.acreate_user(f"sup-{uuid.uuid4().hex[:8]}")
        for _ in range(args.callers)
    ]
    result: dict[str, Any] = {"process_start": process_starts(env, 3)}
    only = set(args.only or ["kill2", "kill1", "sigstop"])
    if only & {"kill2", "kill1"}:
        sup = await start_supervisor(env, 1, {}, 0)  # mint each user's credential once
        try:
            for u in users:
                await get_telephony_service().agenerate_credential(u)
        finally:
            stop_supervisor(sup)
    if "kill2" in only:
        runs = [await kill_one_of_two(env, users, args) for _ in range(args.kill_runs)]
        out = summarise(runs, "failed", "failed_other", "kill_to_replacement_s")
        for key in ("failed", "failed_claimed_by_killed", "failed_taken_by_killed_unclaimed",
                    "failed_other", "requests", "open_at_kill", "clients_hung"):  # fmt: skip
            out[f"total_{key}"] = sum(r[key] for r in runs)
        result["kill_one_of_two"] = out
    if "kill1" in only:
        keys = ("kill_to_success_s", "kill_to_new_worker_s", "worker_cold_start_s",
                "kill_to_first_503_s", "kill_to_exit_seen_s", "restart_backoff_s")  # fmt: skip
        runs = [await kill_to_success(env, users, args, args.spares) for _ in range(args.runs)]
        result["kill_to_success"] = {"spares": args.spares, **summarise(runs, *keys)}
        if args.cold_runs and args.spares:
            runs = [await kill_to_success(env, users, args, 0) for _ in range(args.cold_runs)]
            result["kill_to_success_cold"] = {"spares": 0, **summarise(runs, *keys)}
    if "sigstop" in only:
        keys = ("stop_to_replacement_s", "stop_to_state_change_s", "stop_to_hung_detected_s",
                "stop_to_exit_s", "worker_cold_start_s")  # fmt: skip
        runs = [await sigstop(env, {}, args.spares) for _ in range(args.runs)]
        result["sigstop"] = {"spares": args.spares, **summarise(runs, *keys)}
        if args.cold_runs and args.spares:
            runs = [await sigstop(env, {}, 0) for _ in range(args.cold_runs)]
            result["sigstop_cold"] = {"spares": 0, **summarise(runs, *keys)}
        if args.fast:
            default_timeout = settings.TELEPHONY_HEARTBEAT_TIMEOUT
            settings.TELEPHONY_HEARTBEAT_TIMEOUT = float(FAST["TELEPHONY_HEARTBEAT_TIMEOUT"])
            try:
                runs = [await sigstop(env, FAST, args.spares) for _ in range(args.fast_runs)]
            finally:
                settings.TELEPHONY_HEARTBEAT_TIMEOUT = default_timeout
            result["sigstop_fast"] = {"heartbeat": FAST, **summarise(runs, *keys)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5, help="runs of kill1 and sigstop")
    parser.add_argument("--kill-runs", type=int, default=3, help="runs of kill2")
    parser.add_argument("--callers", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=3.0, help="request deadline (s)")
    parser.add_argument("--latency-ms", type=int, default=0, help="sandbox latency")
    parser.add_argument("--fast", action="store_true", help="also SIGSTOP with short beats")
    parser.add_argument("--fast-runs", type=int, default=3, help="runs of the --fast variant")
    parser.add_argument("--spares", type=int, default=1, help="spare workers per supervisor")
    parser.add_argument(
        "--cold-runs", type=int, default=3, help="runs of kill1 and sigstop with no spare"
    )
    parser.add_argument("--only", nargs="*", choices=["kill2", "kill1", "sigstop"])
    args = parser.parse_args()
    from devserver.sandbox.control import SandboxProcess

    sandbox = SandboxProcess.start(args=["--credential-limit", "100000"], stderr=subprocess.DEVNULL)
    try:
        if args.latency_ms:
            sandbox.set_fault("CreateTelephonyCredentialToken", latency_ms=args.latency_ms)
        tel = {
            "TELNYX_API_KEY": sandbox.api_key,
            "TELNYX_BASE_URL": sandbox.base_url,
            "TELNYX_CONNECTION_ID": sandbox.connection_id,
            "TELNYX_CALL_CONNECTION_ID": sandbox.call_connection_id,
            "TELNYX_FROM_NUMBER": sandbox.from_number,
            "TELEPHONY_RECONCILE_INTERVAL": "3600",  # no housekeeping inside a measurement
            "TELEPHONY_ACCOUNT_CREDENTIAL_LIMIT": "100000",  # as many seats as the sandbox
        }
        with product_env(**tel) as env:
            setup_django(env)
            from django.conf import settings

            result = run_loop(run(env, args))
            result["settings"] = {
                "heartbeat_interval_s": float(settings.TELEPHONY_HEARTBEAT_INTERVAL),
                "heartbeat_timeout_s": float(settings.TELEPHONY_HEARTBEAT_TIMEOUT),
                "state_cache_ttl_s": float(settings.TELEPHONY_STATE_CACHE_TTL),
                "restart_backoff_base_s": float(settings.TELEPHONY_RESTART_BACKOFF_BASE),
                "kill_grace_s": float(settings.TELEPHONY_KILL_GRACE),
                "request_timeout_s": args.timeout,
                "callers": args.callers,
                "op": "credential.create",
                "sandbox_latency_ms": args.latency_ms,
                "spares": args.spares,
            }
            emit(result)
    finally:
        sandbox.stop()


if __name__ == "__main__":
    sys.exit(main())
