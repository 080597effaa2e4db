"""Fixtures for browser tests: Debian's Chromium driven by Playwright, against `serve`.

Chromium is the Debian package at /usr/bin/chromium: Playwright never downloads a
browser here. ``make test`` installs it before pytest starts (``make tools``); when it is
still missing, the browser tests fail with one line saying how to install it, never skip.

``product`` runs the whole product as a newcomer would: ``python manage.py serve`` in a
temporary var/ directory (own SQLite, embedded Redis, sandbox, workers, daphne). Modules
that keep the default environment share one (started once, stopped after the last
browser test); a module with ``serve_overrides`` gets its own. Each is stopped by pid,
with its whole process group, at teardown.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from devserver.sandbox.control import SandboxControl
from telephony.procutil import TEMPLATE_NAME, comm, pid_alive
from tests.helpers import ROOT, ProcessTracker, free_port

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The softphone needs a microphone: a fake device (a beep), allowed without a prompt.
# Without FAKE_MEDIA_UI the permission prompt is refused, as a person clicking "Block".
FAKE_MEDIA_DEVICE = "--use-fake-device-for-media-stream"
FAKE_MEDIA_UI = "--use-fake-ui-for-media-stream"
ARTIFACTS = ROOT / "artifacts" / "browser"
# Short, so outages show within a second; the adapter loads the SDK's lazy resources
# before the first heartbeat, so a fresh worker's first call cannot look like a hang.
HEARTBEAT_TIMEOUT = "1"


@pytest.fixture(scope="module")
def chromium_extra_args() -> list[str]:
    """More Chromium switches for one module (override it there), e.g. a microphone file."""
    return []


@pytest.fixture(scope="module")
def browser(chromium_path: str, chromium_extra_args: list[str]) -> Iterator[Any]:
    """One headless Chromium per module. Not per session: Playwright's sync API keeps an
    event loop running in this thread, which would break every async test after it."""
    from playwright import sync_api

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium_path,
            args=[*CHROMIUM_ARGS, FAKE_MEDIA_DEVICE, FAKE_MEDIA_UI, *chromium_extra_args],
            headless=True,
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Product:
    """A running ``serve``: its URL, its sandbox and its processes."""

    url: str
    proc: subprocess.Popen[bytes]
    tracker: ProcessTracker
    sandbox: SandboxControl
    var_dir: Path
    stopped: list[int] = field(default_factory=list)

    def log(self) -> str:
        return self.tracker.output(self.proc)

    def status(self) -> dict[str, Any]:
        try:
            body: dict[str, Any] = httpx.get(f"{self.url}/api/webrtc/status", timeout=2).json()
            return body
        except (httpx.HTTPError, ValueError):
            return {}

    def serves_static(self) -> bool:
        try:
            url = f"{self.url}/static/telephony/call-button.js"
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def telephony_pids(self) -> tuple[list[int], list[int]]:
        """(supervisor pids, worker pids) below the serve process, read from /proc (the
        worker template, which serves nothing, is neither)."""
        supervisors, workers = [], []
        for pid in descendants(self.proc.pid):
            argv = cmdline(pid)
            if "telephony_supervisor" in argv:
                supervisors.append(pid)
            elif "telephony_worker" in argv and comm(pid) != TEMPLATE_NAME:
                workers.append(pid)  # not the template the workers are forked from
        return supervisors, workers

    def stop_telephony(self) -> None:
        """SIGSTOP the supervisor (so it restarts nothing) and the workers: hung, not gone.

        serve stops everything when a child exits, so nothing is killed here.
        """
        supervisors, workers = self.telephony_pids()
        assert workers or supervisors, f"no telephony processes under serve:\n{self.log()}"
        for pid in [*supervisors, *workers]:
            os.kill(pid, signal.SIGSTOP)
            self.stopped.append(pid)

    def resume_telephony(self) -> None:
        """SIGCONT, workers first, then the supervisor."""
        for pid in reversed(self.stopped):
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.stopped.clear()

    def wait_status(self, healthy: bool, timeout: float = 90.0) -> dict[str, Any]:
        end = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < end:
            body = self.status()
            if body.get("healthy") is healthy:
                return body
            time.sleep(0.1)
        raise AssertionError(f"status never became healthy={healthy}: {body}\n{self.log()}")


def descendants(root: int) -> list[int]:
    """Every live process below ``root`` (children first), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        for child in parents.get(todo.pop(0), []):
            out.append(child)
            todo.append(child)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def serve_env(var_dir: Path) -> dict[str, str]:
    """A newcomer's environment: nothing configured, fast heartbeats."""
    drop = ("TELNYX_", "TELEPHONY_", "REDIS_URL", "DATABASE_URL", "DJANGO_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "TELEPHONY_VAR_DIR": str(var_dir),
            "TELEPHONY_WORKERS": "1",
            "TELEPHONY_SPARE_WORKERS": "0",  # a killed worker must show as gone
            "TELEPHONY_HEARTBEAT_INTERVAL": "0.2",
            "TELEPHONY_HEARTBEAT_TIMEOUT": HEARTBEAT_TIMEOUT,
            "TELEPHONY_SHUTDOWN_GRACE": "2",
            # A loaded 2-core machine can take over the default 30 s to import the SDK:
            # slow is not hung here (test_serve.py's START).
            "TELEPHONY_WORKER_START_TIMEOUT": "90",
            # The browser tests place more calls than a person would in a minute.
            "TELEPHONY_RATE_LIMIT_CALL": "100/m",
        }
    )
    return env


@pytest.fixture(scope="module")
def serve_overrides() -> dict[str, str]:
    """Environment changes for one module's ``serve`` (override it there)."""
    return {}


