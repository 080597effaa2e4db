"""The proof that an agent and a customer talk: real Chromium, ``manage.py serve`` on its
embedded defaults, the sandbox's simulated customer at the far end.

The page's microphone is a WAV of a known tone (``MIC_HZ``, Chromium's
``--use-file-for-fake-audio-capture``), so both directions are checked by frequency: the
page's remote audio is dominated by the customer's 1 kHz test tone (an AnalyserNode), and
the sandbox measures ``MIC_HZ`` in what the customer hears. A non-staff agent logs in
through the site's login page and clicks Call; mute silences the customer's side, DTMF
digits arrive, and hang-up ends both legs and leaves the row ``completed`` with a talk
time and ``hangup_side`` ``agent``.

The product runs with ``TELEPHONY_RECORDING=all``: after hang-up the call's dual-channel
recording, fetched by a worker from the sandbox and stored, carries the agent's ``MIC_HZ`` on
its left channel and the customer's tone on its right; the admin's player asks for it with a
``Range`` request.

The second test SIGKILLs every worker and the spare in the middle of the conversation:
media flows browser <-> Telnyx, never through a worker, so both sides keep hearing each
other; once the supervisor's replacements are serving, hang-up still ends both legs.
"""

from __future__ import annotations

import io
import math
import os
import re
import signal
import struct
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from playwright.sync_api import expect

from devserver.sandbox.rtc.audio import RATE, dominant_hz
from tests.browser.conftest import Product, login, login_agent, screenshot, script_errors
from tests.browser.phone import Sandbox, hears_tone, wait_for, wait_silent, wait_softphone_ready

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

ADA = '[data-tel-call][data-tel-number="+12025550143"]'
MIC_HZ = 600.0  # the agent's "voice": far from the customer's 1 kHz and its echo
MIC_LEVEL = 0.2  # its echo (x0.5) stays below the customer's tone (0.25)
TALK_FOR_A_WHILE = 2.5  # seconds both sides must keep hearing each other after the kill


