"""Run Stoplight Prism as a mock of Telnyx's spec.

Prism (``@stoplight/prism-cli``) serves an OpenAPI file as a mock that validates every
request against it and reports violations in the ``sl-violations`` response header.
It is pinned in the repository's ``package.json`` and ``package-lock.json`` and installed
into ``node_modules/`` by ``make test`` (``npm ci``) before pytest starts, so no test ever
downloads it. Every process started here runs in its own process group and is killed by pid.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx

from telephony.procutil import die_with_parent
from tests.conftest import ROOT
from tests.helpers import free_port, kill_group

PRISM_PACKAGE = "@stoplight/prism-cli"
PRISM_VERSION = json.loads((ROOT / "package.json").read_text())["devDependencies"][PRISM_PACKAGE]
START_TIMEOUT = 60.0
HOW_TO_INSTALL = "run `make tools` (or `npm ci` in the repository)"


class PrismUnavailable(RuntimeError):
    """Prism is not installed in node_modules/ or cannot be started."""


def installed(root: Path = ROOT) -> Path:
    """The ``prism`` executable that ``npm ci`` put in ``root/node_modules``.

    Raises :class:`PrismUnavailable`, with one line saying how to install it, when it is
    missing or not the version ``package.json`` pins.
    """
    binary = root / "node_modules" / ".bin" / "prism"
    manifest = root / "node_modules" / "@stoplight" / "prism-cli" / "package.json"
    try:
        found = json.loads(manifest.read_text()).get("version")
    except (OSError, ValueError):
        found = None
    if found != PRISM_VERSION or not binary.exists():
        have = f"found {found}" if found and found != PRISM_VERSION else "not installed"
        raise PrismUnavailable(
            f"Prism {PRISM_VERSION} is needed in {root / 'node_modules'} ({have}): {HOW_TO_INSTALL}"
        )
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
