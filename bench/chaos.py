"""``make chaos``: the whole product under load while its pieces fail, then the invariants.

    python -m bench.chaos [--short] [--seconds N] [--seed S] [--report PATH]

Starts Redis, the sandbox, a supervisor with two workers and daphne in a temporary var
dir (:mod:`bench.chaos_procs`); logs several users in and sends them at the API
(:mod:`bench.chaos_load`); meanwhile kills and stops workers, restarts Redis, kills the
supervisor and makes the sandbox slow, failing, rate limited or hanging
(:mod:`bench.chaos_faults`). Then it undoes every fault, waits for the reconciler,
stops everything and checks the invariants (:mod:`bench.chaos_check`). Prints a summary,
writes the JSON report, and exits 0 only when no invariant was violated. docs/CHAOS.md
explains each invariant and how to read the report.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx

from bench.chaos_check import LIVE, TERMINAL, Evidence, check_all, client_state
from bench.chaos_faults import KINDS, Injector, Planned, random_schedule, short_schedule
from bench.chaos_load import Load, Record
from bench.chaos_procs import PRODUCT_SETTINGS, SANDBOX_TIMING, STRIPPED, WORKERS, Stack
from bench.common import machine, pct

USERS = 8
PASSWORD = "chaos-pw"
RECOVERY_TIMEOUT = 60.0
SETTLE_TIMEOUT = 60.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--short", action="store_true", help="CI run: ~48 s, fixed schedule")
    parser.add_argument("--seconds", type=float, default=None, help="load duration")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--users", type=int, default=USERS)
    parser.add_argument("--margin", type=float, default=1.0, help="seconds over the timeout")
    parser.add_argument("--report", type=Path, default=None, help="write the JSON report here")
    parser.add_argument("--keep", action="store_true", help="keep the var dir (logs, DB)")
    args = parser.parse_args(argv)
    seconds = args.seconds or (48.0 if args.short else 240.0)
    if not 10 <= seconds <= 1800:
        parser.error("--seconds must be between 10 and 1800")
    report = run(
        short=args.short, seconds=seconds, seed=args.seed, users=args.users, margin=args.margin,
        keep=args.keep,
    )  # fmt: skip
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print_summary(report)
    return 0 if report["ok"] else 1


def run(
    *, short: bool, seconds: float, seed: int, users: int, margin: float, keep: bool
) -> dict[str, Any]:
    began = time.monotonic()
    rng = random.Random(seed)
    schedule = short_schedule(seconds) if short else random_schedule(seconds, rng)
    stack = Stack(seed=seed)
    print(f"chaos: {'short' if short else 'full'} run, {seconds:g} s, seed {seed}, "
          f"{len(schedule)} faults; var dir {stack.var}", flush=True)  # fmt: skip
    timeout = float(PRODUCT_SETTINGS["TELEPHONY_REQUEST_TIMEOUT"])
    phases: dict[str, float] = {}
    injector: Injector | None = None
    load: Load | None = None
    collected: dict[str, Any] = {}
    try:
        stack.start()
        phases["start_s"] = round(time.monotonic() - began, 1)
        user_ids = _setup_django(stack, users)
        load = Load(
            stack.base_url,
            [(name, PASSWORD) for name in user_ids],
            seed=seed,
            client_timeout=timeout + margin + 10.0,
        )
        load.start()
        print(f"chaos: product up in {phases['start_s']} s; {users} users logged in", flush=True)
        injector = Injector(stack, rng)
        injector.t0 = load.begin(seconds)
        _drive(injector, schedule, seconds)
        t = time.monotonic()
        injector.restore()
        load.join(timeout=timeout + margin + 20.0)
        recovered, recovery_detail = _wait_recovered(stack)
        phases["recovery_s"] = round(time.monotonic() - t, 1)
        print(f"chaos: load over; recovered={recovered} in {phases['recovery_s']} s", flush=True)
        t = time.monotonic()
        settled = _wait_settled(stack)
        phases["settle_s"] = round(time.monotonic() - t, 1)
        print(f"chaos: calls settled={settled} in {phases['settle_s']} s", flush=True)
        collected = _collect(stack)
        collected.update(
            recovered=recovered,
            recovery_detail=recovery_detail,
            users=user_ids,
            daphne_pid=stack.daphne.pid if stack.daphne else 0,
            daphne_alive=stack.daphne is not None and stack.daphne.poll() is None,
        )
    finally:
        t = time.monotonic()
        ended = stack.shutdown()
        _close_django()
        leftovers = _wait_leftovers(stack)
        stack.kill_leftovers()
        stack.watch.stop()
        phases["shutdown_s"] = round(time.monotonic() - t, 1)
    records = load.records if load else []
    evidence = Evidence(
        records=records,
        request_timeout=timeout,
        margin=margin,
        daphne_pid=collected["daphne_pid"],
        daphne_alive_at_end=collected["daphne_alive"],
        daphne_exit=ended.get("daphne"),
        calls=collected["calls"],
        users=collected["users"],
        sandbox_log=collected["sandbox_log"],
        webhooks=collected["webhooks"],
        live_calls=collected["live_calls"],
        leftovers=leftovers,
        recovered=collected["recovered"],
        recovery_detail=collected["recovery_detail"],
    )
    violations, sandbox_stats = check_all(evidence)
    with open(stack.var / "records.jsonl", "w") as f:
        for r in records:
            f.write(json.dumps(r.as_dict()) + "\n")
    report = _report(
        short=short, seconds=seconds, seed=seed, users=users, margin=margin, records=records,
        faults=injector.log if injector else [], schedule=schedule, evidence=evidence,
        violations=violations, sandbox_stats=sandbox_stats, phases=phases,
        processes=len(stack.watch.seen), ended=ended, runtime=time.monotonic() - began,
    )  # fmt: skip
    if violations or keep:
        report["var_dir"] = str(stack.var)
    else:
        stack.remove()
    return report


# -- phases ------------------------------------------------------------------------------


def _setup_django(stack: Stack, users: int) -> dict[str, int]:
    """Configure Django here for the run's database; create the users. Name -> id."""
    for name in list(os.environ):  # the run's settings only, as the product processes get
        if name.startswith(STRIPPED) or name in ("REDIS_URL", "DATABASE_URL"):
            del os.environ[name]
    os.environ.update(stack.environ)
    import django

    django.setup()
    logging.getLogger("telephony").setLevel(logging.WARNING)  # ours, not the product's
    from django.contrib.auth import get_user_model

    User = get_user_model()
    ids = {}
    for i in range(users):
        user = User.objects.create_user(f"chaos{i}", password=PASSWORD, is_staff=True)
        ids[user.get_username()] = int(user.pk)
    return ids


