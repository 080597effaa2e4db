"""Two hosts on one Sentinel Redis and one PostgreSQL; SIGKILL one whole host under load.

Runs ``python -m bench.hostloss`` (bench/hostloss.py says how the hosts are built and
what is measured; docs/BENCHMARKS.md has a run's figures) and asserts its promises: the
surviving host failed nothing beyond requests in flight at the kill, every call row is
there and terminal, no process of the survivor restarted, its status shows the lost
host's workers gone, and the chaos invariants hold. Skips with one line without
PostgreSQL at 127.0.0.1:5432 (CI has it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.common import pg_problem
from tests.helpers import run_bench


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_hostloss__the_other_host_serves_on_and_nothing_is_lost(tmp_path: Path) -> None:
    problem = pg_problem()
    if problem:
        pytest.skip(problem)
    args = ["--seconds", "10", "--kill-at", "3", "--users", "2"]
    run = run_bench("bench.hostloss", args, tmp_path / "hostloss.json", timeout=400)
    report, text = run.report, run.output
    assert report["violations"] == [], text
    # Host A: whatever was not in flight at the kill succeeded.
    assert set(report["host_a"]["before"]) <= {"ok"} and set(report["host_a"]["after"]) <= {"ok"}
    assert report["host_b_201_calls_without_row"] == 0 and report["calls_non_terminal"] == 0
    assert report["host_a_processes_restarted"] == 0
    assert report["state_shows_host_b_gone_s"] is not None
    assert report["host_a"]["after"].get("ok", 0) > 0
    assert run.returncode == 0, text
