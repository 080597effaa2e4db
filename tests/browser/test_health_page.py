"""The "Telephony health" admin page in a real headless Chromium, against `manage.py serve`.

What an operator sees: log in as the demo superuser, open the page, and a worker is
killed with SIGKILL: without a reload the page shows the service go unavailable, the
worker gone and the exit in the timeline, then its replacement serving. Then an action
with the JavaScript confirmation: force the provider circuit open, and back. Screenshots
of each state go to artifacts/browser/health-*.png.
"""

from __future__ import annotations

import os
import re
import signal
from typing import Any

import pytest
from playwright.sync_api import expect

from telephony.procutil import wait_for
from tests.browser.conftest import Product, login, screenshot, script_errors

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

PAGE = "/admin/telephony/health/"
STATUS = '[data-th="status"]'
WORKER_ROWS = '[data-th="workers"] tr[data-pid]'


def report(capsys: pytest.CaptureFixture[str], shots: list[str]) -> None:
    with capsys.disabled():
        print("\nscreenshots:\n" + "\n".join(f"  {path}" for path in shots))


def workers(product: Product) -> list[int]:
    return product.telephony_pids()[1]


def test_health_page__follows_a_killed_worker_and_its_replacement_live(
    page: Any, product: Product, capsys: pytest.CaptureFixture[str]
) -> None:
    shots: list[str] = []
    product.wait_status(healthy=True)
    login(page)
    page.goto("/admin/")
    screenshot(page, "health-00-admin-index", shots)
    page.get_by_role("link", name="Telephony health").click()
    page.wait_for_url(f"**{PAGE}")
    expect(page.locator(STATUS)).to_have_text("Ready")
    expect(page.locator('[data-th="live"]')).to_have_attribute("data-mode", "live")
    [victim] = workers(product)  # serve runs one worker in these tests
    expect(page.locator(WORKER_ROWS)).to_have_count(1)
    expect(page.locator(f'tr[data-pid="{victim}"] .th-badge--serving')).to_be_visible()
    page.evaluate("window.__sameDocument = true")
    screenshot(page, "health-01-ready", shots)

    os.kill(victim, signal.SIGKILL)
    exited = page.locator('[data-th="events"] [data-kind="worker_exited"]')
    expect(exited.filter(has_text=f":{victim}")).to_have_count(1, timeout=15_000)
    expect(page.locator(STATUS)).to_have_text(re.compile("Unavailable|Degraded|Starting"))
    expect(page.locator(f'tr[data-pid="{victim}"]')).to_have_count(0)
    screenshot(page, "health-02-worker-killed", shots)

    assert wait_for(lambda: workers(product) not in ([], [victim]), timeout=60), product.log()
    [replacement] = workers(product)
    expect(page.locator(f'tr[data-pid="{replacement}"] .th-badge--serving')).to_be_visible(
        timeout=30_000
    )
    expect(page.locator(STATUS)).to_have_text("Ready")
    expect(page.locator('[data-th="events"] [data-kind="worker_restarted"]')).not_to_have_count(0)
    assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"
    screenshot(page, "health-03-replaced", shots)

    # An action, confirmed in the browser's dialog: POST with CSRF, back to the page.
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.accept()))
    page.get_by_role("button", name="Force open").click()
    expect(page.locator(STATUS)).to_have_text("Unavailable")
    expect(page.locator(".messagelist")).to_contain_text("Provider circuit forced open")
    expect(page.locator('[data-th="breaker-mode"]')).to_have_text("forced open")
    expect(page.locator('[data-th="events"] [data-kind="breaker_forced"]').first).to_contain_text(
        "by demo"
    )
    assert dialogs and dialogs[0].startswith("Refuse every call to the phone provider?")
    screenshot(page, "health-04-forced-open", shots)
    page.get_by_role("button", name="Automatic").click()
    expect(page.locator(STATUS)).to_have_text("Ready")
    product.wait_status(healthy=True)

    report(capsys, shots)
    assert script_errors(page) == []
