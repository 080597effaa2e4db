"""On-demand recording from the softphone, and listening in the admin: real Chromium,
``manage.py serve`` with ``TELEPHONY_RECORDING=on_demand``, the sandbox's simulated
customer at the far end.

The agent calls; once the customer answers, the call button offers "Record". Clicking it
shows the "Recording" indicator (a live region) and the sandbox receives ``record_start``
for the customer leg (dual channel, the configured format); "Stop recording" sends
``record_stop`` and the indicator goes. Before the answer there is no toggle.

The admin's call page plays a stored recording: Chromium's ``<audio>`` asks for it with a
``Range`` request, gets 206, plays, and the page then lists that one listen.
"""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Product, login, login_agent, script_errors, serve_env
from tests.browser.phone import Sandbox, wait_for, wait_softphone_ready
from tests.helpers import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

ADA = '[data-tel-call][data-tel-number="+12025550143"]'


@pytest.fixture(scope="module")
def serve_overrides() -> dict[str, str]:
    return {"TELEPHONY_RECORDING": "on_demand", "TELEPHONY_RECORDING_FORMAT": "wav"}


def record_actions(product: Product, customer: str) -> list[dict[str, Any]]:
    """The sandbox's log of record actions on the customer leg, oldest first."""
    return [
        entry
        for entry in product.sandbox.log()
        if re.search(r"/actions/record_(start|stop)$", entry["path"] or "")
        and customer in entry["path"]
        and entry["executed"]
    ]


def test_recording__the_agent_starts_and_stops_it_and_sees_the_indicator(
    page: Any, product: Product
) -> None:
    sandbox = Sandbox(product)
    ada = page.locator(ADA)
    login_agent(page)
    assert ada.get_attribute("data-tel-recording") == "on_demand"
    wait_softphone_ready(page)
    sandbox.agent_user()
    with page.expect_response(lambda r: r.url.endswith("/api/webrtc/call")) as answer:
        ada.locator("button.tel-call__button").click()
    toggle = ada.locator("button.tel-rec__toggle")
    indicator = ada.locator(".tel-rec__indicator[role=status]")
    agent = sandbox.agent_leg_of(answer.value.json()["call"]["id"])
    wait_for(lambda: sandbox.leg(agent)["bridged"], "the customer to answer (bridged)")
    customer = sandbox.leg(agent)["bridged_with"]

    expect(ada).to_have_attribute("data-tel-call-state", "in-call")
    expect(toggle).to_be_visible()
    expect(toggle).to_have_text("Record")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    expect(indicator).to_have_text("")
    assert record_actions(product, customer) == []

    toggle.click()
    expect(indicator).to_have_text("Recording")
    expect(toggle).to_have_attribute("aria-pressed", "true")
    expect(toggle).to_have_text("Stop recording")
    (start,) = wait_for(lambda: record_actions(product, customer), "record_start at the sandbox")
    assert start["operation"] == "StartCallRecord" and start["status"] == 200, start
    recording = product.sandbox.wait_recording(customer, status="recording")
    assert (recording["channels"], recording["format"]) == ("dual", "wav"), recording

    toggle.click()
    expect(indicator).to_have_text("")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    actions = wait_for(lambda: (a := record_actions(product, customer))[1:] and a, "record_stop")
    assert [a["operation"] for a in actions] == ["StartCallRecord", "StopCallRecording"]

    ada.get_by_role("button", name=re.compile(r"^Hang up")).click()
    expect(toggle).to_have_count(0)
    assert script_errors(page) == []


# Run in serve's own environment (its SQLite and recordings storage): a stored recording of
# a call, as the capture pipeline leaves it. A 2 s stereo WAV, so Chromium can play it.
STORED_RECORDING = """
import hashlib, io, math, struct, wave
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from telephony.models import Call, Recording
buf = io.BytesIO()
with wave.open(buf, "wb") as w:
    w.setnchannels(2); w.setsampwidth(2); w.setframerate(8000)
    w.writeframes(b"".join(
        struct.pack("<hh", int(8000 * math.sin(i / 8000 * 2 * math.pi * 440)),
                    int(8000 * math.sin(i / 8000 * 2 * math.pi * 1000)))
        for i in range(16000)))
data = buf.getvalue()
call = Call.objects.create(user=get_user_model().objects.get(username="agent"),
                           to_number="+12025550143", status="completed")
name = storages["recordings"].save("browser/rec.wav", ContentFile(data))
rec = Recording.objects.create(call=call, telnyx_recording_id="browser-rec", format="wav",
    channels="dual", status="stored", storage_name=name, size_bytes=len(data),
    sha256=hashlib.sha256(data).hexdigest(), duration_seconds=2.0)
print("IDS", call.id, rec.id)
"""


def stored_recording(product: Product, overrides: dict[str, str]) -> tuple[str, str]:
    """(call id, recording id) of a recording stored in the running product."""
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", STORED_RECORDING],
        cwd=ROOT,
        env={**serve_env(product.var_dir), **overrides},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"IDS (\S+) (\S+)", done.stdout)
    assert done.returncode == 0 and match, done.stdout + done.stderr
    return match.group(1), match.group(2)


def test_recording__the_admin_plays_it_with_a_range_request_and_lists_the_listen(
    page: Any, product: Product, serve_overrides: dict[str, str]
) -> None:
    call_id, recording_id = stored_recording(product, serve_overrides)
    login(page)  # the demo superuser: holds telephony.listen_recording
    page.goto(f"/admin/telephony/call/{call_id}/change/")
    expect(page.locator("table.tel-listens")).to_have_count(0)  # nobody has listened yet
    audio = page.locator(f'audio[data-tel-recording="{recording_id}"]')
    assert audio.get_attribute("preload") == "none"
    with page.expect_response(lambda r: r.url.endswith(f"/recordings/{recording_id}/audio")) as got:
        audio.evaluate("a => { a.muted = true; return a.play(); }")
    response = got.value
    assert response.status == 206, response.status
    assert response.request.headers.get("range", "").startswith("bytes=0-")
    assert re.fullmatch(r"bytes 0-\d+/\d+", response.headers["content-range"])
    assert response.headers["cache-control"] == "private, no-store"
    page.wait_for_function(
        "id => document.querySelector(`audio[data-tel-recording='${id}']`).currentTime > 0.2",
        arg=recording_id,
    )
    page.reload()
    listens = page.locator("table.tel-listens tbody tr")
    expect(listens).to_have_count(1)
    expect(listens.first).to_contain_text("demo")
    assert script_errors(page) == []
