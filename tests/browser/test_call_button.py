"""The call button in a real headless Chromium, against the real product (`manage.py serve`).

What a person sees: log in as demo/demo, open the contacts page, click a call button,
watch the call go ringing -> in call -> ended from the sandbox's webhooks; hang up by
hand; then the telephony workers stop (SIGSTOP: hung, as far as anyone can tell) and
every button turns into "Calls unavailable" without a reload, and comes back when they
resume. Screenshots of each state go to artifacts/browser/.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Product, login, screenshot, script_errors

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

CONTACTS = 5
ADA = '[data-tel-call][data-tel-number="+12025550143"]'
GRACE = '[data-tel-call][data-tel-number="+13125550178"]'
KATHERINE = '[data-tel-call][data-tel-number="+17575550112"]'
CALL_BUTTONS = "button.tel-call__button"
UNAVAILABLE = ".tel-unavailable"


def report(capsys: pytest.CaptureFixture[str], shots: list[str]) -> None:
    with capsys.disabled():
        print("\nscreenshots:\n" + "\n".join(f"  {path}" for path in shots))


def assert_no_reload(page: Any) -> None:
    assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"


def test_call_button__shows_progress_and_follows_the_service_live(
    page: Any, product: Product, capsys: pytest.CaptureFixture[str]
) -> None:
    shots: list[str] = []
    product.wait_status(healthy=True)
    product.sandbox.set_webhooks(answer_after=1.5, talk_time=2.5)
    login(page)
    expect(page.locator("[data-tel-service-status]")).to_have_text("Ready")
    expect(page.locator(CALL_BUTTONS)).to_have_count(CONTACTS)
    expect(page.get_by_role("button", name="Call Ada Lovelace, +1 202-555-0143")).to_be_enabled()
    page.evaluate("window.__sameDocument = true")
    screenshot(page, "01-ready", shots)

    # A call from click to hang-up, driven by the sandbox's webhooks.
    ada = page.locator(ADA)
    status = ada.locator(".tel-call__status")
    ada.get_by_role("button", name=re.compile(r"^Call Ada")).click()
    expect(status).to_have_text("Ringing…")
    expect(ada.get_by_role("button", name=re.compile(r"^Hang up"))).to_be_visible()
    screenshot(page, "02-ringing", shots)
    expect(status).to_have_text("In call")
    expect(ada.locator(".tel-call__timer")).to_have_text(re.compile(r"^0:0\d$"))
    screenshot(page, "03-in-call", shots)
    expect(status).to_have_text(re.compile(r"^Call ended"), timeout=10_000)
    expect(ada.get_by_role("button", name=re.compile(r"^Hang up"))).to_have_count(0)
    expect(ada.locator(CALL_BUTTONS)).to_be_enabled()
    screenshot(page, "04-ended", shots)

    # Hanging up by hand, with the keyboard: the focus follows call -> hang up -> call.
    product.sandbox.set_webhooks(answer_after=0.3, talk_time=60)
    grace = page.locator(GRACE)
    grace.locator(CALL_BUTTONS).focus()
    page.keyboard.press("Enter")
    hang_up = grace.get_by_role("button", name=re.compile(r"^Hang up"))
    expect(hang_up).to_be_focused()
    expect(grace.locator(".tel-call__status")).to_have_text("In call")
    page.keyboard.press("Enter")
    expect(grace.locator(".tel-call__status")).to_have_text(re.compile(r"^Call ended"))
    expect(grace.locator(CALL_BUTTONS)).to_be_enabled()
    expect(grace.locator(CALL_BUTTONS)).to_be_focused()

    # The workers stop: every button turns into "Calls unavailable", no reload.
    product.stop_telephony()
    expect(page.locator(UNAVAILABLE)).to_have_count(CONTACTS, timeout=15_000)
    expect(page.locator(CALL_BUTTONS)).to_have_count(0)
    expect(page.locator("[data-tel-service-status]")).to_have_text("Unavailable")
    assert_no_reload(page)
    screenshot(page, "05-unavailable", shots)

    # They resume: the buttons come back by themselves.
    product.resume_telephony()
    expect(page.locator(CALL_BUTTONS)).to_have_count(CONTACTS, timeout=30_000)
    expect(page.locator(UNAVAILABLE)).to_have_count(0)
    expect(page.get_by_role("button", name="Call Ada Lovelace, +1 202-555-0143")).to_be_enabled()
    assert_no_reload(page)
    screenshot(page, "06-back", shots)

    report(capsys, shots)
    assert script_errors(page) == []


def test_call_button__polls_when_the_websocket_is_down(
    page: Any, product: Product, capsys: pytest.CaptureFixture[str]
) -> None:
    shots: list[str] = []
    product.wait_status(healthy=True)
    product.sandbox.set_webhooks(answer_after=0.5, talk_time=5)
    # Every WebSocket to /ws/webrtc/ is refused: progress and state must come from polling.
    page.route_web_socket(re.compile(r"/ws/webrtc/"), lambda ws: ws.close())
    # ... and the page keeps its agent's telephony seat with the HTTP heartbeat instead.
    with page.expect_request(
        lambda r: r.method == "POST" and r.url.endswith("/api/webrtc/presence"), timeout=15_000
    ) as beat:
        login(page)
    assert beat.value.response().status == 204
    page.evaluate("window.__sameDocument = true")
    expect(page.locator(CALL_BUTTONS)).to_have_count(CONTACTS)

    katherine = page.locator(KATHERINE)
    status = katherine.locator(".tel-call__status")
    katherine.locator(CALL_BUTTONS).click()
    expect(status).to_have_text("In call", timeout=10_000)
    expect(status).to_have_text(re.compile(r"^Call ended"), timeout=15_000)
    assert page.evaluate("window.TelephonyCallButtons.state().socket") is False

    product.stop_telephony()
    expect(page.locator(UNAVAILABLE)).to_have_count(CONTACTS, timeout=20_000)
    screenshot(page, "07-unavailable-polling", shots)
    product.resume_telephony()
    expect(page.locator(CALL_BUTTONS)).to_have_count(CONTACTS, timeout=30_000)
    assert_no_reload(page)

    report(capsys, shots)
    assert script_errors(page) == []


def test_call_button__anonymous_visitor_is_asked_to_log_in(
    page: Any, product: Product, capsys: pytest.CaptureFixture[str]
) -> None:
    shots: list[str] = []
    page.goto("/")
    expect(page.locator(UNAVAILABLE)).to_have_count(CONTACTS)
    expect(page.locator(CALL_BUTTONS)).to_have_count(0)
    expect(page.get_by_role("link", name="Log in to call")).to_have_count(CONTACTS)
    screenshot(page, "08-anonymous", shots)
    report(capsys, shots)
    assert script_errors(page) == []


def test_serve__serves_static_files(product: Product) -> None:
    assert product.serves_static()


def test_call_button__buttons_added_later_work_too(
    page: Any, product: Product, capsys: pytest.CaptureFixture[str]
) -> None:
    product.wait_status(healthy=True)
    product.sandbox.set_webhooks(answer_after=0.3, talk_time=0.5)
    login(page)
    expect(page.locator(CALL_BUTTONS)).to_have_count(CONTACTS)
    # A fragment fetched later (as htmx would), its own <script> tag included: the
    # script must not start twice, and the new button must work.
    page.evaluate(
        """async () => {
            const html = await (await fetch("/")).text();
            const doc = new DOMParser().parseFromString(html, "text/html");
            const box = document.createElement("div");
            box.id = "later";
            box.appendChild(document.adoptNode(doc.querySelector("[data-tel-call]")));
            document.querySelector("main").appendChild(box);
        }"""
    )
    later = page.locator("#later [data-tel-call]")
    expect(later).to_have_attribute("data-tel-ready", "")
    later.locator(CALL_BUTTONS).click()
    expect(later.locator(".tel-call__status")).to_have_text(re.compile(r"^Call ended"))
    assert script_errors(page) == []
