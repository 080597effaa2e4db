"""How long an agent waits: click on Call -> the agent leg rings in the page, and click ->
the customer's audio plays in the page, at 0 and 200 ms sandbox latency.

The whole product runs as ``manage.py serve`` (isolated Redis, SQLite and sandbox); a
headless Chromium (fake microphone) logs in as the non-staff agent and clicks Call. The
page measures itself, on ``performance.now()``: a capturing click listener stamps the
click, a 5 ms poll sees the softphone leave ``ready`` (the invite arrived), and an
AnalyserNode on the remote ``<audio>`` finds the first frame whose dominant bin is the
customer's 1 kHz tone (before the bridge the page hears 440 + 480 Hz ringback).

The sandbox's own time is taken out to give the product's share: its ``DialCall``
durations from the request log (injected latency included) and its timetable
(``initiated_after`` before a leg rings, ``answer_after`` before the customer answers).

    python -m bench.softphone_bench --runs 5 --latencies 0 200
"""

from __future__ import annotations

import argparse
import re
import time
from typing import Any

import httpx

from bench.common import Env, emit, free_port, median, pct, product_env

CALL_CONTROL_OPS = ("DialCall", "RetrieveCallStatus", "HangupCall")
ANSWER_AFTER = 0.2  # the simulated customer answers this long after its leg is dialled
INITIATED_AFTER = 0.05
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]
ROW = '[data-tel-call][data-tel-number="+12025550143"]'
BUTTON = f"{ROW} button.tel-call__button"

# Installed before the click: resolves {ringing_ms, audio_ms} measured from the click.
MEASURE = """(tone) => {
  window.__bench = new Promise((resolve) => {
    let t0 = null, ringing = null, ctx = null, analyser = null, bins = null;
    document.addEventListener("click", () => { t0 = performance.now(); },
                              { capture: true, once: true });
    const done = (audio) => {
      clearInterval(timer);
      if (ctx) ctx.close();
      resolve({ ringing_ms: ringing, audio_ms: audio });
    };
    const timer = setInterval(() => {
      if (t0 === null) return;
      const now = performance.now();
      const sp = window.TelephonyCallButtons.state().softphone;
      if (ringing === null && sp.state !== "ready") ringing = now - t0;
      const el = document.querySelector("audio.tel-phone__audio");
      if (!analyser && el && el.srcObject) {
        ctx = new AudioContext();
        analyser = ctx.createAnalyser();
        analyser.fftSize = 2048;
        analyser.smoothingTimeConstant = 0;
        ctx.createMediaStreamSource(el.srcObject).connect(analyser);
        bins = new Float32Array(analyser.frequencyBinCount);
      }
      if (!analyser) return;
      analyser.getFloatFrequencyData(bins);
      let best = 2;
      for (let i = 2; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
      const hz = (best * ctx.sampleRate) / analyser.fftSize;
      if (Math.abs(hz - tone) < 30 && bins[best] > -60) done(now - t0);
    }, 5);
    setTimeout(() => done(null), 30000);
  });
}"""


def start_serve(env: Env) -> tuple[str, Any]:
    """``manage.py serve`` on a free port: (its URL, a SandboxControl), once it is ready."""
    from devserver.sandbox.control import SandboxControl

    port = free_port()
    env.manage("serve", "--port", str(port), name="serve")
    log = env.var / "serve-0.log"
    end = time.monotonic() + 90
    while time.monotonic() < end:
        text = log.read_text(errors="replace") if log.exists() else ""
        match = re.search(r"sandbox, (http://\S+)/v2", text)
        if match and "Ready: http" in text:
            return f"http://127.0.0.1:{port}", SandboxControl(f"{match.group(1)}/_sandbox")
        if env.procs[-1].poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"serve did not start:\n{log.read_text(errors='replace')[-3000:]}")


def one_call(page: Any, sandbox: Any, tone: float, latency: int) -> dict[str, Any]:
    """Click Call, measure in the page, hang up; the run's numbers."""
    sandbox.reset(keep_state=True)  # a clean request log (and no faults: set them again)
    for op in CALL_CONTROL_OPS if latency else ():
        sandbox.set_fault(op, latency_ms=latency)
    page.evaluate(MEASURE, tone)
    page.click(BUTTON)
    got: dict[str, Any] = page.evaluate("window.__bench")
    dials = [e for e in sandbox.log() if e["operation"] == "DialCall"]
    page.locator(ROW).get_by_role("button", name=re.compile("^Hang up")).click()
    page.wait_for_function(
        "() => window.TelephonyCallButtons.state().softphone.state === 'ready'", timeout=20_000
    )
    page.wait_for_selector(BUTTON, timeout=20_000)
    if got["ringing_ms"] is None or got["audio_ms"] is None or len(dials) < 2:
        raise RuntimeError(f"incomplete run: {got}, {len(dials)} dials")
    agent_dial, customer_dial = (d["duration_ms"] for d in dials[:2])
    ringing, audio = got["ringing_ms"], got["audio_ms"]
    timetable = (2 * INITIATED_AFTER + ANSWER_AFTER) * 1000
    return {
        "click_to_ringing_ms": round(ringing, 1),
        "click_to_audio_ms": round(audio, 1),
        "sandbox_dial_ms": [round(agent_dial, 1), round(customer_dial, 1)],
        "product_ringing_ms": round(ringing - agent_dial - INITIATED_AFTER * 1000, 1),
        "product_audio_ms": round(audio - agent_dial - customer_dial - timetable, 1),
    }


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": runs}
    for key in ("click_to_ringing_ms", "click_to_audio_ms", "product_ringing_ms",
                "product_audio_ms"):  # fmt: skip
        values = [r[key] for r in runs]
        out[key] = {"median": round(median(values), 1), "p90": round(pct(values, 90), 1)}
    return out


def run(runs: int, latencies: list[int]) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    settings = {
        "TELEPHONY_WORKERS": "1",
        "TELEPHONY_SPARE_WORKERS": "1",
        "TELEPHONY_RATE_LIMIT_CALL": "1000/m",
    }
    with product_env(**settings) as env:
        url, sandbox = start_serve(env)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_context(base_url=url).new_page()
                page.set_default_timeout(30_000)
                page.goto("/accounts/login/?next=/")
                page.fill("#id_username", "agent")
                page.fill("#id_password", "agent")
                page.click("button[type=submit]")
                page.wait_for_function(
                    "() => { const t = window.TelephonyCallButtons;"
                    " return t && t.state().softphone.state === 'ready'; }",
                    timeout=60_000,
                )
                rtc = httpx.get(f"{sandbox.control_url}/rtc", timeout=5).json()
                tone = float(rtc["audio"]["tone_hz"])
                sandbox.set_webhooks(answer_after=ANSWER_AFTER, initiated_after=INITIATED_AFTER)
                results: dict[str, Any] = {}
                one_call(page, sandbox, tone, 0)  # warm-up (first getUserMedia), not counted
                for latency in latencies:
                    measured = [one_call(page, sandbox, tone, latency) for _ in range(runs)]
                    results[str(latency)] = summary(measured)
            finally:
                browser.close()
    return {"runs": runs, "answer_after_s": ANSWER_AFTER, "initiated_after_s": INITIATED_AFTER,
            "latency_ms": results}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="calls per latency")
    parser.add_argument("--latencies", type=int, nargs="+", default=[0, 200], help="ms")
    args = parser.parse_args()
    emit(run(args.runs, args.latencies))


if __name__ == "__main__":
    main()