def _close_django() -> None:
    if "django.db" in sys.modules:
        from django.db import connections

        connections.close_all()


def _drive(injector: Injector, schedule: list[Planned], seconds: float) -> None:
    """Inject the planned faults on time until the load's end; run follow-ups when due."""
    todo = sorted(schedule, key=lambda p: p.at)
    end = injector.t0 + seconds
    while time.time() < end:
        now = time.time() - injector.t0
        while todo and todo[0].at <= now:
            injector.inject(todo.pop(0))
        injector.tick()
        time.sleep(0.05)


def _wait_recovered(stack: Stack) -> tuple[bool, str]:
    end = time.monotonic() + RECOVERY_TIMEOUT
    alive = 0
    while time.monotonic() < end:
        alive = stack.live_workers()
        if alive >= WORKERS:
            return True, f"{alive} workers alive"
        time.sleep(0.25)
    return False, f"{alive}/{WORKERS} workers alive after {RECOVERY_TIMEOUT:g} s"


def _calls() -> dict[str, dict[str, Any]]:
    from telephony.models import Call

    fields = ("id", "status", "user_id", "agent_call_control_id", "call_control_id",
              "error_code", "created_at", "request_id", "agent_answered_at", "answered_at",
              "hangup_cause", "hangup_requested")  # fmt: skip
    rows = {}
    for row in Call.objects.values(*fields):
        row["request_id"] = str(row["request_id"]) if row["request_id"] else None
        rows[str(row["id"])] = row
    return rows


