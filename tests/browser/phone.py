"""What the softphone's browser tests share: polling with a deadline, the sandbox seen
as a worker and as the customer (``/_sandbox/rtc``), and the page's own audio.

The page side measures what the agent hears with an AnalyserNode on the softphone's
``<audio>`` element (the dominant frequency, not merely bytes); the sandbox side reports
what the simulated customer hears (``customer_hears``: dominant frequency and RMS).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from tests.browser.conftest import Product

T = TypeVar("T")


def wait_for(fn: Callable[[], T | None], what: str, timeout: float = 15.0) -> T:
    """Poll ``fn`` until it returns something truthy; fail with ``what`` at the deadline."""
    end = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < end:
        last = fn()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


# Below -60 dBFS over the last second: silence to a listener. Not exactly 0: the Opus
# decoder may leave a trace of the last words, or comfort noise, in a muted stream.
SILENCE_RMS = 0.001
# A meter keeps the last second it received: when no frame at all arrives for this long (a
# muted browser may send no RTP; a loaded machine delivers it in bursts), nothing is heard.
NO_FRAMES_FOR = 1.5


def wait_silent(heard: Callable[[], dict[str, Any]], what: str, timeout: float = 15.0) -> None:
    """Wait until ``heard()`` (a meter report) is silence, or no frame reaches the meter
    for ``NO_FRAMES_FOR`` seconds; fail saying what it last was."""
    report: dict[str, Any] = {}
    frames, since = -1, time.monotonic()

    def silent() -> bool:
        nonlocal report, frames, since
        report = heard()
        if report["frames"] != frames:
            frames, since = report["frames"], time.monotonic()
        return bool(report["rms"] < SILENCE_RMS) or time.monotonic() - since >= NO_FRAMES_FOR

    try:
        wait_for(silent, what, timeout)
    except AssertionError:
        raise AssertionError(f"timed out waiting for {what}; last meter: {report}") from None


class Sandbox:
    """The sandbox's REST API, called as a worker would, and its WebRTC introspection."""

    def __init__(self, product: Product) -> None:
        self.sandbox = product.sandbox
        info = product.sandbox.info()
        self.base = info["base_url"]
        self.control = product.sandbox.control_url
        self.headers = {"Authorization": f"Bearer {info['api_key']}"}
        self.connection = info["call_connection_id"]
        self.from_number = info["from_number"]

    def dial(self, to: str, **extra: Any) -> str:
        body = {"connection_id": self.connection, "to": to, "from": self.from_number, **extra}
        res = httpx.post(f"{self.base}/calls", json=body, headers=self.headers, timeout=10)
        assert res.status_code in (200, 201), res.text
        return str(res.json()["data"]["call_control_id"])

    def agent_user(self) -> str:
        def ready() -> str | None:
            sessions = httpx.get(f"{self.control}/rtc", timeout=5).json()["sessions"]
            users = [s["sip_username"] for s in sessions if s["ready"]]
            return users[-1] if users else None

        return wait_for(ready, "the page's softphone to log in to /rtc")

    def legs_of(self, user: str) -> list[dict[str, Any]]:
        legs: list[dict[str, Any]] = httpx.get(f"{self.control}/rtc/calls", timeout=5).json()
        return [leg for leg in legs if leg["sip_username"] == user]

    def agent_leg_of(self, call_id: str) -> str:
        """The agent leg the worker dialled for our call ``call_id`` (by its client_state):
        not an earlier call's, which the sandbox still lists, nor none yet, since the
        sandbox rings a Dial's leg just after answering the Dial."""

        def ours(leg: dict[str, Any]) -> bool:
            raw = leg.get("client_state")
            return bool(raw) and json.loads(base64.b64decode(raw)).get("call") == call_id

        def found() -> str | None:
            legs = httpx.get(f"{self.control}/rtc/calls", timeout=5).json()
            mine = [leg for leg in legs if ours(leg)]
            return str(mine[-1]["call_control_id"]) if mine else None

        return wait_for(found, f"the worker's agent leg for call {call_id}")

    def leg(self, call_control_id: str) -> dict[str, Any]:
        """One agent leg's report. The sandbox rings a Dial's leg just after answering the
        Dial, so a leg dialled a moment ago may not be known yet: wait for it."""

        def report() -> dict[str, Any] | None:
            res = httpx.get(f"{self.control}/rtc/calls/{call_control_id}", timeout=5)
            if res.status_code == 404:
                return None
            assert res.status_code == 200, res.text
            body: dict[str, Any] = res.json()
            return body

        return wait_for(report, f"the sandbox to know the agent leg {call_control_id}", 5)

    def tone_hz(self) -> float:
        """The simulated customer's test tone (1 kHz unless configured)."""
        return float(httpx.get(f"{self.control}/rtc", timeout=5).json()["audio"]["tone_hz"])

    def customer_hears(self, agent: str) -> dict[str, Any]:
        """What the customer bridged to ``agent`` hears: ``{"dominant_hz", "rms", ...}``."""
        heard: dict[str, Any] = self.leg(agent)["customer_hears"]
        return heard

    def hung_up(self, call_control_id: str) -> bool:
        """True once the sandbox delivered this leg's ``call.hangup`` webhook."""
        return any(
            d["event_type"] == "call.hangup" and d["delivered"]
            for d in self.sandbox.webhooks(call_control_id)
        )


def client_state(call_id: str, leg: str = "agent") -> str:
    """What the worker puts on the agent leg's Dial (base64 of JSON)."""
    return base64.b64encode(json.dumps({"call": call_id, "leg": leg}).encode()).decode()


def softphone_state(page: Any) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate("window.TelephonyCallButtons.state().softphone")
    return state


def wait_softphone_ready(page: Any) -> None:
    page.wait_for_function(
        "() => { const t = window.TelephonyCallButtons;"
        " return t && t.state().softphone.state === 'ready'; }",
        timeout=20_000,
    )


DOMINANT_HZ = """async () => {
  const audio = document.querySelector("audio.tel-phone__audio");
  if (!audio || !audio.srcObject) return null;
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 8192;
  ctx.createMediaStreamSource(audio.srcObject).connect(analyser);
  await new Promise((r) => setTimeout(r, 800));
  const bins = new Float32Array(analyser.frequencyBinCount);
  analyser.getFloatFrequencyData(bins);
  let best = 2;
  for (let i = 2; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
  const hz = (best * ctx.sampleRate) / analyser.fftSize;
  await ctx.close();
  return { hz, db: bins[best] };
}"""


def page_hears(page: Any) -> dict[str, float] | None:
    """``{"hz", "db"}``: the dominant frequency of the page's remote audio (None: none)."""
    heard: dict[str, float] | None = page.evaluate(DOMINANT_HZ)
    return heard


def hears_tone(page: Any, hz: float, tolerance: float = 30.0) -> dict[str, float] | None:
    """The page's measurement when its remote audio is dominated by ``hz``, else None."""
    heard = page_hears(page)
    return heard if heard and abs(heard["hz"] - hz) < tolerance else None
