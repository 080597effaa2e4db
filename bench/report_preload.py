"""The preloaded-workers section of docs/BENCHMARKS.md (``bench/preload_bench.py``)."""

from __future__ import annotations

from typing import Any

from bench.report import Check, _fmt, _header, _ok, _runs


def preload_section(res: dict[str, Any], checks: list[Check]) -> list[str]:
    lines = [
        "## 4b. Preloaded workers: a wipe-out, and what one more worker costs",
        "",
        *_header(res.get("preload")),
    ]
    ok = _ok(res.get("preload"))
    if not ok:
        return lines
    r = ok[-1]
    cold, wipe, mem, st = r["cold_start"], r["wipe_out"], r["memory"], r["settings"]
    cold_s, wipe_s = cold["median_start_s"], wipe["median_kill_to_success_s"]
    speedup = wipe["speedup_vs_cold"]
    uss, cold_rss = mem["median_worker_uss_mb"], cold["median_rss_mb"]
    share = mem["uss_over_cold_rss"]
    pct = round(share * 100, 1) if share else None
    checks += [
        Check("Wipe-out: kill -9 every worker and the spare, to the next success", wipe_s,
              1.0, "<=", "s", f"{_fmt(speedup, 1)}x faster than a cold start"),
        Check("Wipe-out vs a cold `telephony_worker` start (speed-up)", speedup, 10.0, ">=",
              "x", f"cold start {_fmt(cold_s)} s"),
        Check("Marginal memory of one more worker (USS / cold worker's RSS)", pct, 25.0, "<=",
              "%", f"{_fmt(uss, 1)} MB of {_fmt(cold_rss, 1)} MB"),
    ]  # fmt: skip
    runs = wipe["runs"]
    lines += [
        f"A fresh `telephony_supervisor` per run: 2 workers and 1 spare forked from the worker "
        f"template, default settings, {st['callers']} callers of `credential.create` "
        f"(deadline {st['timeout_s']} s) through the service client. Every worker and the "
        "spare get SIGKILL at the same moment; the figure is the kill to the first success "
        "of a request sent after it. Baseline, same run: a plain `telephony_worker` started "
        "alone, spawn to first heartbeat.",
        "",
        "| figure | median | runs | baseline (same run) | ratio |",
        "|---|---|---|---|---|",
        f"| wipe-out -> next success | {_fmt(wipe_s)} s | "
        f"{_runs([x['kill_to_success_s'] for x in runs])} | cold start {_fmt(cold_s)} s "
        f"({_runs([x['start_s'] for x in cold['runs']])}) | {_fmt(speedup, 1)}x faster |",
        f"| wipe-out -> both workers serving | "
        f"{_fmt(_mid([x['kill_to_both_workers_s'] for x in runs]))} s | "
        f"{_runs([x['kill_to_both_workers_s'] for x in runs])} | | |",
        f"| one more worker: USS | {_fmt(uss, 1)} MB | | cold worker RSS {_fmt(cold_rss, 1)} MB "
        f"| {_fmt(share * 100 if share else None, 1)} % |",
        f"| one more worker: PSS / RSS | {_fmt(mem['median_worker_pss_mb'], 1)} / "
        f"{_fmt(mem['median_worker_rss_mb'], 1)} MB | | | |",
        f"| the template (paid once per supervisor): RSS | "
        f"{_fmt(mem['median_template_rss_mb'], 1)} MB | | | |",
        "",
        "Requests failed after the kill: "
        f"{_runs([x['failed_after_kill'] for x in runs], 0)} (codes "
        f"{sorted({c for x in runs for c in x['failure_codes']})}): `worker_timeout` (504) "
        "for those the killed workers had taken; `service_unavailable` (503, at once) only "
        "once the dead workers' heartbeats expire, which a forked restart beats: requests "
        "sent meanwhile wait on the channel for the first new worker. Memory is read from "
        f"`/proc/<pid>/smaps_rollup` after {st['warm_requests']} requests. Where the time of a "
        "wipe-out goes: the exit is seen within "
        f"{_runs([x['kill_to_exit_seen_s'] for x in runs])} s; one forked restart goes at once "
        "(nothing serves, the template is ready), the fork takes milliseconds, and the rest "
        "is the new worker's first heartbeat and the web side's state cache (250 ms).",
        "",
    ]
    return lines


def _mid(values: list[Any]) -> float | None:
    nums = sorted(v for v in values if isinstance(v, int | float))
    return nums[len(nums) // 2] if nums else None
