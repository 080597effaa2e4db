"""Shared bench plumbing: an isolated product environment, processes by pid, statistics.

Each benchmark runs against its own embedded Redis, SQLite file and sandbox under a
temporary directory, so it never touches a developer's var/ and leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
# Celery and py-spy, the benchmark's peers and profiler (`make bench-deps`), never in the venv.
DEPS = ROOT / "var" / "bench-deps"
T = TypeVar("T")


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago (the bench's one copy)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (0-100), nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Env:
    """An isolated product environment for one benchmark."""

    var: Path
    redis_url: str
    environ: dict[str, str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(
        self, *argv: str, name: str, extra: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        from telephony.procutil import die_with_parent

        log = open(self.var / f"{name}-{len(self.procs)}.log", "wb")
        proc = subprocess.Popen(
            list(argv),
            cwd=ROOT,
            env={**self.environ, **(extra or {})},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Killed with the benchmark even when it gets no chance to clean up (SIGKILL).
            preexec_fn=die_with_parent(signal.SIGTERM),
        )
        log.close()
        self.procs.append(proc)
        return proc

    def manage(
        self, *args: str, name: str, extra: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        return self.start(sys.executable, "manage.py", *args, name=name, extra=extra)

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(proc.pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
                try:
                    proc.wait(timeout=10)
                    break
                except subprocess.TimeoutExpired:
                    continue


@contextmanager
def product_env(**settings: str) -> Iterator[Env]:
    """Embedded Redis + migrated SQLite in a temp dir; Django configured for it in-process."""
    from devserver.embedded_redis import EmbeddedRedis

    # SIGTERM (``python -m bench`` ending an overrunning benchmark) unwinds through the
    # ``finally`` below instead of killing the process on the spot.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    var = Path(tempfile.mkdtemp(prefix="tel-bench-"))
    redis = EmbeddedRedis(var / "r.sock").start()
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TELNYX_", "TELEPHONY_", "DJANGO_"))
    }
    base.pop("DATABASE_URL", None)
    environ = {
        **base,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "TELEPHONY_VAR_DIR": str(var),
        "REDIS_URL": redis.url,
        "DJANGO_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        **settings,
    }
    env = Env(var=var, redis_url=redis.url, environ=environ)
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=environ, check=True
        )
        yield env
    finally:
        env.stop_all()
        redis.stop()
        shutil.rmtree(var, ignore_errors=True)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def setup_django(env: Env) -> None:
    """Configure Django in this process for ``env`` (call once per process)."""
    os.environ.update(env.environ)
    import django

    django.setup()


def wait_for_workers(n: int, timeout: float = 60) -> None:
    from telephony.state import read_state

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if read_state().alive >= n:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{n} workers did not come up within {timeout} s")


def peak_rss_mb(pid: int) -> float:
    """Peak resident set (VmHWM) of a live process, in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return float("nan")


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` without its final cancel-and-wait for leftover tasks.

    On Python 3.11 a channels-redis reply receive can lose its cancellation and never end
    (see bench/supervisor_bench.py); ``asyncio.run`` would then wait for it forever.
    """
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def emit(result: dict[str, Any]) -> None:
    """Benchmarks run as subprocesses and print one JSON line as their last output."""
    print(json.dumps(result), flush=True)


def profile(pid: int, seconds: float, out: str) -> subprocess.Popen[bytes]:
    """py-spy on a server process while the caller drives it (raw stacks, 500 Hz, idle
    excluded); it writes ``out`` on SIGINT. ``make bench-deps`` installs py-spy."""
    spy = DEPS / "bin" / "py-spy"
    return subprocess.Popen(
        [str(spy), "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "500",
         "-f", "raw", "-o", out],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


PG = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=2"


def pg_problem() -> str | None:
    """None when the machine's PostgreSQL answers, else why not (one line)."""
    try:
        import psycopg

        with psycopg.connect(PG):
            return None
    except Exception as e:  # any reason means: no PostgreSQL for this run
        return f"PostgreSQL does not answer at 127.0.0.1:5432 ({type(e).__name__})"


def _pg(sql: str) -> None:
    """Run one statement on the machine's PostgreSQL (autocommit: CREATE/DROP DATABASE)."""
    import psycopg

    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(sql.encode())


@contextmanager
def pg_database(prefix: str) -> Iterator[str]:
    """A PostgreSQL database of this run's own, dropped at the end; yields its URL."""
    db = f"{prefix}_{os.getpid()}"
    _pg(f'CREATE DATABASE "{db}"')
    try:
        yield f"postgres://postgres@127.0.0.1:5432/{db}"
    finally:
        _pg(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
