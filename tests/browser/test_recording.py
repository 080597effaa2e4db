"""On-demand recording from the softphone: real Chromium, ``manage.py serve`` with
``TELEPHONY_RECORDING=on_demand``, the sandbox's simulated customer at the far end.

The agent calls; once the customer answers, the call button offers "Record". Clicking it
shows the "Recording" indicator (a live region) and the sandbox receives ``record_start``
for the customer leg (dual channel, the configured format); "Stop recording" sends
``record_stop`` and the indicator goes. Before the answer there is no toggle.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import Product, login_agent, script_errors
from tests.browser.phone import Sandbox, wait_for, wait_softphone_ready

expect = pytest.importorskip("playwright.sync_api", reason="pip install playwright").expect

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
    user = sandbox.agent_user()
    ada.locator("button.tel-call__button").click()
    toggle = ada.locator("button.tel-rec__toggle")
    indicator = ada.locator(".tel-rec__indicator[role=status]")
    legs = wait_for(lambda: sandbox.legs_of(user), "the worker's agent leg")
    agent = legs[-1]["call_control_id"]
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
