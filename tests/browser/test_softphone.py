"""The softphone in a real headless Chromium, against the real product and the sandbox's
WebRTC side (``/rtc``, an aiortc peer per agent leg, a simulated customer).

What an agent sees: the page logs in to the signalling server by itself; the agent leg of
the call the page asked for is answered without a click, the customer's test tone comes
out of the page's ``<audio>``, and mute, DTMF and hang-up reach the other side. An invite
nobody here asked for rings instead. Each way the softphone cannot work shows one line
in place of the buttons, and no call is placed.

Before the workers place two legs themselves (``telephony.legs``), the agent leg is
dialled here the way a worker does (the sandbox's REST API, its API key, ``client_state``
naming our call), and the customer bridged to it; once they do, the test follows the
legs the worker dialled.
"""

from __future__ import annotations

import importlib.util
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import (
    CHROMIUM_ARGS,
    FAKE_MEDIA_DEVICE,
    Product,
    login,
    screenshot,
    script_errors,
)
from tests.browser.phone import (
    DOMINANT_HZ,
    Sandbox,
    client_state,
    softphone_state,
    wait_for,
    wait_silent,
    wait_softphone_ready,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

ADA = '[data-tel-call][data-tel-number="+12025550143"]'
CALL_BUTTONS = "button.tel-call__button"
UNAVAILABLE = ".tel-unavailable"
CONTACTS = 5
# The workers dial the agent leg and the customer themselves (the two-leg flow).
WORKER_DIALS_LEGS = importlib.util.find_spec("telephony.legs") is not None


def call_posts(page: Any) -> list[str]:
    """Every POST to /api/webrtc/call the page makes, recorded from now on."""
    posts: list[str] = []
    page.on(
        "request",
        lambda r: posts.append(r.url) if r.method == "POST" and r.url.endswith("/call") else None,
    )
    return posts


def test_softphone__answers_its_agent_leg_plays_the_customer_and_controls_the_call(
    page: Any, product: Product, capsys: pytest.CaptureFixture[str]
) -> None:
    shots: list[str] = []
    sandbox = Sandbox(product)
    product.sandbox.set_webhooks(answer_after=0.5, talk_time=120)
    login(page)
    wait_softphone_ready(page)
    user = sandbox.agent_user()

    # The agent clicks Call: the page records the call id the API answers with.
    ada = page.locator(ADA)
    with page.expect_response(lambda r: r.url.endswith("/api/webrtc/call")) as answer:
        ada.locator(CALL_BUTTONS).click()
    call_id = answer.value.json()["call"]["id"]

    # The agent leg, then the customer bridged to it on answer: the worker's, or ours.
    if WORKER_DIALS_LEGS:
        agent = sandbox.agent_leg_of(call_id)
    else:
        agent = sandbox.dial(f"sip:{user}@sip.telnyx.com", client_state=client_state(call_id))
    wait_for(lambda: sandbox.leg(agent)["answered_by"], "the page to answer the agent leg")
    controls = ada.locator(".tel-phone")
    expect(controls.get_by_role("button", name="Mute microphone")).to_be_enabled()
    if not WORKER_DIALS_LEGS:
        sandbox.dial("+12025550143", link_to=agent, bridge_on_answer=True)
    wait_for(lambda: sandbox.leg(agent)["bridged"], "the customer to be bridged")

    # The page plays the customer's test tone (1 kHz by default).
    tone = float(httpx.get(f"{sandbox.control}/rtc", timeout=5).json()["audio"]["tone_hz"])
    heard = wait_for(
        lambda: (r := page.evaluate(DOMINANT_HZ)) and abs(r["hz"] - tone) < 30 and r,
        f"a {tone} Hz tone in the page's remote audio",
    )
    screenshot(page, "11-softphone-in-call", shots)

    # The customer hears the agent's (fake) microphone, and nothing once muted.
    wait_for(lambda: sandbox.leg(agent)["customer_hears"]["rms"] > 0, "the agent's voice")
    controls.get_by_role("button", name="Mute microphone").click()
    expect(controls.get_by_role("button", name="Unmute microphone")).to_have_attribute(
        "aria-pressed", "true"
    )
    wait_silent(lambda: sandbox.customer_hears(agent), "silence after mute", 10)

    # Hold and resume.
    controls.get_by_role("button", name="Hold call").click()
    wait_for(lambda: sandbox.leg(agent)["held"], "the sandbox to hold the leg")
    expect(ada.locator(".tel-call__status")).to_have_text("On hold")
    controls.get_by_role("button", name="Resume call").click()
    wait_for(lambda: not sandbox.leg(agent)["held"], "the sandbox to resume the leg")

    # DTMF from the keypad.
    controls.get_by_role("button", name="Keypad").click()
    for key in "12#":
        controls.get_by_role("button", name=f"Send {key}").click()
    wait_for(lambda: sandbox.leg(agent)["dtmf"] == "12#", "the digits at the sandbox")
    screenshot(page, "12-softphone-keypad", shots)

    # Hang up ends the agent leg.
    ada.get_by_role("button", name=re.compile(r"^Hang up")).click()
    wait_for(lambda: sandbox.leg(agent)["state"] != "answered", "the agent leg to end")
    expect(controls).to_have_count(0)
    with capsys.disabled():
        print(f"\nremote audio: {heard}\nscreenshots: {shots}")
    assert script_errors(page) == []


def test_softphone__an_invite_for_no_pending_call_rings_and_is_never_answered_alone(
    page: Any, product: Product
) -> None:
    sandbox = Sandbox(product)
    login(page)
    wait_softphone_ready(page)
    user = sandbox.agent_user()

    # An agent leg naming a call this page never asked for: it rings.
    stranger = sandbox.dial(
        f"sip:{user}@sip.telnyx.com", client_state=client_state(str(uuid.uuid4()))
    )
    ringer = page.locator(".tel-ringer")
    expect(ringer.get_by_role("button", name=re.compile("^Answer call"))).to_be_visible()
    expect(ringer.get_by_role("status")).to_have_text("Incoming call")
    end = time.monotonic() + 2
    while time.monotonic() < end:  # a while of ringing, and nobody answered it
        assert sandbox.leg(stranger)["answered_by"] is None
        time.sleep(0.2)
    ringer.get_by_role("button", name=re.compile("^Decline")).click()
    wait_for(
        lambda: (
            sandbox.leg(stranger)["state"] != "parked"
            and sandbox.leg(stranger)["ringing_sessions"] == 0
        ),
        "the decline to end the leg",
    )
    expect(ringer.get_by_role("status")).to_have_text("Call ended")

    # A call with no client_state at all rings too; answered by a click, it is up.
    walk_in = sandbox.dial(f"sip:{user}@sip.telnyx.com")
    answer = page.get_by_role("button", name=re.compile("^Answer call"))
    expect(answer).to_be_visible()
    answer.click()
    wait_for(lambda: sandbox.leg(walk_in)["answered_by"], "the click to answer")
    ringing = page.locator('.tel-ringer[data-tel-phone-state="active"]')
    expect(ringing.get_by_role("button", name="Mute microphone")).to_be_enabled()
    ringing.get_by_role("button", name=re.compile("^Hang up")).click()
    wait_for(lambda: sandbox.leg(walk_in)["state"] != "answered", "the hang-up")
    assert script_errors(page) == []


def test_softphone__with_two_tabs_the_call_is_answered_in_the_tab_that_placed_it(
    page: Any, product: Product
) -> None:
    sandbox = Sandbox(product)
    product.sandbox.set_webhooks(answer_after=0.5, talk_time=120)
    login(page)
    other = page.context.new_page()  # same browser, same session: a second tab
    other.goto("/")
    wait_softphone_ready(page)
    wait_softphone_ready(other)
    user = sandbox.agent_user()
    wait_for(
        lambda: (
            len(
                [
                    s
                    for s in httpx.get(f"{sandbox.control}/rtc", timeout=5).json()["sessions"]
                    if s["sip_username"] == user
                ]
            )
            == 2
        ),
        "both tabs logged in",
    )

    ada = page.locator(ADA)
    with page.expect_response(lambda r: r.url.endswith("/api/webrtc/call")) as answer:
        ada.locator(CALL_BUTTONS).click()
    call_id = answer.value.json()["call"]["id"]
    if WORKER_DIALS_LEGS:
        agent = sandbox.agent_leg_of(call_id)
    else:
        agent = sandbox.dial(f"sip:{user}@sip.telnyx.com", client_state=client_state(call_id))
    wait_for(lambda: sandbox.leg(agent)["answered_by"], "one tab to answer the agent leg")
    expect(ada.locator(".tel-phone")).to_have_count(1)  # in the tab that placed it
    assert other.locator(".tel-ringer").count() == 0  # the other tab never rang
    assert other.locator(".tel-phone").count() == 0
    ada.get_by_role("button", name=re.compile(r"^Hang up")).click()
    wait_for(lambda: sandbox.leg(agent)["state"] != "answered", "the agent leg to end")
    assert script_errors(page) == [] and other.evaluate("1") == 1


def test_softphone__logs_in_again_after_losing_its_socket(page: Any, product: Product) -> None:
    sandbox = Sandbox(product)
    login(page)
    wait_softphone_ready(page)
    user = sandbox.agent_user()
    res = httpx.post(f"{sandbox.control}/rtc/drop", json={"sip_username": user}, timeout=5)
    assert res.json()["closed"] >= 1
    # The SDK's auto-reconnect logs in again; a call placed afterwards still rings here.
    page.wait_for_function(
        "() => window.TelephonyCallButtons.state().softphone.state !== 'ready'", timeout=10_000
    )
    wait_softphone_ready(page)
    stranger = sandbox.dial(f"sip:{user}@sip.telnyx.com")
    expect(page.get_by_role("button", name=re.compile("^Answer call"))).to_be_visible()
    page.get_by_role("button", name=re.compile("^Decline")).click()
    wait_for(lambda: sandbox.leg(stranger)["ringing_sessions"] == 0, "the decline")
    assert script_errors(page) == []


# -- graceful fallbacks: one line in place of the buttons, and no call placed ------------


def expect_line(page: Any, line: str, posts: list[str], *, click: bool = False) -> None:
    """The line shows instead of every button (at once, or after a click), and no POST.

    Without ``click`` the line must come by itself: the softphone fails on page load,
    before anyone can click, and no button is left to click.
    """
    if click:
        page.locator(CALL_BUTTONS).first.click()
    expect(page.locator(UNAVAILABLE).first).to_have_text(line)
    expect(page.locator(UNAVAILABLE)).to_have_count(CONTACTS)
    expect(page.locator(CALL_BUTTONS)).to_have_count(0)
    assert posts == []


def test_softphone__the_sdk_failing_to_load_shows_one_line(page: Any, product: Product) -> None:
    page.route(re.compile(r"/static/vendor/telnyx-webrtc/.*"), lambda route: route.abort())
    posts = call_posts(page)
    login(page)
    expect_line(page, "Calls unavailable: the phone could not be loaded", posts)
    assert softphone_state(page)["error"] == "sdk_load_failed"
    assert page.js_errors == []


def test_softphone__webrtc_missing_shows_one_line(page: Any, product: Product) -> None:
    page.add_init_script("delete window.RTCPeerConnection;")
    posts = call_posts(page)
    login(page)
    expect_line(page, "Calls unavailable: this browser cannot make calls", posts)
    assert page.js_errors == []


def test_softphone__a_failed_login_shows_one_line(page: Any, product: Product) -> None:
    bad = {
        "token": "not.a-valid.token",
        "sip_username": "nobody",
        "expires_at": "2099-01-01T00:00:00Z",
    }
    page.route(
        re.compile(r"/api/webrtc/credential$"),
        lambda route: route.fulfill(status=201, json={"credential": bad}),
    )
    posts = call_posts(page)
    login(page)
    expect_line(page, "Calls unavailable: the phone could not log in", posts)
    assert softphone_state(page)["error"] == "login_failed"
    assert page.js_errors == []


@pytest.fixture
def denying_page(browser: Any, product: Product, chromium_path: str) -> Iterator[Any]:
    """A Chromium whose microphone prompt is refused (no fake UI to accept it)."""
    other = browser.browser_type.launch(
        executable_path=chromium_path,
        args=[*CHROMIUM_ARGS, FAKE_MEDIA_DEVICE],
        headless=True,
    )
    try:
        context = other.new_context(base_url=product.url)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.js_errors = []
        page.console_errors = []
        page.on("pageerror", lambda err: page.js_errors.append(str(err)))
        yield page
    finally:
        other.close()


def test_softphone__a_denied_microphone_shows_one_line(denying_page: Any, product: Product) -> None:
    page = denying_page
    posts = call_posts(page)
    login(page)
    wait_softphone_ready(page)  # logging in needs no microphone; placing a call does
    expect_line(page, "Calls unavailable: allow the microphone to call", posts, click=True)
    assert page.js_errors == []


def test_softphone__the_service_down_shows_one_line(page: Any, product: Product) -> None:
    posts = call_posts(page)
    login(page)
    wait_softphone_ready(page)
    product.stop_telephony()
    try:
        expect(page.locator(UNAVAILABLE)).to_have_count(CONTACTS, timeout=15_000)
        expect(page.locator(UNAVAILABLE).first).to_have_text("Calls unavailable")
        expect(page.locator(CALL_BUTTONS)).to_have_count(0)
        assert posts == []
    finally:
        product.resume_telephony()
    expect(page.locator(CALL_BUTTONS)).to_have_count(CONTACTS, timeout=30_000)
    assert page.js_errors == []
