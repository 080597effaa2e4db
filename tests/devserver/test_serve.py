"""`python manage.py serve`: the whole product in one command; telephony never takes the web
app down, and nothing is left behind.

Real processes throughout: ``serve`` on a free port in a temporary var dir, its embedded
Redis, sandbox, supervisor, workers and daphne. Every pid ever seen is killed at teardown,
also when a test fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from telephony.procutil import pid_alive, wait_for
from tests.conftest import ROOT
from tests.helpers import ProcessTracker, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

# What each child of `serve` is, by a piece of its command line.
KINDS = {
    "redis": "redis-server",
    "sandbox": "telnyx_sandbox",
    "supervisor": "telephony_supervisor",
    "web": "daphne",
}
FAST_STATUS = 2.0  # seconds: a status answer slower than this is not a "fast 503"
START = 90.0  # seconds a worker may take to start (the supervisor's start timeout too)


@dataclass
class Serve:
    """One running ``serve``: its process, its base URL, and every pid seen under it."""

    proc: subprocess.Popen[bytes]
    base: str
    procs: ProcessTracker
    seen: dict[int, psutil.Process] = field(default_factory=dict)

    def output(self) -> str:
        return self.procs.output(self.proc)

    def family(self) -> list[psutil.Process]:
        """Every live descendant now (remembered for the clean-up)."""
        try:
            found = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            found = []
        for p in found:
            self.seen.setdefault(p.pid, p)
        return found

    def child(self, kind: str) -> psutil.Process | None:
        """The direct child of that kind, if one runs."""
        for p in self.family():
            try:
                if p.ppid() == self.proc.pid and KINDS[kind] in " ".join(p.cmdline()):
                    return p
            except psutil.NoSuchProcess:
                continue
        return None

    def get(self, path: str, timeout: float = 5.0) -> httpx.Response:
        return httpx.get(self.base + path, timeout=timeout, follow_redirects=True)

    def status(self) -> tuple[int, str]:
        try:
            r = self.get("/api/webrtc/status", timeout=3.0)
        except httpx.HTTPError:
            return 0, ""
        return r.status_code, (r.json().get("status", "") if r.status_code in (200, 503) else "")

    def kill_leftovers(self) -> None:
        self.family()
        for p in self.seen.values():
            try:
                if p.is_running():  # same pid *and* start time: never a recycled pid
                    p.kill()
            except psutil.NoSuchProcess:
                pass


def make_serve_env(var: Path) -> dict[str, str]:
    """A newcomer's environment around a var dir of its own, with short intervals."""
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
            "TELEPHONY_RESTART_BACKOFF_BASE": "0.2",
            "TELEPHONY_RESTART_BACKOFF_MAX": "1",
            "TELEPHONY_SPARE_WORKERS": "0",
            # A worker importing the Telnyx SDK on a loaded 2-core machine took over the
            # default 30 s: judged hung, restarted, never ready. Slow is not hung here.
            "TELEPHONY_WORKER_START_TIMEOUT": str(START),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@pytest.fixture
def serve_env() -> Iterator[dict[str, str]]:
    var = Path(tempfile.mkdtemp(prefix="tel-serve-"))  # short: it holds the Redis socket
    yield make_serve_env(var)
    shutil.rmtree(var, ignore_errors=True)


def launch(procs: ProcessTracker, env: dict[str, str]) -> Serve:
    """Start ``serve`` and wait until ``/`` answers and the service is ready."""
    port = free_port()
    proc = procs.manage("serve", "--port", str(port), "--workers", "1", env=env)
    run = Serve(proc, f"http://127.0.0.1:{port}", procs)
    try:
        up = wait_for(lambda: proc.poll() is not None or _ok(run, "/"), timeout=60)
        assert up and proc.poll() is None, run.output()
        assert wait_for(lambda: run.status() == (200, "ready"), timeout=START), run.output()
    finally:
        run.family()  # remembered for the clean-up, also when it did not come up
    return run


@pytest.fixture
def start_serve(procs: ProcessTracker, serve_env: dict[str, str]) -> Iterator[object]:
    """Start a ``serve`` of this test's own (see :func:`launch`)."""
    runs: list[Serve] = []

    def start() -> Serve:
        runs.append(launch(procs, serve_env))
        return runs[-1]

    try:
        yield start
    finally:
        for run in runs:
            run.kill_leftovers()


@pytest.fixture(scope="module")
def shared_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    """One ``serve`` for the kill tests: each waits until it is ready again, as a person
    would before the next kill, so they need not pay for a start each (seconds of both
    cores: migrations, the sandbox, a worker importing the Telnyx SDK)."""
    var = Path(tempfile.mkdtemp(prefix="tel-serve-"))
    procs = ProcessTracker(tmp_path_factory.mktemp("serve-logs"))
    run = None
    try:
        run = launch(procs, make_serve_env(var))
        yield run
    finally:
        if run is not None:
            run.kill_leftovers()
        procs.cleanup()
        shutil.rmtree(var, ignore_errors=True)


