"""``python -m bench.failover``: kill -9 the Redis master under load; Sentinel fails over.

    python -m bench.failover [--seconds N] [--kill-at S] [--users U] [--report PATH]

A real Sentinel cluster (:mod:`bench.sentinel_cluster`: master, replica, 3 Sentinels,
down after 1 s) under the product as the chaos run starts it (:class:`bench.chaos_procs.Stack`:
sandbox, one supervisor with two workers, daphne), the chaos run's users (calls, call
details, hangups, credentials, status, the page) plus one user holding the WebSocket
open and pinging it. At ``--kill-at`` seconds the master gets SIGKILL. Measured: time
to the first 503, time until the status is ``ready`` again, failures by answer and by
the web process's logged reason, calls dialled twice, call rows lost or left
non-terminal, processes restarted. Then the chaos run's invariants are checked on the
same evidence. Exit 0 only when none was violated and nothing restarted.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from bench.chaos import (
    PASSWORD,
    _close_django,
    _collect,
    _setup_django,
    _wait_leftovers,
    _wait_recovered,
    _wait_settled,
)
from bench.chaos_check import TERMINAL, Evidence, check_all
from bench.chaos_load import Load
from bench.chaos_procs import PRODUCT_SETTINGS, Stack
from bench.common import machine
from bench.failover_ws import WsWatcher
from bench.sentinel_cluster import SentinelCluster


class StatusProbe(threading.Thread):
    """GET /api/webrtc/status every ``interval`` s: (epoch, HTTP status, body status, alive)."""

    def __init__(self, base: str, interval: float = 0.05) -> None:
        super().__init__(name="failover-probe", daemon=True)
        self.url, self.interval = f"{base}/api/webrtc/status", interval
        self.samples: list[tuple[float, int, str, int]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(self.interval):
            at = time.time()
            try:
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    code, body = r.status, r.read()
            except urllib.error.HTTPError as e:
                code, body = e.code, e.read()
            except OSError:
                code, body = 0, b"{}"
            try:
                doc = json.loads(body)
                status, alive = str(doc.get("status")), int(doc["workers"]["alive"])
            except (ValueError, KeyError, TypeError):
                status, alive = "?", -1
            self.samples.append((at, code, status, alive))


def run(*, seconds: float, kill_at: float, users: int, seed: int) -> dict[str, Any]:
    # Two replicas: after the failover one is left to confirm claims (TELEPHONY_CLAIM_REPLICAS
    # is 1); with one replica, every request would be refused until the old master returns.
    cluster = SentinelCluster(replicas=2).start()
    # A loaded 2-core machine can take over 20 s to import a worker: wait longer.
    stack = Stack(
        seed=seed,
        extra_env={
            **cluster.env(),
            "TELEPHONY_WORKER_START_TIMEOUT": "90",
            "TELEPHONY_SPARE_WORKERS": "0",
        },
    )
    probe: StatusProbe | None = None
    load: Load | None = None
    out: dict[str, Any] = {}
    began = time.monotonic()
    phases: dict[str, float] = {}
    try:
        stack.start()
        phases["start_s"] = round(time.monotonic() - began, 1)
        ids = _setup_django(stack, users + 1)
        names = sorted(ids)
        timeout = float(PRODUCT_SETTINGS["TELEPHONY_REQUEST_TIMEOUT"])
        load = Load(stack.base_url, [(n, PASSWORD) for n in names[:-1]], seed=seed,
                    client_timeout=timeout + 11.0)  # fmt: skip
        load.users.append(WsWatcher(load, names[-1], PASSWORD))
        load.start()
        before = _pids(stack)
        probe = StatusProbe(stack.base_url)
        probe.start()
        t0 = load.begin(seconds)
        time.sleep(max(0.0, t0 + kill_at - time.time()))
        killed_at = time.time()
        old = cluster.kill_master()
        out["sentinel_failover_s"] = round(cluster.wait_new_master(old, timeout=30), 2)
        load.join(timeout=seconds + timeout + 20)
        phases["load_s"] = round(time.monotonic() - began - phases["start_s"], 1)
        out["recovered"] = _wait_recovered(stack)
        time.sleep(0.5)  # a few more probe samples after recovery
        probe.halt.set()
        out["settled"] = _wait_settled(stack)
        out["collected"] = _collect(stack)
        out["pids_before"], out["pids_after"] = before, _pids(stack)
        out["restarts"] = _restarts(stack)
        out["killed_at"] = killed_at
    finally:
        if probe is not None:
            probe.halt.set()
        stopping = time.monotonic()
        ended = stack.shutdown()
        _close_django()
        cluster.stop()  # before the orphan check: its servers are our children too
        leftovers = _wait_leftovers(stack)
        stack.kill_leftovers()
        stack.watch.stop()
        phases["shutdown_s"] = round(time.monotonic() - stopping, 1)
    records = load.records if load else []
    collected = out["collected"]
    evidence = Evidence(
        records=[r for r in records if r.kind != "ws"], request_timeout=timeout, margin=1.0,
        daphne_pid=out["pids_before"]["daphne"], daphne_alive_at_end=True,
        daphne_exit=ended.get("daphne"), calls=collected["calls"], users=ids,
        sandbox_log=collected["sandbox_log"], webhooks=collected["webhooks"],
        live_calls=collected["live_calls"], leftovers=leftovers,
        recovered=out["recovered"][0], recovery_detail=out["recovered"][1],
    )  # fmt: skip
    violations, sandbox = check_all(evidence)
    report = _report(out, records, probe.samples if probe else [], violations, sandbox, stack)
    phases["total_s"] = round(time.monotonic() - began, 1)
    report.update(seconds=seconds, kill_at=kill_at, users=users, machine=machine(), phases=phases)
    if report["ok"]:
        stack.remove()
    else:
        report["var_dir"] = str(stack.var)
    return report


def _pids(stack: Stack) -> dict[str, Any]:
    assert stack.daphne is not None and stack.supervisor is not None
    return {
        "daphne": stack.daphne.pid,
        "supervisor": stack.supervisor.pid,
        "workers": sorted(p.pid for p in stack.workers()),
    }


def _restarts(stack: Stack) -> int:
    from telephony.state import read_state

    return sum(s.restarts for s in read_state().supervisors)


def _report(
    out: dict[str, Any],
    records: list[Any],
    samples: list[tuple[float, int, str, int]],
    violations: list[dict[str, Any]],
    sandbox: dict[str, Any],
    stack: Stack,
) -> dict[str, Any]:
    killed = out["killed_at"]
    after = [r for r in records if r.started + r.elapsed >= killed]
    first_503 = min((r.started + r.elapsed for r in after if r.status == 503), default=None)
    probe_503 = min((s[0] for s in samples if s[0] >= killed and s[1] == 503), default=None)
    firsts = [t for t in (first_503, probe_503) if t is not None]
    not_ready = [s[0] for s in samples if s[0] >= killed and s[2] != "ready"]
    back = min((s[0] for s in samples if not_ready and s[0] > max(not_ready) and s[2] == "ready"),
               default=None)  # fmt: skip
    failed = Counter(
        f"{r.kind} {r.status or r.error} {r.code or ''}".strip()
        for r in after
        if r.status is None or r.status >= 500
    )
    calls = out["collected"]["calls"].values()
    twice = [v for v in violations if v["invariant"] == "5-at-most-once"]
    pids_same = out["pids_before"] == out["pids_after"]
    during = [r.elapsed for r in after if r.started < (back or killed + 30)]
    return {
        "ok": not violations and pids_same and out["restarts"] == 0,
        "sentinel_failover_s": out["sentinel_failover_s"],
        "first_503_after_kill_s": round(min(firsts) - killed, 2) if firsts else None,
        "back_to_ready_after_kill_s": round(back - killed, 2) if back else None,
        # Why, when it is not back: the states read after the kill, and the last ones.
        "statuses_after_kill": dict(Counter(s[2] for s in samples if s[0] >= killed)),
        "last_statuses": [s[2] for s in samples[-5:]],
        "requests": len(records),
        "requests_after_kill": len(after),
        "slowest_answer_during_failover_s": round(max(during), 2) if during else None,
        "failed_by_answer": dict(sorted(failed.items())),
        "web_503_reasons": _logged_reasons(stack),
        "ws": Counter(f"{r.status or r.error}" for r in records if r.kind == "ws"),
        "calls": len(out["collected"]["calls"]),
        "calls_dialled_twice": len(twice),
        "calls_non_terminal": sum(1 for c in calls if c["status"] not in TERMINAL),
        "calls_201_without_row": sum(1 for v in violations if v["invariant"] == "3-record"),
        "processes_restarted": out["restarts"] + (0 if pids_same else 1),
        "pids": {"before": out["pids_before"], "after": out["pids_after"]},
        "sandbox": sandbox,
        "violations": violations,
    }


def _logged_reasons(stack: Stack) -> dict[str, int]:
    """The reasons the web process logged with its 503 answers."""
    found: Counter[str] = Counter()
    for log in stack.var.glob("*-daphne.log"):
        text = log.read_text(errors="replace")
        for m in re.finditer(r"-> service_unavailable \(([a-z_]+)\)", text):
            found[m.group(1)] += 1
    return dict(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.failover", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--kill-at", type=float, default=6.0)
    parser.add_argument("--users", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--report", type=Path)
    args = parser.parse_args(argv)
    report = run(seconds=args.seconds, kill_at=args.kill_at, users=args.users, seed=args.seed)
    return emit(report, args.report)


def emit(report: dict[str, Any], path: Path | None) -> int:
    """Write the report (``--report``), a readable summary to stderr and the report as one
    JSON line, last, on stdout (what ``python -m bench`` reads). The exit status."""
    if path:
        path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    if "skipped" in report:
        print(f"skipped: {report['skipped']}", file=sys.stderr)
    else:
        summary = {k: v for k, v in report.items() if k not in ("violations", "sandbox", "machine")}
        print(json.dumps(summary, indent=2, default=str), file=sys.stderr)
        if report["violations"]:
            print(json.dumps(report["violations"][:20], indent=2, default=str), file=sys.stderr)
    print(json.dumps(report, default=str))
    return 0 if report.get("ok", "skipped" in report) else 1


if __name__ == "__main__":
    sys.exit(main())
