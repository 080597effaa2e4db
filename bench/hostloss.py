"""``python -m bench.hostloss``: two hosts under load; SIGKILL one whole host.

    python -m bench.hostloss [--seconds N] [--kill-at S] [--users U] [--report PATH]

Two "hosts" share one Sentinel-managed Redis (:mod:`bench.sentinel_cluster`) and one
PostgreSQL (127.0.0.1:5432, user postgres, a database of this run's own, dropped at the
end). Each host has its own var directory, host id (``TELEPHONY_HOST_ID``), supervisor
with two workers and daphne; host A on 127.0.0.1, host B on 127.0.0.2. One sandbox
stands for Telnyx; its webhooks go to host A (as a load balancer that routes around a
dead host would). Half the users load each host. At ``--kill-at`` every process of host
B gets SIGKILL at once. Reported: host A's and host B's failures, split by in flight at
the kill or later, the chaos invariants on host A's records and on every call row, host
A's restarts, and how long until host A's status shows host B's workers gone.
Without PostgreSQL it prints one line and exits 0 with ``{"skipped": ...}``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.chaos import (
    PASSWORD,
    _close_django,
    _collect,
    _setup_django,
    _wait_leftovers,
    _wait_settled,
)
from bench.chaos_check import TERMINAL, Evidence, check_all
from bench.chaos_load import Load, Record
from bench.chaos_procs import PRODUCT_SETTINGS, WORKERS, Stack
from bench.common import machine, pg_database, pg_problem
from bench.failover import StatusProbe, _pids, _restarts, emit
from bench.sentinel_cluster import SentinelCluster


def run(*, seconds: float, kill_at: float, users: int, seed: int) -> dict[str, Any]:
    problem = pg_problem()
    if problem:
        return {"skipped": problem}
    with pg_database("tel_hostloss") as url:
        return _run(url, seconds=seconds, kill_at=kill_at, users=users, seed=seed)


def _run(url: str, *, seconds: float, kill_at: float, users: int, seed: int) -> dict[str, Any]:
    cluster = SentinelCluster().start()
    common = {
        **cluster.env(),
        "DATABASE_URL": url,
        "TELEPHONY_WORKER_START_TIMEOUT": "90",
        "TELEPHONY_SPARE_WORKERS": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,127.0.0.2,localhost",
    }
    a = Stack(seed=seed, extra_env={**common, "TELEPHONY_HOST_ID": "host-a"})
    b = Stack(seed=seed, bind="127.0.0.2")
    loads: list[Load] = []
    probe: StatusProbe | None = None
    out: dict[str, Any] = {}
    timeout = float(PRODUCT_SETTINGS["TELEPHONY_REQUEST_TIMEOUT"])
    try:
        a.start()
        b.environ = {**a.environ, "TELEPHONY_VAR_DIR": str(b.var), "TELEPHONY_HOST_ID": "host-b"}
        b.serve()
        _wait_alive(a, 2 * WORKERS, timeout=120)  # b.serve() saw host A's workers already
        ids = _setup_django(a, users * 2)
        names = sorted(ids)
        for stack, group in ((a, names[:users]), (b, names[users:])):
            load = Load(stack.base_url, [(n, PASSWORD) for n in group], seed=seed,
                        client_timeout=timeout + 11.0)  # fmt: skip
            load.start()
            loads.append(load)
        out["pids_before"] = _pids(a)
        probe = StatusProbe(a.base_url)
        probe.start()
        t0 = time.time()
        for load in loads:
            load.begin(seconds)
        time.sleep(max(0.0, t0 + kill_at - time.time()))
        out["killed_at"] = time.time()
        out["killed"] = _kill_host(b)
        for load in loads:
            load.join(timeout=seconds + timeout + 20)
        probe.halt.set()
        out["settled"] = _wait_settled(a)
        out["collected"] = _collect(a)
        out["pids_after"] = _pids(a)
        out["restarts"] = _restarts(a)
    finally:
        if probe is not None:
            probe.halt.set()
        ended = a.shutdown()
        b.shutdown()
        _close_django()
        cluster.stop()
        leftovers = _wait_leftovers(a) + _wait_leftovers(b)
        for stack in (a, b):
            stack.kill_leftovers()
            stack.watch.stop()
    killed = out["killed_at"]
    rec_a, rec_b = loads[0].records, loads[1].records
    collected = out["collected"]
    evidence = Evidence(
        records=rec_a, request_timeout=timeout, margin=1.0,
        daphne_pid=out["pids_before"]["daphne"], daphne_alive_at_end=True,
        daphne_exit=ended.get("daphne"), calls=collected["calls"], users=ids,
        sandbox_log=collected["sandbox_log"], webhooks=collected["webhooks"],
        live_calls=collected["live_calls"], leftovers=leftovers,
        recovered=True, recovery_detail="host A served throughout",
    )  # fmt: skip
    violations, sandbox = check_all(evidence)
    calls = collected["calls"].values()
    b_201 = [r for r in rec_b if r.kind == "call" and r.status == 201]
    lost = [r.call_id for r in b_201 if r.call_id not in collected["calls"]]
    samples = probe.samples if probe else []
    gone = min((s[0] for s in samples if s[0] >= killed and 0 <= s[3] <= WORKERS), default=None)
    pids_same = out["pids_before"] == out["pids_after"]
    ok = not violations and not lost and pids_same and out["restarts"] == 0
    for stack in (a, b):  # logs kept for a failed run
        if ok:
            stack.remove()
    return {
        "ok": ok,
        "var_dirs": None if ok else [str(a.var), str(b.var)],
        "host_b_killed": out["killed"],
        "state_shows_host_b_gone_s": round(gone - killed, 2) if gone else None,
        "host_a_status_after": Counter(s[2] for s in samples if s[0] >= killed),
        "host_a": _split(rec_a, killed),
        "host_b": _split(rec_b, killed),
        "calls": len(collected["calls"]),
        "calls_non_terminal": sum(1 for c in calls if c["status"] not in TERMINAL),
        "host_b_201_calls_without_row": len(lost),
        "host_a_processes_restarted": out["restarts"] + (0 if pids_same else 1),
        "sandbox": sandbox,
        "violations": violations,
        "seconds": seconds, "kill_at": kill_at, "users_per_host": users, "machine": machine(),
    }  # fmt: skip


def _wait_alive(stack: Stack, n: int, timeout: float) -> None:
    end = time.monotonic() + timeout
    while stack.live_workers() < n:
        if time.monotonic() > end:
            raise RuntimeError(f"fewer than {n} workers alive after {timeout:g} s")
        time.sleep(0.2)


def _kill_host(stack: Stack) -> dict[str, Any]:
    """SIGKILL daphne, the supervisor and every worker of ``stack`` at once."""
    assert stack.daphne is not None and stack.supervisor is not None
    pids: dict[str, Any] = {"daphne": stack.daphne.pid, "supervisor": stack.supervisor.pid,
            "workers": [p.pid for p in stack.workers()]}  # fmt: skip
    for pid in [pids["daphne"], pids["supervisor"], *pids["workers"]]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids


def _split(records: list[Record], killed: float) -> dict[str, Any]:
    """Requests by when they ran (done before the kill, in flight at it, started after)
    and what came back."""
    out: dict[str, Counter[str]] = {"before": Counter(), "in_flight": Counter(), "after": Counter()}
    for r in records:
        when = "before" if r.started + r.elapsed < killed else (
            "in_flight" if r.started < killed else "after")  # fmt: skip
        ok = r.status is not None and r.status < 500
        answer = r.status or (r.error or "").split(":")[0]  # the error's type, not its text
        out[when]["ok" if ok else f"{r.kind} {answer} {r.code or ''}".strip()] += 1
    return {k: dict(v) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hostloss", description=__doc__)
    parser.add_argument("--seconds", type=float, default=16.0)
    parser.add_argument("--kill-at", type=float, default=5.0)
    parser.add_argument("--users", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--report", type=Path)
    args = parser.parse_args(argv)
    report = run(seconds=args.seconds, kill_at=args.kill_at, users=args.users, seed=args.seed)
    return emit(report, args.report)


if __name__ == "__main__":
    sys.exit(main())
