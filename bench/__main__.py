"""``make bench`` / ``python -m bench``: every benchmark in one go, then docs/BENCHMARKS.md.

Each benchmark runs as its own subprocess (``python -m bench.<name> ...``) in its own
process group, and prints one JSON line last; a benchmark that fails or overruns its
time limit is recorded as an error, its process group is killed, and the rest still
run. The worker and HTTP benchmarks are repeated ``--repeat`` times, interleaved, so a
burst of noise from other work on the machine hits the product and its baselines alike;
the report gives the median of the repetitions.

    python -m bench                       # everything, default sizes (~10-15 min on 2 cores)
    python -m bench --quick               # small sizes; prints, writes nothing unless --write
    python -m bench --only supervisor     # one or more of: worker plain worker100 http
                                          #   onehop supervisor softphone recording
                                          #   analytics failover hostloss
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import ROOT, machine
from bench.report import DOC, render, stored_results

NAMES = (
    "worker",
    "plain",
    "worker100",
    "http",
    "onehop",
    "supervisor",
    "preload",
    "softphone",
    "recording",
    "analytics",
    "failover",
    "hostloss",
)

# These repeat their own runs inside, or need none.
OWN_RUNS = (
    "supervisor",
    "preload",
    "softphone",
    "recording",
    "analytics",
    "failover",
    "hostloss",
)

# name -> (module, full-size args, quick args, time limit in seconds)
SPECS: dict[str, tuple[str, list[str], list[str], float]] = {
    "worker": (
        "bench.worker_bench",
        ["--n", "1000", "--seconds", "8", "--runs", "1"],
        ["--n", "200", "--seconds", "3", "--runs", "1"],
        240,
    ),
    "plain": (
        "bench.worker_bench",
        ["--plain", "--seconds", "8"],
        ["--plain", "--seconds", "3"],
        180,
    ),
    "worker100": (
        "bench.worker_bench",
        ["--concurrency", "100", "--n", "1000", "--seconds", "8", "--runs", "1"],
        ["--concurrency", "100", "--n", "200", "--seconds", "3", "--runs", "1"],
        240,
    ),
    "http": (
        "bench.http_bench",
        ["--n", "500", "--seconds", "4", "--runs", "3"],
        ["--n", "200", "--seconds", "2", "--runs", "1"],
        240,
    ),
    "onehop": (
        "bench.onehop_bench",
        ["--n", "1000", "--renders", "100"],
        ["--n", "200", "--renders", "20"],
        600,
    ),
    "supervisor": (
        "bench.supervisor_bench",
        ["--runs", "5", "--kill-runs", "3", "--fast"],
        ["--runs", "2", "--kill-runs", "1", "--cold-runs", "1"],
        1500,
    ),
    "analytics": (
        "bench.analytics",
        ["--rows", "1000000", "--runs", "3"],
        ["--rows", "50000", "--runs", "1"],
        2400,
    ),
    "preload": (
        "bench.preload_bench",
        ["--runs", "5", "--cold-runs", "3"],
        ["--runs", "2", "--cold-runs", "1"],
        1200,
    ),
    "softphone": (
        "bench.softphone_bench",
        ["--runs", "5", "--latencies", "0", "200"],
        ["--runs", "2", "--latencies", "0", "200"],
        600,
    ),
    "recording": (
        "bench.recording_download",
        ["--size-mb", "100", "--runs", "3"],
        ["--size-mb", "20", "--runs", "1"],
        900,
    ),
    "failover": ("bench.failover", [], ["--seconds", "12", "--kill-at", "4", "--users", "4"], 600),
    "hostloss": ("bench.hostloss", [], ["--seconds", "10", "--kill-at", "3", "--users", "2"], 900),
}


def run_one(name: str, quick: bool, logs: Path) -> dict[str, Any]:
    """Run one benchmark subprocess; its parsed JSON result, or ``{"error": ...}``."""
    module, full, small, limit = SPECS[name]
    argv = [sys.executable, "-m", module, *(small if quick else full)]
    command = "python -m " + " ".join([module, *(small if quick else full)])
    log = logs / f"{name}-{int(time.time() * 1000)}.log"
    started, load_before = time.monotonic(), os.getloadavg()[0]
    print(f"[bench] {command}", flush=True)
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, start_new_session=True
        )
        try:
            out, _ = proc.communicate(timeout=limit)
            error = "" if proc.returncode == 0 else f"exit status {proc.returncode}"
        except subprocess.TimeoutExpired:
            out, error = b"", f"no result within {limit:.0f} s"
        except BaseException:  # Ctrl-C: still end the whole group, then stop
            _kill_group(proc)
            raise
        finally:
            _kill_group(proc)
    seconds = round(time.monotonic() - started, 1)
    result: dict[str, Any] = {
        "command": command,
        "seconds": seconds,
        "load": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # 1-min, before/after
    }
    lines = [ln for ln in out.decode(errors="replace").splitlines() if ln.startswith("{")]
    if not error:
        try:
            result["result"] = json.loads(lines[-1])
        except (IndexError, ValueError):
            error = "no JSON result line on stdout"
    if error:
        tail = log.read_text(errors="replace")[-1500:]
        result["error"] = error
        print(f"[bench] {name} FAILED ({error}); log {log}:\n{tail}", flush=True)
    else:
        print(f"[bench] {name} done in {seconds:.0f} s", flush=True)
    return result


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """End the benchmark and everything it started (its own process group)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; a SIGKILL makes sure no straggler of the group survives.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=NAMES, help="run only these benchmarks")
    parser.add_argument("--quick", action="store_true", help="small sizes, for iteration")
    parser.add_argument("--repeat", type=int, default=None, help="repetitions (default 3; 1 quick)")
    parser.add_argument("--write", action="store_true", help="write the report even with --quick")
    parser.add_argument("--no-write", action="store_true", help="do not write docs/BENCHMARKS.md")
    args = parser.parse_args()
    names = [n for n in NAMES if n in (args.only or NAMES)]
    repeat = args.repeat or (1 if args.quick else 3)
    write = not args.no_write and (args.write or not args.quick)
    logs = Path(tempfile.mkdtemp(prefix="tel-bench-logs-"))
    started = time.monotonic()
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for _ in range(repeat):  # interleaved: noise hits product and baselines alike
        for name in names:
            if name not in OWN_RUNS:  # these repeat their own runs inside
                runs[name].append(run_one(name, args.quick, logs))
    for name in OWN_RUNS:
        if name in names:
            runs[name].append(run_one(name, args.quick, logs))
    total = round(time.monotonic() - started, 1)
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    fresh = {
        name: {"machine": {**machine(), "date": now}, "quick": args.quick, "runs": rs}
        for name, rs in runs.items()
    }
    stored = stored_results() if args.only else {}
    meta = stored.pop("_meta", {}) if args.only else {"total_seconds": total, "date": now}
    text = render({**stored, **fresh, "_meta": meta})
    if write:
        DOC.write_text(text)
        print(f"[bench] wrote {DOC.relative_to(ROOT)} ({total:.0f} s in all)", flush=True)
    else:
        print(text)
    failed = [n for n, rs in runs.items() if any("error" in r for r in rs)]
    if failed:
        print(f"[bench] failed: {', '.join(failed)}; logs kept in {logs}", flush=True)
        return 1
    for log in logs.iterdir():
        log.unlink()
    logs.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
