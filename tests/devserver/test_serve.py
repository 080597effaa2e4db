"""`python manage.py serve`: the whole product in one command, and nothing left behind."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from telephony.procutil import pid_alive, wait_for
from tests.conftest import ROOT
from tests.helpers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(") ", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except OSError:
        return 0


@pytest.fixture
def serve_env() -> Iterator[dict[str, str]]:
    var = Path(tempfile.mkdtemp(prefix="tel-serve-"))  # short: it holds the Redis socket
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TELNYX_", "TELEPHONY_", "DJANGO_"))
        and k not in ("REDIS_URL", "DATABASE_URL")
    }
    env.update(
        {
            "TELEPHONY_VAR_DIR": str(var),
            "TELEPHONY_HEARTBEAT_INTERVAL": "0.2",
            "TELEPHONY_HEARTBEAT_TIMEOUT": "1",
            "TELEPHONY_SHUTDOWN_GRACE": "2",
            "PYTHONUNBUFFERED": "1",
        }
    )
    yield env
    shutil.rmtree(var, ignore_errors=True)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_serve__runs_the_product_and_stops_everything(procs, serve_env, stop_signal) -> None:
    port = free_port()
    proc = procs.manage("serve", "--port", str(port), "--workers", "1", env=serve_env)
    base = f"http://127.0.0.1:{port}"
    assert wait_for(lambda: proc.poll() is not None or _get(f"{base}/") == 200, timeout=60), (
        procs.output(proc)
    )
    assert proc.poll() is None, procs.output(proc)
    assert wait_for(lambda: _get(f"{base}/api/webrtc/status") == 200, timeout=30), procs.output(
        proc
    )
    family = _descendants(proc.pid)
    assert len(family) >= 3  # sandbox, telephony, daphne (+ workers)
    proc.send_signal(stop_signal)  # what Ctrl-C or a service manager sends
    assert proc.wait(timeout=60) == 0, procs.output(proc)
    assert wait_for(lambda: not any(pid_alive(p) for p in family), timeout=10), [
        p for p in family if pid_alive(p)
    ]
    out = procs.output(proc)
    assert f"Ready: http://127.0.0.1:{port}/" in out
    assert "Demo login: demo / demo" in out
    assert "Traceback" not in out
    assert not (Path(serve_env["TELEPHONY_VAR_DIR"]) / "redis.sock").exists()


def _serve_once(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "serve", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve__port_taken_exits_with_one_line(serve_env) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = _serve_once(serve_env, "--port", str(busy.getsockname()[1]))
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "already in use" in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_serve__unreachable_redis_exits_with_one_line(serve_env) -> None:
    result = _serve_once(
        {**serve_env, "REDIS_URL": "redis://:hunter2@127.0.0.1:1/0"}, "--port", str(free_port())
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Redis unreachable" in lines[0], result.stderr
    assert "hunter2" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout
