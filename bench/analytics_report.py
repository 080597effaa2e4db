"""The analytics section of docs/BENCHMARKS.md (``python -m bench.analytics``'s results)."""

from __future__ import annotations

from typing import Any

from bench.report import Check, _fmt, _header, _ok

PAGE_TARGET_MS = 1000.0  # the year's page on PostgreSQL
PAGES = [("today", "today"), ("30d", "last 30 days"), ("year", "366 days (every row)"),
         ("year_one_agent", "366 days, one agent")]  # fmt: skip


def analytics_section(res: dict[str, Any], checks: list[Check]) -> list[str]:
    """Page and CSV timings per database, against a plain COUNT(*) of the same range."""
    lines = ["## 8. Analytics page and CSV export, 1,000,000 calls", ""]
    lines += _header(res.get("analytics"))
    ok = _ok(res.get("analytics"))
    if not ok:
        return lines
    r = ok[-1]
    dbs = {db: v for db, v in r["by_db"].items() if "error" not in v}
    lines += [
        f"{r['rows']:,} generated calls over the year before the run (five agents, realistic "
        "outcome mix, written in the order they were placed; `bench/analytics_data.py`), in a "
        "fresh database per engine: SQLite file, "
        "PostgreSQL 127.0.0.1:5432 (database `telephony_bench_analytics`, dropped after). Each "
        "view through Django's test client as a logged-in superuser, template rendering "
        f"included; median of {r['runs']} runs. Baseline: `COUNT(*)` of the year's calls.",
        "",
        "| measurement | " + " | ".join(dbs) + " |",
        "|---|" + "---|" * len(dbs),
        "| rows generated in (s) | "
        + " | ".join(_fmt(v["generate_s"], 1) for v in dbs.values())
        + " |",
        "| baseline: COUNT(*) over 366 days (ms) | "
        + " | ".join(_fmt(v["baseline_count_year"]["median_ms"], 1) for v in dbs.values())
        + " |",
    ]
    for key, label in PAGES:
        cells = [_fmt(v["page"][key]["median_ms"], 0) for v in dbs.values()]
        lines.append(f"| page, {label} (ms) | " + " | ".join(cells) + " |")
    lines += [
        "| CSV agents, 366 days (ms) | "
        + " | ".join(_fmt(v["csv_agents_year"]["median_ms"], 0) for v in dbs.values())
        + " |",
        "| CSV every call, 366 days: s / rows / MB | "
        + " | ".join(
            f"{_fmt(c['seconds'], 1)} / {c['rows']:,} / {_fmt(c['mb'], 0)}"
            for c in (v["csv_calls_year"] for v in dbs.values())
        )
        + " |",
        "| CSV every call: RSS growth while streaming (MB) | "
        + " | ".join(_fmt(v["csv_calls_year"]["rss_growth_mb"], 1) for v in dbs.values())
        + " |",
        "",
    ]
    for db in ("sqlite", "postgres"):
        if db not in r["by_db"]:
            lines += [f"{db}: not run in this pass (`--db`).", ""]
    for db, v in r["by_db"].items():
        if "error" in v:
            lines += [f"{db}: failed: `{v['error'][-300:]}`", ""]
    pg = dbs.get("postgres")
    if pg:
        base = pg["baseline_count_year"]["median_ms"]
        page = pg["page"]["year"]["median_ms"]
        checks.append(
            Check("Analytics page, 366 days of 1M calls, PostgreSQL", page, PAGE_TARGET_MS,
                  "<=", "ms", f"{page / base:.0f}x a plain COUNT(*) ({base:g} ms)" if base else "")
        )  # fmt: skip
    return lines
