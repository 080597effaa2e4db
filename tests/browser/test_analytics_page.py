"""The "Telephony analytics" admin page in a real headless Chromium, light and dark.

No telephony processes are needed: pytest-django's live server serves the page from the
test database, filled with the known calls of tests/dashboard/analytics_data.py. The test
checks what a person would see: the five charts drawn (inline SVG with a sane size and
painted shapes), their text alternatives, no script or console error, and that the
admin's dark theme really changes the chart text colour. Screenshots of both schemes
are saved in the test's tmp directory and copied to artifacts/browser/.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from django.conf import settings as django_settings
from django.test import Client

from tests.browser.conftest import ARTIFACTS, script_errors
from tests.dashboard.analytics_data import QUERY, TZ_NAME, make_calls

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(120),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture(scope="module", autouse=True)
def orm_beside_playwright() -> Iterator[None]:
    """Playwright's sync API keeps an event loop running in this thread, and Django refuses
    the ORM in a thread with a running loop. Nothing async touches the database here."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


CHARTS = ("calls", "answer-rate", "time-to-answer", "talk-time", "causes")


def _session_cookie(live_server: Any, admin_user: Any) -> dict[str, Any]:
    client = Client()
    client.force_login(admin_user)
    name = django_settings.SESSION_COOKIE_NAME
    return {"name": name, "value": client.cookies[name].value, "url": live_server.url}


def _chart_facts(page: Any) -> list[dict[str, Any]]:
    return page.evaluate(
        """() => [...document.querySelectorAll('svg.ta-chart')].map(svg => {
            const box = svg.getBoundingClientRect();
            return {
              figure: svg.closest('figure').dataset.ta,
              width: box.width, height: box.height,
              shapes: svg.querySelectorAll('rect, circle, polyline').length,
              painted: [...svg.querySelectorAll('rect, circle')].filter(r => {
                  const fill = getComputedStyle(r).fill;
                  return fill && fill !== 'none' && fill !== 'rgb(0, 0, 0)';
              }).length,
              label: svg.getAttribute('aria-labelledby').split(' ').map(
                  id => document.getElementById(id).textContent).join(': '),
              colour: getComputedStyle(svg).color,
              text: [...svg.querySelectorAll('text:not(.ta-tick)')].map(
                  t => getComputedStyle(t).fill)[0] || null,
            };
        })"""
    )


def brightness(rgb: str) -> float:
    """Mean of the channels of a computed "rgb(r, g, b)" colour."""
    r, g, b = (float(x) for x in rgb[rgb.index("(") + 1 : rgb.index(")")].split(",")[:3])
    return (r + g + b) / 3


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_analytics_page__draws_its_charts_in_light_and_dark(
    browser, live_server, admin_user, settings, tmp_path, scheme
) -> None:
    settings.TIME_ZONE = TZ_NAME
    make_calls()
    context = browser.new_context(viewport={"width": 1200, "height": 800}, color_scheme=scheme)
    context.add_cookies([_session_cookie(live_server, admin_user)])
    page = context.new_page()
    page.js_errors, page.console_errors = [], []
    page.on("pageerror", lambda err: page.js_errors.append(str(err)))
    page.on("console", lambda m: page.console_errors.append(m.text) if m.type == "error" else 0)
    try:
        response = page.goto(f"{live_server.url}/admin/telephony/analytics/?{urlencode(QUERY)}")
        assert response is not None and response.status == 200
        assert page.locator('[data-ta="placed"]').inner_text() == "15"
        facts = _chart_facts(page)
        assert [f["figure"] for f in facts] == [f"chart-{c}" for c in CHARTS]
        for f in facts:
            assert 300 <= f["width"] <= 1200 and 40 <= f["height"] <= 400, f
            assert f["shapes"] > 0 and f["painted"] > 0, f
            assert f["label"].strip(), f
        assert "Time to answer: median 5.0 s, p90 8.4 s" in facts[2]["label"]
        dark = page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
        assert dark is (scheme == "dark")
        body_fg = page.evaluate("getComputedStyle(document.body).color")
        # Chart text is the theme's text colour: light on dark, dark on light.
        assert {f["colour"] for f in facts} == {f["text"] for f in facts if f["text"]} == {body_fg}
        assert (brightness(body_fg) > 128) is dark, body_fg
        assert page.locator('table[data-ta="agents"] tbody tr').count() == 2
        shot = tmp_path / f"analytics-{scheme}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, ARTIFACTS / shot.name)
        assert script_errors(page) == []
    finally:
        context.close()
