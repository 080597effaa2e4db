"""The vendored ``@telnyx/webrtc`` in Debian's Chromium against the sandbox: real media.

A tiny page (rtc_page/index.html, served here with the vendored bundle) logs in with a
sandbox token, auto-answers the agent leg a Call Control Dial rings, and measures its
remote audio with an AnalyserNode. Chromium's fake microphone plays a 600 Hz WAV made by
the test. Checked: the sandbox's customer hears 600 Hz, the page hears the customer's
1000 Hz, DTMF from the page reaches the sandbox, and the page's hangup ends the leg with
a signed ``call.hangup`` (and, the legs being bridged, the customer leg too).
"""

from __future__ import annotations

import contextlib
import json
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pytest
from aiohttp import web

from devserver.sandbox.control import ROOT, SandboxProcess

from .conftest import WebhookReceiver
from .rtc_client import Api, until

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]

BUNDLE = ROOT / "static" / "vendor" / "telnyx-webrtc" / "2.27.10" / "bundle.js"
PAGE = Path(__file__).with_name("rtc_page") / "index.html"
AGENT_HZ, CUSTOMER_HZ = 600.0, 1000.0


def tone_wav(path: Path, hz: float, seconds: float = 5.0, level: float = 0.3) -> Path:
    """A mono 48 kHz 16-bit WAV of a pure tone (Chromium loops it as the microphone)."""
    t = np.arange(int(48000 * seconds)) / 48000
    samples = (np.sin(2 * np.pi * hz * t) * level * 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(48000)
        f.writeframes(samples.tobytes())
    return path


@pytest.fixture
async def page_url() -> AsyncIterator[str]:
    """The test page and the vendored bundle on a free port of 127.0.0.1."""

    async def index(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(PAGE)

    async def bundle(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(BUNDLE)

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/bundle.js", bundle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


@pytest.fixture
async def chromium_page(tmp_path: Path, chromium_path: str) -> AsyncIterator[Any]:
    """A Chromium page whose microphone plays 600 Hz; the browser is closed afterwards."""
    from playwright import async_api

    wav = tone_wav(tmp_path / "agent.wav", AGENT_HZ)
    args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--autoplay-policy=no-user-gesture-required",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
    ]
    async with async_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, args=args)
        ours = [p for p in psutil.Process().children(recursive=True) if "chrom" in p.name()]
        try:
            context = await browser.new_context()
            yield await context.new_page()
        finally:
            await browser.close()
            for proc in ours:  # by pid, in case the driver left one behind
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.kill()


async def test_rtc_browser__sdk_answers_and_media_flows_both_ways(
    sandbox: SandboxProcess, receiver: WebhookReceiver, page_url: str, chromium_page: Any
) -> None:
    page = chromium_page
    async with httpx.AsyncClient(timeout=10) as client:
        api = Api(sandbox, client)
        await api.control("POST", "webhooks", {"answer_after": 0.3, "talk_time": 60})
        cred, token = await api.token()
        hooks = receiver.url()

        await page.goto(f"{page_url}?token={token}&host={sandbox.ready['rtc_url']}")
        await page.wait_for_function("window.state.ready", timeout=15000)

        resp = await api.dial(f"sip:{cred['sip_username']}@sip.telnyx.com", webhook_url=hooks)
        agent = resp.json()["data"]["call_control_id"]
        await page.wait_for_function("window.state.states.includes('active')", timeout=15000)

        resp = await api.dial("+15557654321", link_to=agent, bridge_on_answer=True)
        customer = resp.json()["data"]["call_control_id"]
        await api.wait_event(agent, "call.bridged")

        async def customer_hears_agent() -> dict[str, Any] | None:
            heard = (await api.control("GET", f"rtc/calls/{customer}"))["customer_hears"]
            hz = heard["dominant_hz"]
            return heard if hz is not None and abs(hz - AGENT_HZ) < 10 else None

        heard = await until(customer_hears_agent, timeout=20, what="600 Hz at the customer")

        async def page_hears_customer() -> dict[str, Any] | None:
            got: dict[str, Any] = await page.evaluate("window.dominant && window.dominant()")
            ok = got and abs(got["hz"] - CUSTOMER_HZ) < 15 and got["db"] > -60
            return got if ok else None

        in_page = await until(page_hears_customer, timeout=20, what="1000 Hz in the page")

        await page.evaluate("window.call.dtmf('1'); window.call.dtmf('2'); window.call.dtmf('#')")

        async def digits() -> bool:
            return bool((await api.control("GET", f"rtc/calls/{agent}"))["dtmf"] == "12#")

        await until(digits, what="DTMF at the sandbox")

        await page.evaluate("window.call.hangup()")

        async def hung_up() -> dict[str, Any] | None:
            for hook in receiver.received(hooks):
                data = json.loads(hook.body)["data"]
                if data["event_type"] == "call.hangup":
                    return dict(data["payload"])
            return None

        hangup = await until(hung_up, what="call.hangup at the receiver")
        assert (hangup["hangup_cause"], hangup["hangup_source"]) == ("normal_clearing", "callee")
        assert (await api.wait_event(customer, "call.hangup"))["hangup_cause"] == "normal_clearing"
        types = [json.loads(h.body)["data"]["event_type"] for h in receiver.received(hooks)]
        assert types == ["call.initiated", "call.answered", "call.bridged", "call.hangup"]
        errors = await page.evaluate("window.state.errors")
        print(f"customer heard {heard}; page heard {in_page}; page errors {errors}")