def _sandbox_alive(stack: Stack, call_control_ids: list[str]) -> dict[str, bool]:
    """Ask the sandbox (as Telnyx) whether each call is still up."""
    assert stack.sandbox is not None
    headers = {"Authorization": f"Bearer {stack.sandbox.api_key}"}
    out = {}
    with httpx.Client(base_url=stack.sandbox.base_url, headers=headers, timeout=5) as client:
        for ccid in call_control_ids:
            r = client.get(f"/calls/{ccid}")
            out[ccid] = r.status_code == 200 and bool(r.json()["data"].get("is_alive"))
    return out


def _unsettled(stack: Stack) -> tuple[dict[str, dict[str, Any]], dict[str, bool]]:
    calls = _calls()
    live_ids = [
        str(c[leg])
        for c in calls.values()
        for leg in ("agent_call_control_id", "call_control_id")
        if c["status"] in LIVE and c[leg]
    ]
    return calls, _sandbox_alive(stack, live_ids)


def _wait_settled(stack: Stack) -> bool:
    """Until every call is terminal, at most SETTLE_TIMEOUT (every sandbox call ends by
    itself within seconds, so a live one at the end is only tolerated, not waited for)."""
    end = time.monotonic() + SETTLE_TIMEOUT
    while True:
        calls = _calls()
        if all(c["status"] in TERMINAL for c in calls.values()):
            return True
        if time.monotonic() > end:
            return False
        time.sleep(0.5)


def _collect(stack: Stack) -> dict[str, Any]:
    assert stack.sandbox is not None
    calls, live = _unsettled(stack)
    return {
        "calls": calls,
        "live_calls": live,
        "sandbox_log": stack.sandbox.log(),
        "webhooks": [_delivery(d) for d in stack.sandbox.webhooks()],
    }


def _delivery(d: dict[str, Any]) -> dict[str, Any]:
    """A webhook delivery without its body, plus our call id and leg from its client_state."""
    out = {k: v for k, v in d.items() if k != "body"}
    state = d.get("body", {}).get("data", {}).get("payload", {}).get("client_state")
    out["call_id"], out["leg"] = client_state(state)
    return out


def _wait_leftovers(stack: Stack, timeout: float = 10.0) -> list[dict[str, Any]]:
    end = time.monotonic() + timeout
    while True:
        left = stack.watch.leftovers()
        if not left or time.monotonic() > end:
            return left
        time.sleep(0.2)


# -- report ------------------------------------------------------------------------------


def _report(
    *,
    short: bool,
    seconds: float,
    seed: int,
    users: int,
    margin: float,
    records: list[Record],
    faults: list[dict[str, Any]],
    schedule: list[Planned],
    evidence: Evidence,
    violations: list[dict[str, Any]],
    sandbox_stats: dict[str, Any],
    phases: dict[str, float],
    processes: int,
    ended: dict[str, Any],
    runtime: float,
) -> dict[str, Any]:
    by_answer: Counter[str] = Counter()
    latency: defaultdict[str, list[float]] = defaultdict(list)
    for r in records:
        answer = str(r.status) if r.status is not None else f"no answer ({r.error})"
        by_answer[f"{r.kind} {answer}{' ' + r.code if r.code else ''}"] += 1
        latency[r.kind].append(r.elapsed * 1000)
    calls = evidence.calls.values()
    return {
        "ok": not violations,
        "mode": "short" if short else "full",
        "seed": seed,
        "seconds": seconds,
        "users": users,
        "machine": machine(),
        "settings": {**PRODUCT_SETTINGS, "sandbox": SANDBOX_TIMING, "margin_s": margin},
        "runtime_s": round(runtime, 1),
        "phases": phases,
        "requests": {
            "total": len(records),
            "per_second": round(len(records) / seconds, 1),
            "by_answer": dict(sorted(by_answer.items())),
            "latency_ms": {
                kind: {
                    "p50": round(pct(v, 50), 1),
                    "p99": round(pct(v, 99), 1),
                    "max": round(max(v), 1),
                }
                for kind, v in sorted(latency.items())
            },
        },
        "timeline": _timeline(records, faults, seconds),
        "faults": {
            "planned": len(schedule),
            "by_kind": {
                k: sum(1 for f in faults if f["kind"] == k and "skipped" not in f) for k in KINDS
            },
            "skipped": sum(1 for f in faults if "skipped" in f),
            "log": faults,
        },
        "calls": {
            "total": len(evidence.calls),
            "answered_201": sum(1 for r in records if r.kind == "call" and r.status == 201),
            "by_final_state": dict(
                Counter(f"{c['status']} {c['error_code'] or ''}".strip() for c in calls)
            ),
        },
        "sandbox": sandbox_stats,
        "webhooks": {
            "deliveries": len(evidence.webhooks),
            "not_delivered": sum(1 for d in evidence.webhooks if not d.get("delivered")),
        },
        "processes": {"seen": processes, "exit": ended, "leftovers": evidence.leftovers},
        "violation_counts": dict(Counter(v["invariant"] for v in violations)),
        "violations": violations,
    }


