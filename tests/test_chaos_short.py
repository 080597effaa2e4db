"""`make chaos-short` as a test: the whole product under load and faults keeps its promises.

Runs ``python -m bench.chaos --short`` as a subprocess (it starts and stops its own Redis,
sandbox, supervisor and daphne in a temporary directory) and reads its JSON report. The
invariants themselves are defined and documented in bench/chaos_check.py and
docs/CHAOS.md; this test only insists that none was violated, that every kind of fault
was really injected, and that nothing was left running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.chaos_faults import KINDS
from tests.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300), pytest.mark.xdist_group("supervisors")]


def test_chaos_short__no_invariant_violated(tmp_path: Path) -> None:
    report_path = tmp_path / "chaos.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.chaos", "--short", "--report", str(report_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=270)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # only if it is still there
        except ProcessLookupError:
            pass
        proc.wait()
    text = output.decode(errors="replace")
    assert report_path.exists(), text[-4000:]
    report = json.loads(report_path.read_text())
    assert report["violations"] == [], text[-4000:]
    assert proc.returncode == 0, text[-4000:]
    assert report["faults"]["skipped"] == 0
    assert all(report["faults"]["by_kind"][kind] >= 1 for kind in KINDS), report["faults"]
    assert report["processes"]["leftovers"] == []
    assert report["requests"]["total"] > 200
