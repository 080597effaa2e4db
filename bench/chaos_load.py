"""The chaos run's load: several logged-in users, each on its own session, through daphne.

Each user logs in and asks for a WebRTC credential (its seat: the agent leg of its calls
rings that login, which the sandbox answers itself), then loops until the end time: picks
an action at random (seeded per user), sends it, records the answer, thinks for a
moment. Actions: place a call, hang up or look at one of its own recent calls, get a
WebRTC credential, read the service status, load the demo page. Every request is
recorded, whatever happens (status, content type, body ``code``, the call id of a placed
call, or the client-side error when there was no answer). It runs on its own event loop
in a thread, so the faults injected from the main thread (which block on process starts
and stops) never delay a request or its timing.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
from yarl import URL

NUMBERS = ("+12025550143", "+13125550178", "+14165550199", "+17575550112", "+16045550166")
ACTIONS = (  # (kind, weight)
    ("call", 30),
    ("detail", 15),
    ("hangup", 12),
    ("credential", 15),
    ("status", 18),
    ("page", 10),
)


@dataclass
class Record:
    """One request and what came back."""

    user: str
    kind: str
    method: str
    path: str
    started: float  # epoch seconds
    elapsed: float  # seconds
    status: int | None
    content_type: str
    code: str | None
    call_id: str | None = None
    call_status: str | None = None
    error: str | None = None  # client side: no answer (timeout, connection dropped)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class User:
    """One logged-in user with its own cookie jar, CSRF token and recent calls."""

    def __init__(self, load: Load, name: str, password: str, rng: random.Random) -> None:
        self.load, self.name, self.password, self.rng = load, name, password, rng
        self.calls: deque[str] = deque(maxlen=8)
        self.csrf = ""
        self.session: aiohttp.ClientSession | None = None

    async def login(self) -> None:
        base = self.load.base
        assert self.session is not None
        async with self.session.get(f"{base}/admin/login/") as r:
            await r.read()
        token = self.session.cookie_jar.filter_cookies(URL(base))["csrftoken"].value
        form = {
            "username": self.name,
            "password": self.password,
            "csrfmiddlewaretoken": token,
            "next": "/admin/",
        }
        async with self.session.post(f"{base}/admin/login/", data=form) as r:
            await r.read()
            if r.status != 200 or "/admin/login/" in str(r.url):
                raise RuntimeError(f"login of {self.name} failed: {r.status} {r.url}")
        self.csrf = self.session.cookie_jar.filter_cookies(URL(base))["csrftoken"].value
        await self.take_seat()

    async def take_seat(self, attempts: int = 20) -> None:
        """Ask for a credential first, as the page does: calls ring the agent's login.

        Before the load begins (no fault injected yet), so it is not recorded; the sandbox
        answers that login's agent legs itself (``--agents auto``).
        """
        assert self.session is not None
        url, headers = f"{self.load.base}/api/webrtc/credential", {"X-CSRFToken": self.csrf}
        for _ in range(attempts):
            async with self.session.post(url, json={}, headers=headers) as r:
                body = await r.read()
                if r.status == 201:
                    return
            await asyncio.sleep(0.25)
        raise RuntimeError(f"{self.name} got no credential: {r.status} {body[:200]!r}")

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.load.client_timeout)
        jar = aiohttp.CookieJar(unsafe=True)  # keep cookies for the 127.0.0.1 host
        async with aiohttp.ClientSession(cookie_jar=jar, timeout=timeout) as self.session:
            await self.login()
            self.load.ready.release()
            await self.load.go.wait()
            kinds = [k for k, _ in ACTIONS]
            weights = [w for _, w in ACTIONS]
            while time.time() < self.load.end_at:
                kind = self.rng.choices(kinds, weights)[0]
                if kind in ("detail", "hangup") and not self.calls:
                    kind = "status"
                await self.act(kind)
                await asyncio.sleep(self.rng.uniform(0.05, 0.35))

    async def act(self, kind: str) -> None:
        if kind == "call":
            await self.request(kind, "POST", "/api/webrtc/call", {"to": self.rng.choice(NUMBERS)})
        elif kind == "detail":
            await self.request(kind, "GET", f"/api/webrtc/call/{self.rng.choice(self.calls)}")
        elif kind == "hangup":
            call_id = self.rng.choice(self.calls)
            await self.request(kind, "POST", f"/api/webrtc/call/{call_id}/hangup", {})
        elif kind == "credential":
            await self.request(kind, "POST", "/api/webrtc/credential", {})
        elif kind == "status":
            await self.request(kind, "GET", "/api/webrtc/status")
        else:
            await self.request(kind, "GET", "/")

    async def request(
        self, kind: str, method: str, path: str, payload: dict[str, Any] | None = None
    ) -> None:
        assert self.session is not None
        headers = {"X-CSRFToken": self.csrf} if method == "POST" else {}
        started, t0 = time.time(), time.monotonic()
        record = Record(self.name, kind, method, path, started, 0.0, None, "", None)
        try:
            async with self.session.request(
                method, f"{self.load.base}{path}", json=payload, headers=headers
            ) as r:
                body = await r.read()
                record.status = r.status
                record.content_type = r.headers.get("Content-Type", "")
        except TimeoutError:
            record.error = "client_timeout"
        except aiohttp.ClientError as e:
            record.error = f"{type(e).__name__}: {e}"[:200]
        record.elapsed = time.monotonic() - t0
        if record.status is not None and record.content_type.startswith("application/json"):
            self._read_body(record, body)
        self.load.records.append(record)

    def _read_body(self, record: Record, body: bytes) -> None:
        try:
            data = json.loads(body)
        except ValueError:
            record.code = "<invalid json>"
            return
        if not isinstance(data, dict):
            return
        record.code = data.get("code") if isinstance(data.get("code"), str) else None
        call = data.get("call")
        if isinstance(call, dict):
            record.call_status = call.get("status")
            if record.kind == "call" and record.status == 201:
                record.call_id = str(call.get("id"))
                self.calls.append(record.call_id)


class Load:
    """Runs the users on an event loop in a thread: ``start()``, ``begin()``, ``join()``."""

    def __init__(
        self,
        base: str,
        users: list[tuple[str, str]],
        *,
        seed: int,
        client_timeout: float,
    ) -> None:
        self.base = base
        self.client_timeout = client_timeout
        self.records: list[Record] = []
        self.end_at = float("inf")
        self.ready = threading.Semaphore(0)
        self.go = asyncio.Event()
        self.users = [User(self, name, pw, random.Random(f"{seed}:{name}")) for name, pw in users]
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._main, name="chaos-load", daemon=True)

    def start(self, timeout: float = 60.0) -> None:
        """Log every user in; returns when all are ready to go."""
        self._thread.start()
        end = time.monotonic() + timeout
        for _ in self.users:
            while not self.ready.acquire(timeout=0.2):
                if self.error is not None:
                    raise RuntimeError(f"load did not start: {self.error!r}")
                if time.monotonic() > end:
                    raise RuntimeError("users did not log in in time")

    def begin(self, seconds: float) -> float:
        """Let the users go for ``seconds``; returns the start time (epoch)."""
        started = time.time()
        self.end_at = started + seconds
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.go.set)
        return started

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError("the load did not finish in time")
        if self.error is not None:
            raise RuntimeError(f"the load failed: {self.error!r}")

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as e:  # reported to the main thread
            self.error = e

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.go = asyncio.Event()
        await asyncio.gather(*(u.run() for u in self.users))