def _timeline(
    records: list[Record], faults: list[dict[str, Any]], seconds: float, step: float = 2.0
) -> list[str]:
    """One line per ``step`` seconds of load: answers by class, and the faults injected."""
    if not records:
        return []
    t0 = min(r.started for r in records)
    buckets: defaultdict[int, Counter[str]] = defaultdict(Counter)
    for r in records:
        if r.status is None:
            cls = "none"
        elif r.status < 400:
            cls = "2xx"
        else:
            cls = str(r.status)
        buckets[int((r.started - t0) // step)][cls] += 1
    lines = []
    for i in range(int(seconds // step) + 1):
        b = buckets.get(i, Counter())
        at = [f["kind"] for f in faults if i * step <= f["at"] - t0 < (i + 1) * step]
        answers = " ".join(f"{k}:{n}" for k, n in sorted(b.items()))
        lines.append(f"{i * step:5.0f}s {answers:<44} {' '.join(at)}".rstrip())
    return lines


def print_summary(report: dict[str, Any]) -> None:
    req = report["requests"]
    print(f"\nchaos {report['mode']} run, seed {report['seed']}: "
          f"{report['runtime_s']} s in all ({report['phases']})")  # fmt: skip
    print(f"requests: {req['total']} ({req['per_second']}/s)")
    for answer, n in req["by_answer"].items():
        print(f"  {n:6d}  {answer}")
    print("latency ms (p50 / p99 / max):")
    for kind, lat in req["latency_ms"].items():
        print(f"  {kind:11s} {lat['p50']:8.1f} {lat['p99']:8.1f} {lat['max']:8.1f}")
    faults = report["faults"]
    print(f"faults: {sum(faults['by_kind'].values())} injected ({faults['skipped']} skipped): "
          + ", ".join(f"{k} {n}" for k, n in faults["by_kind"].items()))  # fmt: skip
    calls = report["calls"]
    print(f"calls: {calls['total']} rows, {calls['answered_201']} answered 201; "
          f"final: {calls['by_final_state']}")  # fmt: skip
    sb = report["sandbox"]
    print(f"sandbox: {sb['requests_with_id']} requests, {sb['executed']} executed; "
          f"finished after deadline {sb['executed_but_finished_after_deadline']}, "
          f"idempotent repeats {sb['idempotent_repeats']}")  # fmt: skip
    print(f"processes: {report['processes']['seen']} seen, "
          f"{len(report['processes']['leftovers'])} left over")  # fmt: skip
    if report["ok"]:
        print("\nOK: no invariant violated")
        return
    print(f"\nVIOLATIONS: {report['violation_counts']}")
    for v in report["violations"][:30]:
        print("  " + json.dumps(v, default=str))
    if len(report["violations"]) > 30:
        print(f"  ... {len(report['violations']) - 30} more in the JSON report")
    if report.get("var_dir"):
        print(f"logs and database kept in {report['var_dir']}")


if __name__ == "__main__":
    sys.exit(main())
