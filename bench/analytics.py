"""The analytics page and its CSV export over 1,000,000 generated calls, SQLite and PostgreSQL.

    python -m bench.analytics                       # both databases, 1,000,000 calls each
    python -m bench.analytics --rows 100000 --db sqlite

Each database runs in a child process of its own (Django is set up once per process): a
fresh SQLite file in a temporary directory, or a fresh PostgreSQL database
(``telephony_bench_analytics`` on ``--pg``, dropped afterwards). The child migrates,
generates the calls (bench/analytics_data.py), then times through Django's test client,
logged in as a superuser, ``--runs`` times each (median reported):

- baseline: a plain ``COUNT(*)`` of the calls in the range (the least any page must do);
- the page for today, the last 30 days, and a custom range covering the whole year (every
  row), the last also filtered to one agent;
- the CSV exports over the whole year: ``agents`` (per-agent rows) and ``calls`` (one row
  per call, 1,000,000 rows streamed), with the process's RSS growth while streaming.

Prints one JSON line last (``python -m bench`` collects it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.common import ROOT

PG_URL = "postgres://postgres@127.0.0.1:5432"
BENCH_DB = "telephony_bench_analytics"
AGENTS = ["agent1", "agent2", "agent3", "agent4", "agent5"]


def _timed(fn: Any, runs: int) -> dict[str, Any]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return {
        "median_ms": round(statistics.median(times), 1),
        "runs_ms": [round(t, 1) for t in times],
    }


def child(db: str, rows: int, runs: int) -> dict[str, Any]:
    """Set Django up on the bench database, fill it and time the views (runs in a child)."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from bench.analytics_data import insert
    from dashboard.analytics.forms import Period, project_zone
    from telephony.models import Call

    call_command("migrate", verbosity=0)
    users = [get_user_model().objects.create_user(name) for name in AGENTS]
    admin = get_user_model().objects.create_superuser("bench", password=None)
    started = time.perf_counter()
    insert(connection, rows, [u.pk for u in users])
    generate_s = round(time.perf_counter() - started, 1)
    client = Client()
    client.force_login(admin)
    today = timezone.localdate()
    first = today - timedelta(days=365)  # 366 days, the longest range the form allows
    year = {"range": "custom", "date_from": str(first), "date_to": str(today)}
    start = Period(first, today, project_zone()).start

    def get(url: str, query: dict[str, Any]) -> Any:
        response = client.get(url, query)
        assert response.status_code == 200, (url, query, response.status_code)
        return response

    def page(query: dict[str, Any]) -> None:
        get("/admin/telephony/analytics/", query)

    out: dict[str, Any] = {
        "db": db,
        "vendor": connection.vendor,
        "rows": Call.objects.count(),
        "generate_s": generate_s,
        "baseline_count_year": _timed(
            lambda: Call.objects.filter(created_at__gte=start).count(), runs
        ),
        "page": {
            "today": _timed(lambda: page({"range": "today"}), runs),
            "30d": _timed(lambda: page({"range": "30d"}), runs),
            "year": _timed(lambda: page(year), runs),
            "year_one_agent": _timed(lambda: page({**year, "agent": users[0].pk}), runs),
        },
        "year_calls_in_range": Call.objects.filter(created_at__gte=start).count(),
    }
    out["csv_agents_year"] = _timed(
        lambda: b"".join(
            get("/admin/telephony/analytics.csv", {**year, "table": "agents"}).streaming_content
        ),
        runs,
    )
    out["csv_calls_year"] = _stream_calls(get, year)
    return out


def _stream_calls(get: Any, year: dict[str, Any]) -> dict[str, Any]:
    """Stream the per-call CSV of the year: time, size, rows and the RSS growth meanwhile."""
    import psutil

    proc = psutil.Process()
    rss0 = peak = proc.memory_info().rss
    size = lines = 0
    started = time.perf_counter()
    for i, part in enumerate(
        get("/admin/telephony/analytics.csv", {**year, "table": "calls"}).streaming_content
    ):
        size += len(part)
        lines += part.count(b"\n")
        if i % 5000 == 0:
            peak = max(peak, proc.memory_info().rss)
    seconds = time.perf_counter() - started
    peak = max(peak, proc.memory_info().rss)
    return {
        "seconds": round(seconds, 2),
        "rows": lines - 1,
        "mb": round(size / 1e6, 1),
        "rss_growth_mb": round((peak - rss0) / 1e6, 1),
        "rows_per_s": round((lines - 1) / seconds),
    }


def run_child(db: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run ``child`` in a subprocess on a fresh database; its result (or an error)."""
    tmp = Path(tempfile.mkdtemp(prefix="tel-bench-analytics-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "TELEPHONY_"))}
    env.update({"TELEPHONY_VAR_DIR": str(tmp), "DJANGO_SETTINGS_MODULE": "config.settings"})
    if db == "postgres":
        _pg_admin(
            args.pg,
            f"DROP DATABASE IF EXISTS {args.pg_db} WITH (FORCE)",
            f"CREATE DATABASE {args.pg_db}",
        )
        env["DATABASE_URL"] = f"{args.pg}/{args.pg_db}"
    else:
        env["DATABASE_URL"] = f"sqlite:///{tmp / 'bench.sqlite3'}"
    argv = [sys.executable, "-m", "bench.analytics", "--child", db,
            "--rows", str(args.rows), "--runs", str(args.runs)]  # fmt: skip
    try:
        proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, timeout=1800)
        lines = [ln for ln in proc.stdout.decode().splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            return {"db": db, "error": proc.stderr.decode()[-1500:]}
        return dict(json.loads(lines[-1]))
    finally:
        if db == "postgres":
            _pg_admin(args.pg, f"DROP DATABASE IF EXISTS {args.pg_db} WITH (FORCE)")
        for f in sorted(tmp.rglob("*"), reverse=True):
            f.unlink() if f.is_file() else f.rmdir()
        tmp.rmdir()


def _pg_admin(url: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(f"{url}/postgres", autocommit=True) as conn:
        for sql in statements:
            conn.execute(sql)


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.analytics", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--db", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"]
    )
    parser.add_argument("--pg", default=PG_URL, help="PostgreSQL server URL, without database")
    parser.add_argument("--pg-db", default=BENCH_DB, help="the bench database (dropped after)")
    parser.add_argument("--child", choices=["sqlite", "postgres"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.rows, args.runs)), flush=True)
        return 0
    results = {}
    for db in args.db:  # each result logged at once: a later failure must not lose it
        results[db] = run_child(db, args)
        print(f"[analytics] {db}: {json.dumps(results[db])}", file=sys.stderr, flush=True)
    print(json.dumps({"rows": args.rows, "runs": args.runs, "by_db": results}), flush=True)
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
