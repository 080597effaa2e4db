"""A load user that holds the WebSocket (``/ws/webrtc/``) open and pings it.

Each ping is one :class:`bench.chaos_load.Record` of kind ``ws``: status 101 when the pong
came within ``PONG_TIMEOUT``, else the error (``closed 1011`` when the server closed the
socket because Redis went away, ``no pong``, a refused connect). After a close it
connects again at once, as the page does (with backoff there).
"""

from __future__ import annotations

import asyncio
import random
import time

import aiohttp

from bench.chaos_load import Load, Record, User

PING_EVERY = 0.3
PONG_TIMEOUT = 3.0


class WsWatcher(User):
    def __init__(self, load: Load, name: str, password: str) -> None:
        super().__init__(load, name, password, random.Random(name))

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar, timeout=timeout) as self.session:
            await self.login()
            self.load.ready.release()
            await self.load.go.wait()
            while time.time() < self.load.end_at:
                await self._connected()

    async def _connected(self) -> None:
        assert self.session is not None
        url = self.load.base.replace("http://", "ws://") + "/ws/webrtc/"
        record = self._record()
        try:
            async with self.session.ws_connect(url, origin=self.load.base, heartbeat=None) as ws:
                while time.time() < self.load.end_at:
                    await ws.send_json({"type": "ping"})
                    if not await self._pong(ws):
                        record.error = f"closed {ws.close_code}" if ws.closed else "no pong"
                        return self._done(record)
                    record.status = 101
                    self._done(record)
                    await asyncio.sleep(PING_EVERY)
                    record = self._record()
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            record.error = f"{type(e).__name__}"
            self._done(record)
            await asyncio.sleep(0.1)

    async def _pong(self, ws: aiohttp.ClientWebSocketResponse) -> bool:
        end = time.monotonic() + PONG_TIMEOUT
        while (left := end - time.monotonic()) > 0:
            try:
                msg = await ws.receive(timeout=left)
            except TimeoutError:
                return False
            if msg.type != aiohttp.WSMsgType.TEXT:
                return False
            if '"pong"' in msg.data:
                return True
        return False

    def _record(self) -> Record:
        return Record(self.name, "ws", "WS", "/ws/webrtc/", time.time(), time.monotonic(), None,
                      "", None)  # fmt: skip

    def _done(self, record: Record) -> None:
        record.elapsed = time.monotonic() - record.elapsed  # started as a monotonic stamp
        self.load.records.append(record)
