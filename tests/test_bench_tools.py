"""The benchmark's own tools that a closing note's figures come from."""

from __future__ import annotations

from pathlib import Path

from bench.spy_summary import shares


def test_spy_summary__shares_of_busy_samples_without_the_idle_ones(tmp_path: Path) -> None:
    profile = tmp_path / "spy.txt"
    profile.write_text(
        "main (x.py:1);view (api.py:3);get_user (auth.py:9);execute (db/backends/b.py:2) 30\n"
        "main (x.py:1);view (api.py:3);dumps (json.py:1) 10\n"
        "_bootstrap (threading.py:1);_worker (concurrent/futures/thread.py:81) 500\n"
        "run (base_events.py:1);EpollSelector.select (selectors.py:468) 200\n"
        "garbage\n"
    )
    busy, found = shares(profile, ["get_user", "db/backends", "api.py", "nothing"])
    assert busy == 40
    assert found == {"get_user": 0.75, "db/backends": 0.75, "api.py": 1.0, "nothing": 0.0}