def write_tone_wav(path: Path, hz: float, seconds: float = 2.0, rate: int = 48000) -> Path:
    """A mono 16-bit WAV of a pure tone, a whole number of cycles so that it loops cleanly."""
    n = int(rate * seconds)
    frames = b"".join(
        struct.pack("<h", int(MIC_LEVEL * 32767 * math.sin(2 * math.pi * hz * i / rate)))
        for i in range(n)
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return path


@pytest.fixture(scope="module")
def chromium_extra_args(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    wav = write_tone_wav(tmp_path_factory.mktemp("mic") / "mic.wav", MIC_HZ)
    return [f"--use-file-for-fake-audio-capture={wav}"]


@pytest.fixture(scope="module")
def serve_overrides() -> dict[str, str]:
    # A worker and a loaded spare, as in production: the kill test ends both. Every answered
    # call is recorded (WAV: the test reads its channels with the standard library).
    return {
        "TELEPHONY_SPARE_WORKERS": "1",
        "TELEPHONY_RECORDING": "all",
        "TELEPHONY_RECORDING_FORMAT": "wav",
    }


def customer_hears_mic(sandbox: Sandbox, agent: str) -> dict[str, Any] | None:
    heard = sandbox.customer_hears(agent)
    hz = heard["dominant_hz"]
    return heard if hz is not None and abs(hz - MIC_HZ) < 15 else None


class Conversation:
    """One call placed from the page: its ids, once both sides hear each other."""

    def __init__(self, page: Any, product: Product) -> None:
        self.page, self.product = page, product
        self.sandbox = Sandbox(product)
        self.ada = page.locator(ADA)
        self.controls = self.ada.locator(".tel-phone")
        login_agent(page)
        wait_softphone_ready(page)
        self.sandbox.agent_user()  # the softphone logged in to /rtc
        with page.expect_response(lambda r: r.url.endswith("/api/webrtc/call")) as answer:
            self.ada.locator("button.tel-call__button").click()
        clicked = time.monotonic()
        assert answer.value.status == 201, answer.value.text()
        self.call_id: str = answer.value.json()["call"]["id"]
        self.agent: str = self.sandbox.agent_leg_of(self.call_id)
        wait_for(lambda: self.sandbox.leg(self.agent)["bridged"], "the customer to be bridged")
        self.customer: str = self.sandbox.leg(self.agent)["bridged_with"]
        self.tone = self.sandbox.tone_hz()
        self.heard = wait_for(
            lambda: hears_tone(page, self.tone), f"{self.tone} Hz in the page's remote audio"
        )
        self.seconds_to_audio = time.monotonic() - clicked
        self.customer_heard = wait_for(
            lambda: customer_hears_mic(self.sandbox, self.agent),
            f"the customer to hear the agent's {MIC_HZ} Hz",
        )

    def row(self) -> dict[str, Any]:
        res = self.page.request.get(f"/api/webrtc/call/{self.call_id}")
        assert res.status == 200, res.text()
        call: dict[str, Any] = res.json()["call"]
        return call

    def hang_up_and_settle(self) -> dict[str, Any]:
        """Click Hang up; both legs end at the sandbox and the row settles: the row."""
        self.ada.get_by_role("button", name=re.compile(r"^Hang up")).click()
        for leg in (self.agent, self.customer):
            wait_for(lambda leg=leg: self.sandbox.hung_up(leg), f"call.hangup of {leg}")
        assert self.sandbox.leg(self.agent)["state"] != "answered"
        expect(self.controls).to_have_count(0)
        return wait_for(
            lambda: (row := self.row())["status"] == "completed" and row,
            "the row to settle as completed",
            timeout=20,
        )


def channel_tones(wav_bytes: bytes) -> tuple[float | None, float | None]:
    """The dominant frequency of a 16-bit stereo WAV's left and right channels."""
    with wave.open(io.BytesIO(wav_bytes)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, RATE)
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    left, right = (frames[:, i].astype(np.float64) / 32768 for i in (0, 1))
    return dominant_hz(left), dominant_hz(right)


def stored_recording(page: Any, call_id: str) -> tuple[str, bytes]:
    """As the demo superuser (may listen): the call's recording, played in the admin's
    player (a Range request, 206) and then fetched whole. Its id and bytes."""
    page.context.clear_cookies()
    login(page)
    audio = page.locator("audio[data-tel-recording]")

    def shown() -> bool:
        page.goto(f"/admin/telephony/call/{call_id}/change/")
        return audio.count() == 1

    wait_for(shown, "the recording stored and shown on the admin's call page", timeout=30)
    recording_id = audio.get_attribute("data-tel-recording")
    with page.expect_response(lambda r: "/audio" in r.url) as got:
        audio.evaluate("a => { a.muted = true; return a.play(); }")
    assert got.value.status == 206, got.value.status
    assert got.value.request.headers.get("range", "").startswith("bytes=0-")
    whole = page.request.get(got.value.url)
    assert whole.status == 200 and whole.headers["content-type"] == "audio/wav", whole.headers
    return str(recording_id), whole.body()


@pytest.fixture
def shots(capsys: pytest.CaptureFixture[str]) -> Iterator[list[str]]:
    taken: list[str] = []
    yield taken
    with capsys.disabled():
        print(f"\nscreenshots: {taken}")


def test_conversation__an_agent_calls_and_both_sides_hear_each_other(
    page: Any, product: Product, shots: list[str]
) -> None:
    # serve's own sandbox timetable: a person can talk (the sandbox alone hangs up at 5 s).
    assert product.sandbox.set_webhooks()["talk_time"] >= 600
    call = Conversation(page, product)
    assert call.seconds_to_audio < 10, call.seconds_to_audio
    screenshot(page, "21-conversation-in-call", shots)

    # Mute: the customer hears silence; unmute: the agent again.
    call.controls.get_by_role("button", name="Mute microphone").click()
    wait_silent(lambda: call.sandbox.customer_hears(call.agent), "silence after mute")
    call.controls.get_by_role("button", name="Unmute microphone").click()
    wait_for(lambda: customer_hears_mic(call.sandbox, call.agent), "the agent after unmute")

    call.controls.get_by_role("button", name="Keypad").click()
    for key in "42#":
        call.controls.get_by_role("button", name=f"Send {key}").click()
    wait_for(lambda: call.sandbox.leg(call.agent)["dtmf"] == "42#", "the digits at the sandbox")

    row = call.hang_up_and_settle()
    assert row["hangup_side"] == "agent", row
    assert row["duration_seconds"] and row["duration_seconds"] > 0, row
    print(f"page heard {call.heard}; customer heard {call.customer_heard}; row {row}")
    assert script_errors(page) == []

    # The conversation was recorded (TELEPHONY_RECORDING=all): the agent on the left channel,
    # the customer on the right, each with their own test signal.
    recording_id, audio = stored_recording(page, call.call_id)
    left, right = channel_tones(audio)
    assert left is not None and abs(left - MIC_HZ) < 15, (left, right)
    assert right is not None and abs(right - call.tone) < 15, (left, right)
    print(f"recording {recording_id}: {len(audio)} bytes, left {left} Hz, right {right} Hz")


def test_conversation__survives_a_lost_signalling_socket_by_reattaching(
    page: Any, product: Product, shots: list[str]
) -> None:
    """A network blip closes the page's signalling socket mid-call. The SDK logs in again as
    a reconnection, the call is reattached (``telnyx_rtc.attach``) and the page's controls
    follow the SDK's new call object: both sides hear each other, mute and hang-up work."""
    call = Conversation(page, product)
    user = call.sandbox.agent_user()
    dropped = httpx.post(f"{call.sandbox.control}/rtc/drop", json={"sip_username": user}, timeout=5)
    assert dropped.json()["closed"] >= 1

    def reattached() -> bool:
        leg = call.sandbox.leg(call.agent)
        return not leg["detached"] and leg["media_state"] == "connected" and leg["answered_by"]

    wait_for(reattached, "the call to be reattached on a new socket", timeout=30)
    wait_for(lambda: hears_tone(page, call.tone), "the customer again, in the page")
    wait_for(
        lambda: customer_hears_mic(call.sandbox, call.agent), "the agent again, at the customer"
    )
    assert not call.sandbox.hung_up(call.agent) and not call.sandbox.hung_up(call.customer)
    screenshot(page, "23-conversation-after-reattach", shots)
    # The controls drive the reattached call: mute silences the agent, unmute brings it back.
    call.controls.get_by_role("button", name="Mute microphone").click()
    wait_silent(lambda: call.sandbox.customer_hears(call.agent), "silence after mute")
    call.controls.get_by_role("button", name="Unmute microphone").click()
    wait_for(lambda: customer_hears_mic(call.sandbox, call.agent), "the agent after unmute")
    row = call.hang_up_and_settle()
    assert row["hangup_side"] == "agent", row
    assert script_errors(page) == []


def test_conversation__goes_on_when_every_worker_is_killed_and_hangs_up_after(
    page: Any, product: Product, shots: list[str]
) -> None:
    call = Conversation(page, product)
    _, workers = product.telephony_pids()
    assert len(workers) >= 2, f"expected a worker and a spare: {workers}"
    for pid in workers:  # all at once: no worker left to take anything over
        os.kill(pid, signal.SIGKILL)

    # The conversation does not pass through the workers: it goes on, both ways.
    end = time.monotonic() + TALK_FOR_A_WHILE
    while time.monotonic() < end:
        assert hears_tone(page, call.tone), "the page stopped hearing the customer"
        assert customer_hears_mic(call.sandbox, call.agent), "the customer stopped hearing"
    # The call's controls stay while the service is down (the other rows may say so).
    expect(call.ada.get_by_role("button", name=re.compile(r"^Hang up"))).to_be_visible()
    screenshot(page, "22-conversation-after-kill", shots)

    # Once the supervisor's replacements serve, hang-up still ends both legs.
    def replaced() -> bool:
        now = set(product.telephony_pids()[1])
        return bool(now) and not now & set(workers) and product.status().get("status") == "ready"

    wait_for(replaced, "new workers serving", timeout=60)
    row = call.hang_up_and_settle()
    assert row["hangup_side"] == "agent", row
    assert row["duration_seconds"] and row["duration_seconds"] > 0, row
    assert script_errors(page) == []
