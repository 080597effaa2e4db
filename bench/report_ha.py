"""docs/BENCHMARKS.md, the last two sections: a Redis failover and a lost host (bench.failover,
bench.hostloss). Figures are measured, not targets; the promises are checked by the runs
themselves and by tests/ha/."""

from __future__ import annotations

from typing import Any

from bench.report import Check, _fmt, _header, _ok


def _row(*cells: Any) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _answers(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "none"


def failover_section(res: dict[str, Any], checks: list[Check]) -> list[str]:
    lines = ["## 9. Redis Sentinel failover under load (kill -9 the master)", ""]
    lines += _header(res.get("failover"))
    ok = _ok(res.get("failover"))
    if not ok:
        return lines
    r = ok[-1]
    checks.append(Check("Failover: calls dialled twice", r["calls_dialled_twice"], 0, "<=",
                        "calls"))  # fmt: skip
    checks.append(Check("Failover: processes restarted", r["processes_restarted"], 0, "<=",
                        "processes"))  # fmt: skip
    lines += [
        "A Sentinel cluster (master, 2 replicas, 3 Sentinels; down-after 1 s, failover timeout "
        "3 s) under the chaos run's product (sandbox, 1 supervisor with 2 workers, daphne; "
        "heartbeat 0.2 s / 1 s, request timeout 3 s). "
        f"{r['users']} users send calls, details, hangups, credentials, status and page loads, "
        "one more holds the WebSocket open and pings it every 0.3 s. The master gets SIGKILL "
        f"{r['kill_at']:g} s into {r['seconds']:g} s of load.",
        "",
        "| measure | value |",
        "|---|---|",
        _row("Sentinel: kill -> every Sentinel names a new writable master",
             f"{_fmt(r['sentinel_failover_s'])} s"),
        _row("kill -> first 503", f"{_fmt(r['first_503_after_kill_s'])} s"),
        _row("kill -> `/api/webrtc/status` `ready` again (by itself)",
             f"{_fmt(r['back_to_ready_after_kill_s'])} s"),
        _row("slowest answer while it lasted (HTTP, or a WebSocket pong: a lost one counts "
             "its 3 s wait)",
             f"{_fmt(r['slowest_answer_during_failover_s'])} s"),
        _row("requests (after the kill)", f"{r['requests']} ({r['requests_after_kill']})"),
        _row("failed after the kill, by answer", _answers(r["failed_by_answer"])),
        _row("503 reasons the web process logged", _answers(r["web_503_reasons"])),
        _row("WebSocket pings", _answers(r["ws"])),
        _row("calls dialled twice", r["calls_dialled_twice"]),
        _row("call rows: total / non-terminal / 201 without a row",
             f"{r['calls']} / {r['calls_non_terminal']} / {r['calls_201_without_row']}"),
        _row("processes restarted (supervisor count, pids before/after)",
             r["processes_restarted"]),
        f"| chaos invariants violated | {len(r['violations'])} |",
        "",
    ]  # fmt: skip
    return lines


def hostloss_section(res: dict[str, Any], checks: list[Check]) -> list[str]:
    lines = ["## 10. Two hosts, one lost (SIGKILL of its daphne, supervisor and workers)", ""]
    lines += _header(res.get("hostloss"))
    ok = _ok(res.get("hostloss"))
    if not ok:
        return lines
    r = ok[-1]
    if "skipped" in r:
        return [*lines, f"Skipped: {r['skipped']}.", ""]
    checks.append(Check("Host loss: survivor's failures not in flight",
                        sum(v for k, v in {**r["host_a"]["before"], **r["host_a"]["after"]}.items()
                            if k != "ok"), 0, "<=", "requests"))  # fmt: skip
    lines += [
        "Host A (127.0.0.1) and host B (127.0.0.2), each with its own var dir, "
        "`TELEPHONY_HOST_ID`, supervisor (2 workers) and daphne, share one Sentinel-managed "
        "Redis and one PostgreSQL database; the sandbox's webhooks go to host A. "
        f"{r['users_per_host']} users per host; host B is killed {r['kill_at']:g} s into "
        f"{r['seconds']:g} s of load.",
        "",
        "| measure | host A (survivor) | host B (killed) |",
        "|---|---|---|",
        *[
            _row(label, _answers(r["host_a"][key]), _answers(r["host_b"][key]))
            for label, key in (("done before the kill", "before"),
                               ("in flight at the kill", "in_flight"),
                               ("started after the kill", "after"))
        ],
        "",
        f"Host A's status shows host B's workers gone {_fmt(r['state_shows_host_b_gone_s'])} s "
        f"after the kill (statuses seen after it: {_answers(r['host_a_status_after'])}); "
        f"calls: {r['calls']} rows, {r['calls_non_terminal']} non-terminal, "
        f"{r['host_b_201_calls_without_row']} of host B's 201 answers without a row; host A "
        f"restarted {r['host_a_processes_restarted']} processes; chaos invariants violated "
        f"on host A's requests and every row: {len(r['violations'])}.",
        "",
    ]  # fmt: skip
    return lines
