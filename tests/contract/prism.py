"""Install Stoplight Prism once per machine and run it as a mock of Telnyx's spec.

Prism (``@stoplight/prism-cli``) serves an OpenAPI file as a mock that validates every
request against it and reports violations in the ``sl-violations`` response header.
It is installed with ``npm`` into a cache outside the repository,
``$XDG_CACHE_HOME/django-telephony/prism/<version>`` (``~/.cache/...`` by default), and
reused from there. An install goes to a scratch directory first and is renamed into
place only when complete, so an interrupted one never leaves a broken cache behind.
Every process started here runs in its own process group and is killed by pid.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import IO

import httpx

from telephony.procutil import die_with_parent
from tests.helpers import free_port, kill_group

PRISM_VERSION = "5.14.2"
PRISM_PACKAGE = "@stoplight/prism-cli"
INSTALL_TIMEOUT = 600.0
START_TIMEOUT = 60.0


class PrismUnavailable(RuntimeError):
    """Prism cannot be installed or started here (no npm, no registry, ...)."""


def cache_dir(version: str = PRISM_VERSION) -> Path:
    """Where this Prism version lives on this machine."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "django-telephony" / "prism" / version


def _installed(root: Path, version: str) -> Path | None:
    binary = root / "node_modules" / ".bin" / "prism"
    manifest = root / "node_modules" / "@stoplight" / "prism-cli" / "package.json"
    try:
        found = json.loads(manifest.read_text()).get("version")
    except (OSError, ValueError):
        return None
    return binary if found == version and binary.exists() else None


def _run_group(argv: list[str], *, timeout: float, log: IO[bytes]) -> int:
    """Run ``argv`` in its own process group; kill the whole group on timeout."""
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=die_with_parent(),
    )
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise PrismUnavailable(f"'{' '.join(argv[:3])} ...' took longer than {timeout} s") from None
    finally:
        kill_group(proc)


def ensure_installed(version: str = PRISM_VERSION) -> Path:
    """The ``prism`` executable, installing it into the cache first if needed.

    Raises :class:`PrismUnavailable` when node/npm are missing or the install fails.
    """
    root = cache_dir(version)
    binary = _installed(root, version)
    if binary is not None:
        return binary
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        missing = " and ".join(name for name, path in (("node", node), ("npm", npm)) if not path)
        raise PrismUnavailable(f"Prism needs node and npm on PATH; missing: {missing}")
    root.parent.mkdir(parents=True, exist_ok=True)
    scratch = root.parent / f"{version}.partial-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    log_path = root.parent / f"{version}.install.log"
    argv = [npm, "install", "--prefix", str(scratch), "--no-audit", "--no-fund"]
    argv += ["--no-save", "--loglevel", "error", f"{PRISM_PACKAGE}@{version}"]
    try:
        with log_path.open("wb") as log:
            code = _run_group(argv, timeout=INSTALL_TIMEOUT, log=log)
        if code != 0 or _installed(scratch, version) is None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise PrismUnavailable(
                f"npm install {PRISM_PACKAGE}@{version} failed ({code}):\n{tail}"
            )
        try:
            scratch.rename(root)
        except OSError:  # another run finished first; use its copy
            if _installed(root, version) is None:
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    binary = _installed(root, version)
    if binary is None:
        raise PrismUnavailable(f"Prism {version} not found in {root} after install")
    return binary


class PrismServer:
    """``prism mock SPEC --errors`` as a child process on a free port of 127.0.0.1."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.port = port
        self.url = f"http://127.0.0.1:{port}"  # Prism serves the paths without /v2
        self.log_path = log_path

    @classmethod
    def start(cls, binary: Path, spec: Path, *, log_path: Path) -> PrismServer:
        """Start Prism and wait until it answers HTTP; stop it again if it never does."""
        port = free_port()
        argv = [str(binary), "mock", str(spec), "--host", "127.0.0.1", "--port", str(port)]
        argv += ["--errors"]  # request violations answer an error instead of an example
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        server = cls(proc, port, log_path)
        try:
            server._wait_ready(START_TIMEOUT)
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_ready(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise PrismUnavailable(
                    f"prism exited with {self.proc.returncode} before answering:\n{self.log_tail()}"
                )
            try:
                httpx.get(f"{self.url}/", timeout=1.0)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise PrismUnavailable(f"prism did not answer within {timeout} s:\n{self.log_tail()}")

    def log_tail(self, size: int = 3000) -> str:
        """The end of Prism's log, for failure messages."""
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop Prism by pid (its whole process group)."""
        kill_group(self.proc)