def _ok(run: Serve, path: str) -> bool:
    try:
        return run.get(path, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


class Poller:
    """Polls ``/`` and the status endpoint in a thread, recording every answer."""

    def __init__(self, run: Serve) -> None:
        self.run = run
        self.pages: list[int] = []
        self.statuses: list[tuple[int, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        with httpx.Client(base_url=self.run.base, timeout=5.0) as client:
            while not self._stop.wait(0.05):
                try:
                    self.pages.append(client.get("/").status_code)
                except httpx.HTTPError:
                    self.pages.append(0)
                start = time.monotonic()
                try:
                    code = client.get("/api/webrtc/status").status_code
                except httpx.HTTPError:
                    code = 0
                self.statuses.append((code, time.monotonic() - start))


def _log_in_as_agent(client: httpx.Client) -> None:
    """Log in as the demo's non-staff agent, through /accounts/login/."""
    client.get("/accounts/login/")
    form = {
        "username": "agent",
        "password": "agent",
        "next": "/",
        "csrfmiddlewaretoken": client.cookies["csrftoken"],
    }
    r = client.post("/accounts/login/", data=form)
    assert r.status_code == 302 and r.headers["location"] == "/", r.text[:500]
    client.headers["X-CSRFToken"] = client.cookies["csrftoken"]


def _place_call(client: httpx.Client) -> None:
    cred = client.post("/api/webrtc/credential")
    assert cred.status_code == 201, cred.text
    assert cred.json()["credential"]["token"]
    call = client.post("/api/webrtc/call", json={"to": "+12025550143"})
    assert call.status_code == 201, call.text
    assert call.json()["call"]["status"] in ("dialing", "ringing", "answered", "completed")


# One xdist worker runs the three, so they share one serve.
@pytest.mark.xdist_group("serve_kills")
@pytest.mark.parametrize("kind", ["supervisor", "sandbox", "redis"])
def test_serve__a_killed_child_is_restarted_and_the_site_stays_up(shared_serve, kind) -> None:
    run = shared_serve
    assert wait_for(lambda: run.status() == (200, "ready"), timeout=START), run.output()
    restarts_before = run.output().count(f"serve: {kind} restarted")
    with httpx.Client(base_url=run.base, timeout=15.0) as agent:
        _log_in_as_agent(agent)
        _place_call(agent)  # state now lives in Redis, the sandbox and the database
        victim = run.child(kind)
        assert victim is not None, [p.cmdline() for p in run.family()]
        with Poller(run) as poll:
            victim.kill()  # kill -9
            restarted = f"serve: {kind} restarted"
            assert wait_for(lambda: run.output().count(restarted) > restarts_before, timeout=30), (
                run.output()
            )
            assert wait_for(lambda: run.status() == (200, "ready"), timeout=START), run.output()
            _place_call(agent)  # every process reconnected by itself
        assert run.proc.poll() is None, run.output()
    assert poll.pages and set(poll.pages) == {200}, poll.pages
    slow = [(code, round(t, 2)) for code, t in poll.statuses if t > FAST_STATUS]
    assert not slow, slow
    assert {code for code, _ in poll.statuses} <= {200, 503}, poll.statuses
    out = run.output()
    assert f"serve: {kind} exited with code -9; restarting it in" in out
    new = run.child(kind)
    assert new is not None and new.pid != victim.pid
    assert f"serve: {kind} restarted, pid {new.pid}" in out
    assert "Traceback" not in out


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl_c", "sigterm"])
def test_serve__stops_everything_in_order(start_serve, serve_env, stop_signal) -> None:
    run = start_serve()
    children = {kind: run.child(kind) for kind in KINDS}
    assert all(children.values()), children
    family = [p.pid for p in run.family()]
    assert len(family) >= 5  # redis, sandbox, supervisor, worker, daphne
    gone: dict[str, float] = {}
    if stop_signal == signal.SIGINT:
        os.killpg(run.proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the group
    else:
        run.proc.send_signal(signal.SIGTERM)  # what a service manager sends
    deadline = time.monotonic() + 60
    while len(gone) < len(children) and time.monotonic() < deadline:
        for kind, p in children.items():
            if kind not in gone and p is not None and not pid_alive(p.pid):
                gone[kind] = time.monotonic()
        time.sleep(0.005)
    assert run.proc.wait(timeout=30) == 0, run.output()
    assert sorted(gone, key=gone.__getitem__) == ["web", "supervisor", "sandbox", "redis"], gone
    assert wait_for(lambda: not any(pid_alive(p) for p in family), timeout=10), [
        p for p in family if pid_alive(p)
    ]
    out = run.output()
    assert "Ready: http://127.0.0.1:" in out
    assert "Demo login: demo / demo" in out and "Agent login: agent / agent" in out
    assert "unreachable" not in out.lower(), out
    assert "Traceback" not in out
    assert not (Path(serve_env["TELEPHONY_VAR_DIR"]) / "redis.sock").exists()


def test_serve__web_process_dying_stops_serve(start_serve) -> None:
    run = start_serve()
    family = [p.pid for p in run.family()]
    web = run.child("web")
    assert web is not None
    web.kill()
    assert run.proc.wait(timeout=60) == 1, run.output()
    assert "serve: web exited with code -9; stopping" in run.output()
    assert wait_for(lambda: not any(pid_alive(p) for p in family), timeout=10), [
        p for p in family if pid_alive(p)
    ]


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
