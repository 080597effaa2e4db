"""``manage.py telephony_status``: the state for people and scripts, exit 0 when available."""

from __future__ import annotations

import json
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import call_command

from telephony.connections import get_redis, reset_clients
from telephony.keys import Keys
from telephony.protocol import ControlCommand, Heartbeat, LastEvent, SupervisorRecord
from telephony.state import now_ms
from tests.conftest import ROOT

pytestmark = pytest.mark.django_db(transaction=True)


def live_service(workers: int = 2, desired: int = 2, sid: str = "h1:100") -> None:
    """Fresh records as a running supervisor and its workers write them."""
    r = get_redis()
    sup = SupervisorRecord(
        id=sid,
        host="h1",
        pid=100,
        state="running",
        desired=desired,
        alive=workers,
        restarts=1,
        restarts_in_window=1,
        last_event=LastEvent(kind="worker_restarted", message="Worker restarted", at=now_ms()),
        updated_at=now_ms(),
    )
    r.set(Keys.supervisor(sid), sup.encode(), px=60_000)
    r.zadd(Keys.supervisors(), {sid: now_ms() + 60_000})
    for i in range(workers):
        wid = f"h1:{101 + i}"
        beat = Heartbeat(
            id=wid,
            pid=101 + i,
            supervisor_id=sid,
            beat_at=now_ms(),
            handled=42,
            failed=1,
            in_flight=3,
            rss_mb=117.4,
        )
        r.set(Keys.worker(wid), beat.encode(), px=60_000)
        r.zadd(Keys.workers(), {wid: now_ms() + 60_000})


def run(*args: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("telephony_status", *args, stdout=out, stderr=err)
    return int(exit_.value.code or 0), out.getvalue(), err.getvalue()


def test_status__table_when_ready() -> None:
    live_service()
    code, out, _ = run()
    assert code == 0
    assert "READY" in out and "workers 2/2" in out
    assert "Supervisor h1:100  running" in out and "restarts 1 (1 in window)" in out
    assert "h1:101" in out and "h1:102" in out and "117.4" in out and "closed" in out


def test_status__json_when_degraded_is_still_available() -> None:
    live_service(workers=1, desired=2)
    code, out, _ = run("--json")
    data = json.loads(out)
    assert code == 0
    assert data["status"] == "degraded" and data["healthy"] is True
    assert (data["alive"], data["desired"]) == (1, 2) and data["reason"] == "workers_missing"


def test_status__exit_1_when_nothing_runs() -> None:
    code, out, _ = run("--json")
    assert code == 1 and json.loads(out)["status"] == "unavailable"
    code, out, _ = run()
    assert code == 1 and "UNAVAILABLE" in out and "no_worker" in out


def test_status__redis_unreachable_is_one_line_and_exit_1(settings) -> None:
    settings.REDIS_URL = "unix:///tmp/no-such-telephony-redis.sock"
    reset_clients()
    code, out, err = run()
    assert code == 1 and out == ""
    assert err.strip().splitlines() == [
        "error: Redis unreachable at unix:///tmp/no-such-telephony-redis.sock"
    ]
    code, _, err = run("--scale", "2")
    assert code == 1 and "Traceback" not in err and "Redis unreachable" in err


def test_status__actions_say_what_they_reached() -> None:
    code, _, err = run("--restart")
    assert code == 1 and "no live supervisor reached" in err
    live_service()
    code, out, _ = run("--scale", "3")
    assert code == 0 and out.strip() == "scale to 3 sent to: h1:100"
    code, out, _ = run("--reset", "--json")
    assert code == 0 and json.loads(out) == {"action": "reset", "reached": ["h1:100"]}
    sent = [ControlCommand.decode(c).cmd for c in get_redis().lrange(Keys.control("h1:100"), 0, -1)]
    assert sent == ["scale", "reset"]


def test_status__exit_codes_from_a_real_process(subprocess_env) -> None:
    def status() -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "manage.py", "telephony_status", "--json"]
        return subprocess.run(
            argv, cwd=ROOT, env=subprocess_env, capture_output=True, text=True, timeout=60
        )

    down = status()
    assert down.returncode == 1 and json.loads(down.stdout)["status"] == "unavailable"
    live_service()
    up = status()
    assert up.returncode == 0 and json.loads(up.stdout)["status"] == "ready", up.stderr
