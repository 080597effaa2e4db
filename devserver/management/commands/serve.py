"""``python manage.py serve``: the whole product on its embedded defaults, in one command.

Starts, as child processes that die with this one: the embedded Redis (when REDIS_URL is
unset), the Telnyx sandbox (when TELNYX_API_KEY is unset), the telephony supervisor and
daphne. A Redis, sandbox or supervisor that dies is restarted on the same socket, port and
arguments, with backoff (``devserver.children``); the web process stays up throughout and
answers fast 503s meanwhile. Only daphne dying, Ctrl-C or SIGTERM stop ``serve``, which
then stops daphne, the supervisor (it drains its workers), the sandbox, and Redis last.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand, CommandError, CommandParser

from devserver.children import Child, ChildWatcher, Proc
from devserver.embedded_redis import EmbeddedRedis, EmbeddedRedisError, ping, socket_path_from_url
from telephony.connections import redis_problem, redis_target
from telephony.procutil import die_with_parent, stop_process
from telephony.redis_target import redacted_url

logger = logging.getLogger(__name__)

DEMO_USER, DEMO_PASSWORD = "demo", "demo"  # staff: the admin and its health page
AGENT_USER, AGENT_PASSWORD = "agent", "agent"  # a CRM agent: calls, no admin
# The sandbox's customer hangs up this long after answering. Its own default (5 s) suits
# scripted tests; a person trying `make run` must be able to talk. When a bridged leg ends
# the sandbox hangs up the other, so this bounds the whole conversation. Tests that need a
# short call set their own (POST /_sandbox/webhooks {"talk_time": ...}).
SANDBOX_TALK_TIME = 3600.0


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # Like daphne: a port whose last connections linger in TIME_WAIT (a `serve`
        # stopped a moment ago) is free; one with a listener is not.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


class Command(BaseCommand):
    help = "Run the whole product locally: Redis, sandbox, supervisor and daphne."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--workers", type=int, default=None, help="telephony workers")

    def handle(self, *args: Any, **opts: Any) -> None:
        self.watcher = ChildWatcher(log=self._log)
        self.redis: EmbeddedRedis | None = None
        self.sandbox: Any = None  # SandboxProcess, imported only when it runs
        self.stopping = threading.Event()
        host, port = opts["host"], opts["port"]
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            if not _port_free(host, port):
                raise CommandError(
                    f"port {port} on {host} is already in use; pick another with --port"
                )
            env = self._start_redis(dict(os.environ))
            call_command("migrate", interactive=False, verbosity=0)
            self._demo_users()
            env = self._start_sandbox(env, host, port)
            self._start_telephony(env, opts["workers"])
            self._start_daphne(env, host, port)
            self._wait_until_serving(host, port)
            self._banner(host, port)
            code = self._watch()
        except CommandError:
            self._shutdown()
            raise
        except EmbeddedRedisError as e:
            self._shutdown()
            raise CommandError(str(e)) from e
        self._shutdown()
        if code:
            sys.exit(code)

    # -- start-up ------------------------------------------------------------------

    def _start_redis(self, env: dict[str, str]) -> dict[str, str]:
        url = settings.REDIS_URL
        if redis_target().is_sentinel:
            problem = redis_problem()
            if problem:
                raise CommandError(problem[1])
            self.stdout.write(f"Redis      {redis_target().describe()}")
            return env
        if os.environ.get("REDIS_URL"):
            if not ping(url, timeout=2.0):
                raise CommandError(
                    f"Redis unreachable at {redacted_url(url)}; start it or unset REDIS_URL"
                )
            return env
        sock = socket_path_from_url(url)
        assert sock is not None
        if ping(url):
            raise CommandError(
                f"an embedded Redis already answers at {sock}: is another `serve` running?"
            )
        self.redis = EmbeddedRedis(sock)
        self.watcher.add(Child("redis", self._start_embedded_redis, lambda p: self._stop_redis()))
        self.stdout.write(f"Redis      embedded, {sock}")
        env["REDIS_URL"] = url
        return env

    def _start_embedded_redis(self) -> Proc:
        assert self.redis is not None
        if self.redis.proc is not None:  # a restart: release the dead one's pipe and socket
            self.redis.stop()
        proc = self.redis.start().proc
        assert proc is not None
        return proc

    def _stop_redis(self) -> None:
        if self.redis is not None:
            self.redis.stop()

    def _demo_users(self) -> None:
        """The staff user of the admin, and a plain agent for the login page (debug only)."""
        if not settings.DEBUG:
            return
        User = get_user_model()
        if not User.objects.filter(username=DEMO_USER).exists():
            User.objects.create_superuser(DEMO_USER, "demo@example.com", DEMO_PASSWORD)
        if not User.objects.filter(username=AGENT_USER).exists():
            User.objects.create_user(AGENT_USER, "agent@example.com", AGENT_PASSWORD)

    def _start_sandbox(self, env: dict[str, str], host: str, port: int) -> dict[str, str]:
        if settings.TELNYX_API_KEY:
            self.stdout.write(f"Telnyx     {settings.TELNYX_BASE_URL}")
            return env
        webhook = f"http://127.0.0.1:{port}/api/webrtc/webhooks/telnyx"
        key_file = Path(settings.VAR_DIR) / "sandbox_ed25519.key"
        args = [
            "--webhook-url", webhook,
            "--signing-key-file", str(key_file),
            "--talk-time", str(SANDBOX_TALK_TIME),
            # The page plays ringback itself, as it must against Telnyx: the agent leg
            # carries nothing until the customer is bridged.
            "--no-ringback",
        ]  # fmt: skip
        own_env = dict(env)
        self.watcher.add(Child("sandbox", lambda: self._start_sandbox_process(args, own_env)))
        sandbox = self.sandbox
        self.stdout.write(f"Telnyx     sandbox, {sandbox.base_url}")
        env.update(
            {
                "TELNYX_API_KEY": sandbox.api_key,
                "TELNYX_BASE_URL": sandbox.base_url,
                "TELNYX_PUBLIC_KEY": sandbox.public_key,
                "TELNYX_CONNECTION_ID": sandbox.connection_id,
                "TELNYX_CALL_CONNECTION_ID": sandbox.call_connection_id,
                "TELNYX_FROM_NUMBER": sandbox.from_number,
                "TELEPHONY_RTC_HOST": str(sandbox.ready.get("rtc_url", "")),  # the softphone's
            }
        )
        return env

    def _start_sandbox_process(self, args: list[str], env: dict[str, str]) -> Proc:
        """Start the sandbox; a restart keeps the port and the ids the workers know."""
        from devserver.sandbox.control import SandboxProcess

        if self.sandbox is not None:
            args = [
                *args,
                "--port", str(self.sandbox.port),
                "--connection-id", self.sandbox.connection_id,
                "--call-connection-id", self.sandbox.call_connection_id,
            ]  # fmt: skip
        self.sandbox = SandboxProcess.start(args=args, env=env)
        assert self.sandbox.proc is not None
        return self.sandbox.proc

    def _spawn(
        self, name: str, argv: list[str], env: dict[str, str], *, grace: float = 10.0
    ) -> None:
        def start() -> Proc:
            return subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches only us; we stop children in order
                preexec_fn=die_with_parent(),
            )

        critical = name == "web"  # nothing left to serve without it
        self.watcher.add(Child(name, start, lambda p: stop_process(p, grace=grace), critical))

    def _start_telephony(self, env: dict[str, str], workers: int | None) -> None:
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        if "telephony_supervisor" in get_commands():
            n = workers if workers is not None else settings.TELEPHONY_WORKERS
            argv = [*manage, "telephony_supervisor", "--workers", str(n)]
            grace = float(settings.TELEPHONY_SHUTDOWN_GRACE) + 5  # it drains its workers
            self._spawn("supervisor", argv, env, grace=grace)
            self.stdout.write(f"Telephony  supervisor, {n} workers")
        else:
            self._spawn("worker", [*manage, "telephony_worker"], env)
            self.stdout.write("Telephony  1 worker")

    def _start_daphne(self, env: dict[str, str], host: str, port: int) -> None:
        argv = [sys.executable, "-m", "daphne", "-b", host, "-p", str(port)]
        self._spawn("web", [*argv, "config.asgi:application"], env)

    def _wait_until_serving(self, host: str, port: int, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        url = f"http://{host}:{port}/"
        while time.monotonic() < end and not self.stopping.is_set():
            for child in self.watcher.children:
                if child.proc is not None and child.proc.poll() is not None:
                    code = child.proc.returncode
                    raise CommandError(f"{child.name} exited with code {code} at start-up")
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        if not self.stopping.is_set():
            raise CommandError(f"the web server did not answer at {url} within {timeout:.0f} s")

    def _banner(self, host: str, port: int) -> None:
        self.stdout.write(self.style.SUCCESS(f"\nReady: http://{host}:{port}/"))
        if settings.DEBUG:
            self.stdout.write(f"Demo login: {DEMO_USER} / {DEMO_PASSWORD}  (admin: /admin/)")
            self.stdout.write(
                f"Agent login: {AGENT_USER} / {AGENT_PASSWORD}  (not staff: /accounts/login/)"
            )
        self.stdout.write("Ctrl-C stops everything.\n")

    # -- running and stopping --------------------------------------------------------

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stopping.set()

    def _log(self, line: str) -> None:
        self.stderr.write(f"serve: {line}")

    def _watch(self) -> int:
        """Restart what dies until a signal (exit 0) or until the web process dies (exit 1)."""
        while not self.stopping.wait(0.1):
            if self.watcher.poll() is not None:
                return 1
        return 0

    def _shutdown(self) -> None:
        """Web, supervisor (drains its workers), sandbox, then Redis: each after its users."""
        self.watcher.stop_all()
        if self.redis is not None:  # never watched, if start-up failed before it was
            self.redis.stop()
            self.redis = None
