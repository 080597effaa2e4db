"""The product for the chaos run, piece by piece: processes we can kill and restart.

Unlike ``manage.py serve`` (one parent that stops everything when one child dies), every
piece here is started on its own so a fault can hit it alone: the embedded Redis (stopped
and started again on the same socket), the sandbox, one supervisor at a time (killed with
SIGKILL and started again; its workers die with it through PDEATHSIG) and daphne. Each is
a child of this process in a session of its own, and dies with us (PDEATHSIG) if we are
killed. :class:`ProcessWatch` remembers every process of those sessions, so the orphan
check can name anything left behind, workers of a killed supervisor included.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import free_port
from devserver.embedded_redis import EmbeddedRedis
from devserver.sandbox.control import SandboxProcess
from telephony.procutil import TEMPLATE_NAME, comm, die_with_parent

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 2

# The knobs of the product under chaos: short intervals so that detection, restarts and
# reconciliation happen within seconds (see docs/CHAOS.md for why each is what it is).
PRODUCT_SETTINGS = {
    "TELEPHONY_WORKERS": str(WORKERS),
    "TELEPHONY_HEARTBEAT_INTERVAL": "0.2",
    "TELEPHONY_HEARTBEAT_TIMEOUT": "1",
    "TELEPHONY_RECONCILE_INTERVAL": "1",
    "TELEPHONY_REQUEST_TIMEOUT": "3",
    "TELEPHONY_SHUTDOWN_GRACE": "2",
    "TELEPHONY_KILL_GRACE": "1",
    "TELEPHONY_MAX_RESTARTS": "5",
    "TELEPHONY_RESTART_WINDOW": "10",
    "TELEPHONY_RESTART_BACKOFF_BASE": "0.2",
    "TELEPHONY_RESTART_BACKOFF_MAX": "2",
    "TELEPHONY_WORKER_START_TIMEOUT": "20",
    "TELEPHONY_BREAKER_OPEN_SECONDS": "2",
    "TELEPHONY_RATE_LIMIT_CALL": "100000/m",
    "TELEPHONY_RATE_LIMIT_CREDENTIAL": "100000/m",
    "DJANGO_LOG_LEVEL": "INFO",
    "PYTHONUNBUFFERED": "1",
}
# Settings from the caller's environment that must not leak into the run.
STRIPPED = ("TELNYX_", "TELEPHONY_", "DJANGO_")
# Every call ends on its own within about three seconds, so nothing stays live for long:
# the sandbox answers the agent leg itself (no browsers in the run), then the customer.
SANDBOX_TIMING = {
    "initiated_after": 0.05,
    "agent_answer_after": 0.2,
    "answer_after": 0.5,
    "talk_time": 1.5,
}


# -- /proc -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcInfo:
    """One line of ``/proc/<pid>/stat``, the fields we use."""

    pid: int
    ppid: int
    session: int
    starttime: int
    state: str


def proc_info(pid: int) -> ProcInfo | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        rest = raw.rsplit(") ", 1)[1].split()
        return ProcInfo(pid, int(rest[1]), int(rest[3]), int(rest[19]), rest[0])
    except (IndexError, ValueError):
        return None


def all_procs() -> list[ProcInfo]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = proc_info(int(entry.name))
            if info is not None:
                out.append(info)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def alive(key: tuple[int, int]) -> bool:
    """True when the process ``(pid, starttime)`` still runs (a zombie does not)."""
    info = proc_info(key[0])
    return info is not None and info.starttime == key[1] and info.state not in ("Z", "X")


class ProcessWatch(threading.Thread):
    """Samples /proc and remembers every process of our sessions and every descendant."""

    def __init__(self, interval: float = 0.2) -> None:
        super().__init__(name="chaos-procwatch", daemon=True)
        self.interval = interval
        self.sessions: set[int] = set()
        self.seen: dict[tuple[int, int], str] = {}
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def add_session(self, sid: int) -> None:
        with self._lock:
            self.sessions.add(sid)
        self.sample()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def sample(self) -> list[ProcInfo]:
        """Record (and return) our processes alive right now."""
        me = os.getpid()
        procs = all_procs()
        children: dict[int, list[ProcInfo]] = {}
        for p in procs:
            children.setdefault(p.ppid, []).append(p)
        with self._lock:
            ours = {p.pid: p for p in procs if p.session in self.sessions and p.pid != me}
        todo = [me]
        while todo:
            for child in children.get(todo.pop(), []):
                if child.pid not in ours:
                    ours[child.pid] = child
                    todo.append(child.pid)
        for p in ours.values():
            key = (p.pid, p.starttime)
            if key not in self.seen:
                self.seen[key] = cmdline(p.pid)[:160]
        return [p for p in ours.values() if p.state not in ("Z", "X")]

    def leftovers(self) -> list[dict[str, Any]]:
        self.sample()
        return [{"pid": k[0], "cmd": cmd} for k, cmd in self.seen.items() if alive(k)]


# -- the stack ---------------------------------------------------------------------------


@dataclass
class Stack:
    """Redis, sandbox, supervisor and daphne for one chaos run, in a temporary var dir."""

    seed: int
    var: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="tel-chaos-")))
    watch: ProcessWatch = field(default_factory=ProcessWatch)
    environ: dict[str, str] = field(default_factory=dict)
    redis: EmbeddedRedis | None = None
    # Settings over PRODUCT_SETTINGS; with REDIS_SENTINELS or REDIS_URL among them, that
    # Redis instead of the embedded one (a Sentinel cluster: bench/failover.py).
    extra_env: dict[str, str] = field(default_factory=dict)
    sandbox: SandboxProcess | None = None
    supervisor: subprocess.Popen[bytes] | None = None
    daphne: subprocess.Popen[bytes] | None = None
    port: int = 0
    bind: str = "127.0.0.1"
    supervisors_started: int = 0
    _logs: int = 0

    @property
    def base_url(self) -> str:
        return f"http://{self.bind}:{self.port}"

    # -- start-up -------------------------------------------------------------------------

    def start(self) -> None:
        """Everything up, daphne serving and both workers beating."""
        self.watch.start()
        redis_env: dict[str, str] = {}
        if not {"REDIS_SENTINELS", "REDIS_URL"} & set(self.extra_env):
            self.redis = EmbeddedRedis(self.var / "r.sock")
            self.redis.start()
            self.watch.sample()  # Redis is our child: the watch finds it as a descendant
            redis_env = {"REDIS_URL": self.redis.url}
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith((*STRIPPED, "REDIS_")) and k != "DATABASE_URL"
        }
        self.environ = {
            **base,
            **PRODUCT_SETTINGS,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "TELEPHONY_VAR_DIR": str(self.var),
            **redis_env,
            **self.extra_env,
        }
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"],
            cwd=ROOT,
            env=self.environ,
            check=True,
        )
        self.port = free_port()
        webhook = f"{self.base_url}/api/webrtc/webhooks/telnyx"
        with open(self._log_path("sandbox"), "wb") as log:
            self.sandbox = SandboxProcess.start(
                args=[
                    "--credential-limit", "100000",
                    "--webhook-url", webhook,
                    "--seed", str(self.seed),
                    "--initiated-after", str(SANDBOX_TIMING["initiated_after"]),
                    "--answer-after", str(SANDBOX_TIMING["answer_after"]),
                    "--talk-time", str(SANDBOX_TIMING["talk_time"]),
                    "--agents", f"auto:{SANDBOX_TIMING['agent_answer_after']}",
                    "--webhook-timeout", "5",
                    "--log-file", str(self.var / "sandbox-requests.jsonl"),
                ],
                env=self.environ,
                stderr=log,
                timeout=30,
            )  # fmt: skip
        assert self.sandbox.proc is not None
        self.watch.add_session(self.sandbox.pid)
        sb = self.sandbox
        self.environ.update(
            {
                "TELNYX_API_KEY": sb.api_key,
                "TELNYX_BASE_URL": sb.base_url,
                "TELNYX_PUBLIC_KEY": sb.public_key,
                "TELNYX_CONNECTION_ID": sb.connection_id,
                "TELNYX_CALL_CONNECTION_ID": sb.call_connection_id,
                "TELNYX_FROM_NUMBER": sb.from_number,
                "TELNYX_WEBHOOK_URL": webhook,
                "TELEPHONY_ACCOUNT_CREDENTIAL_LIMIT": "100000",  # as many seats as the sandbox
            }
        )
        self.serve()

    def serve(self) -> None:
        """daphne and the supervisor with ``self.environ``, until both workers beat.

        A second host of a multi-host run sets its ``environ`` (another var dir and host
        id, the first host's sandbox) and calls this alone (bench/hostloss.py).
        """
        if not self.watch.is_alive():
            self.watch.start()
        self.port = self.port or free_port()
        self.daphne = self._spawn(
            "daphne",
            [sys.executable, "-m", "daphne", "-b", self.bind, "-p", str(self.port),
             "config.asgi:application"],
        )  # fmt: skip
        self.start_supervisor()
        self._wait_serving(timeout=120)

    def _log_path(self, name: str) -> Path:
        self._logs += 1
        return self.var / f"{self._logs:02d}-{name}.log"

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        with open(self._log_path(name), "wb") as log:
            proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=self.environ,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own session: the watch finds its descendants
                preexec_fn=die_with_parent(signal.SIGKILL),
            )
        self.watch.add_session(proc.pid)
        return proc

    def _wait_serving(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            assert self.daphne is not None
            if self.daphne.poll() is not None:
                raise RuntimeError(f"daphne exited with {self.daphne.returncode} at start-up")
            if self.live_workers() >= WORKERS and _get(f"{self.base_url}/") == 200:
                return
            time.sleep(0.2)
        raise RuntimeError(f"the product was not serving with {WORKERS} workers in {timeout} s")

    # -- pieces ---------------------------------------------------------------------------

    def start_supervisor(self) -> None:
        argv = [sys.executable, "manage.py", "telephony_supervisor", "--workers", str(WORKERS)]
        self.supervisor = self._spawn("supervisor", argv)
        self.supervisors_started += 1

    def kill_supervisor(self) -> int | None:
        """SIGKILL the supervisor (its workers get SIGTERM through PDEATHSIG)."""
        sup, self.supervisor = self.supervisor, None
        if sup is None or sup.poll() is not None:
            return None
        sup.send_signal(signal.SIGKILL)
        sup.wait(timeout=10)
        return sup.pid

    def supervisor_running(self) -> bool:
        return self.supervisor is not None and self.supervisor.poll() is None

    def workers(self) -> list[ProcInfo]:
        """The current supervisor's worker processes (stopped ones included), spares too,
        without its worker template."""
        return [p for p in self._worker_procs() if comm(p.pid) != TEMPLATE_NAME]

    def template(self) -> ProcInfo | None:
        """The current supervisor's worker template process, if one runs."""
        return next((p for p in self._worker_procs() if comm(p.pid) == TEMPLATE_NAME), None)

    def _worker_procs(self) -> list[ProcInfo]:
        if not self.supervisor_running():
            return []
        assert self.supervisor is not None
        sup = self.supervisor.pid
        return [
            p
            for p in all_procs()
            if p.ppid == sup and p.state not in ("Z", "X") and "telephony_worker" in cmdline(p.pid)
        ]

    def live_workers(self) -> int:
        """Workers serving right now, as the status endpoint says."""
        try:
            with urllib.request.urlopen(f"{self.base_url}/api/webrtc/status", timeout=2) as r:
                body = r.read()
        except urllib.error.HTTPError as e:
            body = e.read()
        except OSError:
            return 0
        try:
            return int(json.loads(body)["workers"]["alive"])
        except (ValueError, KeyError, TypeError):
            return 0

    def stop_redis(self) -> None:
        assert self.redis is not None
        self.redis.stop()

    def start_redis(self) -> None:
        assert self.redis is not None
        if self.redis.proc is None:
            self.redis.start()

    def redis_running(self) -> bool:
        return self.redis is not None and self.redis.proc is not None

    # -- shutdown ---------------------------------------------------------------------------

    def shutdown(self) -> dict[str, Any]:
        """Stop everything gracefully, in reverse order; returns how each one ended."""
        ended: dict[str, Any] = {}
        if self.supervisor is not None:
            ended["supervisor"] = _stop(self.supervisor, grace=10.0)
        if self.daphne is not None:
            ended["daphne"] = _stop(self.daphne, grace=10.0)
        if self.sandbox is not None:
            ended["sandbox"] = self.sandbox.stop(grace=5.0)
        if self.redis is not None:
            self.redis.stop()
        return ended

    def kill_leftovers(self) -> None:
        """Last resort after the orphan check: SIGKILL whatever of ours still runs."""
        for key in list(self.watch.seen):
            if alive(key):
                try:
                    os.kill(key[0], signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def remove(self) -> None:
        shutil.rmtree(self.var, ignore_errors=True)


def _stop(proc: subprocess.Popen[bytes], *, grace: float) -> int | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(timeout=10)


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            r.read()
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except OSError:
        return 0