@contextmanager
def running_product(
    tmp_path_factory: pytest.TempPathFactory, overrides: dict[str, str]
) -> Iterator[Product]:
    """``manage.py serve`` on a free port, ready (healthy); stopped with Ctrl-C at the end,
    and whatever it left behind is killed and reported."""
    # The embedded Redis socket lives in var/: keep the path short (unix sockets: ~100 bytes).
    var_dir = Path(tempfile.mkdtemp(prefix="tel-"))
    tracker = ProcessTracker(tmp_path_factory.mktemp("serve-logs"))
    port = free_port()
    proc = tracker.start(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        env={**serve_env(var_dir), **overrides},
        name="serve",
    )
    product = None
    try:
        url = f"http://127.0.0.1:{port}"
        end = time.monotonic() + 60
        match = None
        while time.monotonic() < end and proc.poll() is None:
            match = re.search(r"sandbox, (http://\S+)/v2", tracker.output(proc))
            if match and "Ready: http" in tracker.output(proc):
                break
            time.sleep(0.1)
        assert proc.poll() is None and match, f"serve did not start:\n{tracker.output(proc)}"
        product = Product(
            url=url,
            proc=proc,
            tracker=tracker,
            sandbox=SandboxControl(f"{match.group(1)}/_sandbox"),
            var_dir=var_dir,
        )
        product.wait_status(healthy=True)
        yield product
    finally:
        if product is not None:
            product.resume_telephony()  # a stopped process would sit out SIGTERM
        children = descendants(proc.pid)
        if proc.poll() is None:  # Ctrl-C, as a person would; the tracker kills what is left
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=25)
            except subprocess.TimeoutExpired:
                pass
        tracker.cleanup()
        # serve's children die with it (PDEATHSIG); anything still alive is a leak.
        end = time.monotonic() + 15
        while time.monotonic() < end and any(pid_alive(pid) for pid in children):
            time.sleep(0.1)
        leftovers = [f"{pid} {cmdline(pid)}" for pid in children if pid_alive(pid)]
        for pid in children:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "serve.log").write_text(tracker.output(proc))
        shutil.rmtree(var_dir, ignore_errors=True)
        assert not leftovers, f"processes left behind by serve: {leftovers}"


class SharedProduct:
    """The one ``serve`` of the modules that change nothing in its environment.

    Starting ``serve`` costs seconds of both cores (migrations, the sandbox, a worker that
    imports the Telnyx SDK), so those modules share one. Each test leaves it healthy, as
    it must for the next test of its own module anyway; each module waits for that. It is
    stopped after the last browser test, not at the end of the session, so it does not
    idle beside the tests this xdist worker runs next.
    """

    def __init__(self) -> None:
        self._stack: ExitStack | None = None
        self.product: Product | None = None

    def get(self, tmp_path_factory: pytest.TempPathFactory) -> Product:
        if self.product is None:
            stack = ExitStack()
            self.product = stack.enter_context(running_product(tmp_path_factory, {}))
            self._stack = stack
        return self.product

    def stop(self) -> None:
        stack, self._stack, self.product = self._stack, None, None
        if stack is not None:
            stack.close()


SHARED = SharedProduct()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """After the last browser test in a row, stop the shared ``serve``."""
    browser_dir = Path(__file__).parent
    if nextitem is None or browser_dir not in Path(nextitem.path).parents:
        SHARED.stop()


@pytest.fixture(scope="session", autouse=True)
def _stop_shared_product() -> Iterator[None]:
    """Also when the session ends some other way (``-x``, an interrupt)."""
    yield
    SHARED.stop()


@pytest.fixture(scope="module")
def product(
    tmp_path_factory: pytest.TempPathFactory, serve_overrides: dict[str, str]
) -> Iterator[Product]:
    """A running, healthy ``serve``: the shared one, or the module's own when the module
    overrides its environment (``serve_overrides``)."""
    if serve_overrides:
        with running_product(tmp_path_factory, serve_overrides) as own:
            yield own
        return
    shared = SHARED.get(tmp_path_factory)
    shared.wait_status(healthy=True)  # whatever the module before did to it
    yield shared


@pytest.fixture
def page(browser: Any, product: Product) -> Iterator[Any]:
    """A fresh browser context and page; JS errors and console errors are collected."""
    context = browser.new_context(base_url=product.url, viewport={"width": 1100, "height": 720})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.js_errors = []
    page.console_errors = []
    page.on("pageerror", lambda err: page.js_errors.append(str(err)))
    page.on(
        "console",
        lambda msg: page.console_errors.append(msg.text) if msg.type == "error" else None,
    )
    try:
        yield page
    finally:
        context.close()


def login(page: Any, username: str = "demo", password: str = "demo") -> None:
    """Log in through the admin's login form, as a person would, and land on ``/``."""
    page.goto("/admin/login/?next=/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url("**/")


def login_agent(page: Any, username: str = "agent", password: str = "agent") -> None:
    """Log in through the site's own login page (not staff: no admin) and land on ``/``."""
    page.goto("/accounts/login/?next=/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/")


# Chromium reports every non-2xx response and refused socket in the console; those are
# the expected answers of an outage (503 from /status), not JavaScript errors.
NETWORK_NOISE = re.compile(r"Failed to load resource|WebSocket connection to .* failed")


def script_errors(page: Any) -> list[str]:
    """Uncaught exceptions plus console errors that are not network noise."""
    return [*page.js_errors, *(m for m in page.console_errors if not NETWORK_NOISE.search(m))]


def screenshot(page: Any, name: str, shots: list[str]) -> str:
    """Save ``artifacts/browser/<name>.png`` and remember its path for the report."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    shots.append(str(path.relative_to(ROOT)))
    return str(path)
