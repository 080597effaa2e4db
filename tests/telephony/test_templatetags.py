"""``{% call_button %}``: a real button when available, a plain fallback otherwise, never
an exception, whatever goes wrong (and what went wrong is logged, number masked)."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import time
from http import HTTPStatus
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.contrib.staticfiles import finders
from django.template import Context, Template, TemplateSyntaxError
from django.test import Client, RequestFactory
from django.utils.safestring import mark_safe

from telephony.connections import get_redis, reset_clients
from telephony.keys import Keys
from telephony.state import state_cache
from telephony.templatetags import telephony as tags
from tests.telephony.conftest import fake_ready_worker

pytestmark = pytest.mark.timeout(30)

ADA = "+12025550143"
ASSETS = '<script type="module" src="/static/telephony/call-button.js"></script>'
ASSETS_BOTH = '<link rel="stylesheet" href="/static/telephony/call-button.css">' + ASSETS


class Staff:
    """A logged-in user, without the database."""

    is_authenticated = True
    pk = 1


@pytest.fixture(autouse=True)
def fresh_state(settings) -> None:
    settings.TELEPHONY_STATE_CACHE_TTL = 0


def request(user=None, path="/contacts/"):
    req = RequestFactory().get(path)
    req.user = user if user is not None else Staff()
    return req


def render(source: str, req=None, **context) -> str:
    ctx = {"request": req if req is not None else request(), **context}
    return Template("{% load telephony %}" + source).render(Context(ctx))


def attr(html: str, name: str) -> str | None:
    match = re.search(rf'\s{re.escape(name)}="([^"]*)"', html)
    return match.group(1) if match else None


def test_call_button__renders_an_accessible_button_when_available() -> None:
    fake_ready_worker()
    html = render("{% call_button number %}", number=ADA)
    assert re.search(
        r'<button type="button" class="tel-call__button" aria-label="Call \+1 202-555-0143">', html
    )
    assert '<span class="tel-call__status" role="status" aria-live="polite"></span>' in html
    assert attr(html, "data-tel-number") == ADA
    assert attr(html, "data-tel-state") == "available"
    assert attr(html, "data-tel-call-url") == "/api/webrtc/call"
    assert attr(html, "data-tel-status-url") == "/api/webrtc/status"
    assert attr(html, "data-tel-ws-url") == "/ws/webrtc/"
    assert attr(html, "data-tel-csrf-cookie") == "csrftoken"
    assert "data-tel-reason" not in html and "Calls unavailable" not in html


def test_call_button__tells_the_softphone_where_its_sdk_token_and_signalling_are(
    settings,
) -> None:
    fake_ready_worker()
    settings.TELEPHONY_RTC_HOST = ""
    html = render("{% call_button number %}", number=ADA)
    assert attr(html, "data-tel-sdk-url") == "/static/vendor/telnyx-webrtc/2.27.10/bundle.mjs"
    assert attr(html, "data-tel-credential-url") == "/api/webrtc/credential"
    assert attr(html, "data-tel-rtc-host") == ""  # the SDK's default, wss://rtc.telnyx.com
    assert finders.find("vendor/telnyx-webrtc/2.27.10/bundle.mjs")
    settings.TELEPHONY_RTC_HOST = "ws://127.0.0.1:8765/rtc"
    html = render("{% call_button number %}", number=ADA)
    assert attr(html, "data-tel-rtc-host") == "ws://127.0.0.1:8765/rtc"


def test_call_button__label_and_name_make_the_accessible_name() -> None:
    fake_ready_worker()
    html = render('{% call_button number label="Call Ada" %}', number=ADA)
    assert 'aria-label="Call Ada, +1 202-555-0143"' in html
    assert '<span class="tel-call__label">Call Ada</span>' in html
    html = render("{% call_button number name=who %}", number=ADA, who="Ada Lovelace")
    assert 'aria-label="Call Ada Lovelace, +1 202-555-0143"' in html


def test_call_button__escapes_what_it_is_given() -> None:
    fake_ready_worker()
    html = render(
        "{% call_button number label=evil %}", number=ADA, evil='<img src=x onerror="x()">'
    )
    assert "<img" not in html and "&lt;img" in html


def test_call_button__accepts_common_separators() -> None:
    fake_ready_worker()
    html = render("{% call_button number %}", number="+1 (202) 555-0143")
    assert attr(html, "data-tel-number") == ADA and "<button" in html


def test_call_button__unavailable_service_renders_plain_text_with_the_data() -> None:
    html = render("{% call_button number %}", number=ADA)  # no worker: unavailable
    assert "<button" not in html
    fallback = '<span class="tel-unavailable" title="Calls unavailable: +1 202-555-0143">'
    assert fallback + "Calls unavailable</span>" in html
    assert 'role="status" aria-live="polite"' in html
    # What the JS needs to turn it back into a button without a reload.
    assert attr(html, "data-tel-number") == ADA
    assert attr(html, "data-tel-aria-label") == "Call +1 202-555-0143"
    assert attr(html, "data-tel-state") == "unavailable"
    assert attr(html, "data-tel-reason") == "service"


def test_call_button__anonymous_user_gets_a_log_in_hint() -> None:
    fake_ready_worker()
    html = render(
        "{% call_button number %}", req=request(AnonymousUser(), "/contacts/?page=2"), number=ADA
    )
    assert "<button" not in html and "Calls unavailable" in html
    login = '<a class="tel-call__hint" href="/accounts/login/?next=%2Fcontacts%2F%3Fpage%3D2">'
    assert login + "Log in to call</a>" in html
    assert attr(html, "data-tel-reason") == "login"


def test_call_button__without_a_request_uses_the_context_user() -> None:
    fake_ready_worker()
    html = Template("{% load telephony %}{% call_button n %}").render(
        Context({"n": ADA, "user": Staff()})
    )
    assert "<button" in html
    html = Template("{% load telephony %}{% call_button n %}").render(Context({"n": ADA}))
    assert "<button" not in html and attr(html, "data-tel-reason") == "login"


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("boom")


@pytest.mark.parametrize(
    "number",
    [
        "nope",
        "",
        None,
        "2025550143",
        "+11005550143",
        ["+12025550143"],
        3.5,
        Unprintable(),
        "+" + "9" * 40,
    ],
)
def test_call_button__invalid_numbers_render_the_fallback(number, caplog) -> None:
    fake_ready_worker()
    with caplog.at_level(logging.WARNING, logger="telephony"):
        html = render("{% call_button number %}", number=number)
    assert "<button" not in html and "Calls unavailable" in html
    assert attr(html, "data-tel-reason") == "invalid_number"
    assert "data-tel-number" not in html
    assert "Not a valid phone number" in html
    assert "call_button" in caplog.text


def test_call_button__forbidden_destinations_render_the_fallback(caplog) -> None:
    fake_ready_worker()
    with caplog.at_level(logging.WARNING, logger="telephony"):
        html = render("{% call_button number %}", number="+442071838750")
    assert "<button" not in html and attr(html, "data-tel-reason") == "not_allowed"
    assert "+442071838750" not in caplog.text and "+44********50" in caplog.text


def test_call_button__missing_number_renders_the_fallback() -> None:
    html = render("{% call_button %}")
    assert "<button" not in html and "Calls unavailable" in html


def test_call_button__redis_down_renders_the_fallback_quickly(settings, tmp_path) -> None:
    settings.REDIS_URL = f"unix://{tmp_path}/nobody.sock"
    reset_clients()
    state_cache.clear()
    started = time.monotonic()
    html = render("{% call_button number %}", number=ADA)
    assert time.monotonic() - started < 2.0
    assert "<button" not in html and "Calls unavailable" in html


def test_call_button__a_bug_inside_is_logged_and_renders_the_fallback(monkeypatch, caplog) -> None:
    def broken():
        raise RuntimeError("a bug")

    monkeypatch.setattr(tags.get_telephony_service(), "status", broken)
    with caplog.at_level(logging.ERROR, logger="telephony"):
        html = render("{% call_button number %}", number=ADA)
    assert "<button" not in html and "Calls unavailable" in html
    assert attr(html, "data-tel-reason") == "error"
    assert attr(html, "data-tel-number") == ADA  # the JS may still bring the button back
    assert "RuntimeError: a bug" in caplog.text
    assert ADA not in caplog.text and "+12*******43" in caplog.text


def test_call_button__a_broken_template_still_renders_the_fallback(monkeypatch, caplog) -> None:
    fake_ready_worker()

    class Broken:
        def render(self, *args, **kwargs):
            raise ValueError("template override is broken")

    monkeypatch.setattr(tags, "get_template", lambda name: Broken())
    with caplog.at_level(logging.ERROR, logger="telephony"):
        html = render("{% call_button number %}", number=ADA)
    assert '<span class="tel-unavailable">Calls unavailable</span>' in html and ASSETS in html
    assert "template override is broken" in caplog.text


def test_call_button__a_broken_static_storage_only_loses_the_assets(monkeypatch, caplog) -> None:
    fake_ready_worker()

    def broken(path):
        raise ValueError(f"no manifest entry for {path}")

    monkeypatch.setattr(tags, "static", broken)
    with caplog.at_level(logging.ERROR, logger="telephony"):
        html = render("{% call_button number %}", number=ADA)
    assert "<button" in html and "<script" not in html
    assert "no manifest entry" in caplog.text


def test_call_button__includes_the_assets_once_per_request() -> None:
    fake_ready_worker()
    req = request()
    html = render("{% call_button a %}{% call_button b %}", req=req, a=ADA, b="+13125550178")
    assert html.count(ASSETS) == 1 and html.count("call-button.css") == 1
    # The same request, a later fragment: nothing again.
    assert ASSETS not in render("{% call_button a %}", req=req, a=ADA)
    html = render("{% telephony_assets %}<main>{% call_button a %}</main>", a=ADA)
    assert html.index(ASSETS) < html.index("<main>") and html.count(ASSETS) == 1


def test_call_button__includes_the_assets_once_per_render_without_a_request() -> None:
    template = Template("{% load telephony %}{% call_button a %}{% call_button a %}")
    assert template.render(Context({"a": ADA})).count(ASSETS) == 1
    assert template.render(Context({"a": ADA})).count(ASSETS) == 1


def test_call_button__makes_sure_the_csrf_cookie_is_sent() -> None:
    fake_ready_worker()
    req = request()
    render("{% call_button a %}", req=req, a=ADA)
    assert req.META.get("CSRF_COOKIE_NEEDS_UPDATE") is True


def test_call_button__ignores_unknown_arguments(caplog) -> None:
    fake_ready_worker()
    with caplog.at_level(logging.WARNING, logger="telephony"):
        html = render('{% call_button a colour="red" %}', a=ADA)
    assert "<button" in html and "colour" in caplog.text


def test_call_button__a_page_reads_the_state_once_and_a_render_after_a_change_shows_it(
    monkeypatch,
) -> None:
    fake_ready_worker()
    service = tags.get_telephony_service()
    reads = []
    real = service.status
    monkeypatch.setattr(service, "status", lambda: reads.append(1) or real())
    numbers = [f"+1202555{n:04d}" for n in range(50)]
    page = "{% for n in numbers %}{% call_button n %}{% endfor %}"
    assert render(page, numbers=numbers).count("<button") == 50
    assert len(reads) == 1
    # The same page again, cached markup and all, after the service went away.
    get_redis().delete(Keys.workers())
    html = render(page, numbers=numbers)
    assert "<button" not in html and html.count('data-tel-reason="service"') == 50


def test_call_button__a_button_rendered_again_is_the_same_and_still_logs_a_bad_number(
    caplog,
) -> None:
    fake_ready_worker()
    page = "{% call_button a name=n %}|{% call_button b %}|{% call_button a name=n %}"
    first = render(page, a=ADA, b="12", n="Ada")
    with caplog.at_level(logging.WARNING, logger="telephony"):
        again = render(page, a=ADA, b="12", n="Ada")  # every button from the cache
    assert again.split("|")[1:] == first.split("|")[1:]
    assert first.split("|")[0] == ASSETS_BOTH + first.split("|")[2]  # the first has the assets
    assert "not a valid number" in caplog.text


def test_call_button__as_puts_the_button_in_a_variable() -> None:
    fake_ready_worker()
    html = render("{% call_button a label='Ring' as b %}<td>{{ b }}</td>", a=ADA)
    assert html.startswith("<td>") and "<button" in html and "Ring" in html
    assert "&lt;button" not in html


def test_call_button__an_argument_that_fails_renders_the_fallback(caplog) -> None:
    class Contact:
        @property
        def phone(self):
            raise RuntimeError("a broken model property")

    with caplog.at_level(logging.ERROR, logger="telephony"):
        html = render("{% call_button c.phone %}", c=Contact())
    assert "Calls unavailable" in html and ASSETS in html
    assert "a broken model property" in caplog.text


def test_call_button__odd_arguments(caplog) -> None:
    fake_ready_worker()
    with pytest.raises(TemplateSyntaxError):
        Template("{% load telephony %}{% call_button label='x' a %}")
    with caplog.at_level(logging.WARNING, logger="telephony"):
        html = render("{% call_button a 'Ring' 'Ada' a %}", a=ADA)
    assert "<button" not in html and "Calls unavailable" in html and "one number" in caplog.text
    assert "Ring" in render("{% call_button a 'Ring' %}", a=ADA)
    assert "<button" in render("{% call_button number=a %}", a=ADA)


def test_call_button__a_settings_change_shows_on_the_next_page(settings) -> None:
    fake_ready_worker()
    assert attr(render("{% call_button a %}", a=ADA), "data-tel-rtc-host") == ""
    settings.TELEPHONY_RTC_HOST = "rtc.example.net"
    assert attr(render("{% call_button a %}", a=ADA), "data-tel-rtc-host") == "rtc.example.net"


def test_call_button__a_safe_label_and_an_equal_plain_one_are_never_confused() -> None:
    fake_ready_worker()
    for _ in range(2):  # either may be cached first
        plain = render("{% call_button n label=l %}", n=ADA, l="<b>Ada</b>")
        safe = render("{% call_button n label=l %}", n=ADA, l=mark_safe("<b>Ada</b>"))
        assert '<span class="tel-call__label">&lt;b&gt;Ada&lt;/b&gt;</span>' in plain
        assert '<span class="tel-call__label"><b>Ada</b></span>' in safe


def test_call_button__an_overridden_template_is_used_after_a_cached_render(
    settings, tmp_path
) -> None:
    fake_ready_worker()
    assert "<button" in render("{% call_button n %}", n=ADA)
    (tmp_path / "telephony").mkdir()
    (tmp_path / "telephony" / "call_button.html").write_text(
        '<a class="host-call" href="tel:{{ number }}">{{ label }}</a>'
    )
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]
    html = render("{% call_button n %}", n=ADA)
    assert '<a class="host-call" href="tel:+12025550143">Call</a>' in html


def test_telephony_status__says_the_state_and_never_raises(monkeypatch) -> None:
    assert render("{% telephony_status %}") == "unavailable"
    fake_ready_worker()
    assert render("{% telephony_status as s %}[{{ s }}]") == "[ready]"

    def broken():
        raise RuntimeError("a bug")

    monkeypatch.setattr(tags.get_telephony_service(), "status", broken)
    assert render("{% telephony_status %}") == "unavailable"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (ADA, "+1 202-555-0143"),
        ("+1 (202) 555-0143", "+1 202-555-0143"),
        ("ext. 12", "ext. 12"),
        (None, ""),
        ("+", "+"),
    ],
)
def test_phone_filter__formats_for_people(value, shown) -> None:
    assert render("{{ v|phone }}", v=value) == shown


def test_mask_number__keeps_only_the_country_code_and_last_digits() -> None:
    assert tags.mask_number(ADA) == "+12*******43"
    assert tags.mask_number("123") == "***"
    assert tags.mask_number(Unprintable()) == "<unprintable>"


def test_assets__exist_and_the_modules_parse() -> None:
    js = finders.find("telephony/call-button.js")
    assert isinstance(js, str) and finders.find("telephony/call-button.css")
    modules = [
        Path(js),
        *sorted((Path(js).parent / "call-button").glob("*.mjs")),
        *sorted((Path(js).parent / "softphone").glob("*.mjs")),
    ]
    assert len(modules) > 1
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "node is missing: run `make tools` as root, or sudo apt-get install -y nodejs npm",
            pytrace=False,
        )
    for module in modules:
        # Parsed as an ES module from stdin: `node --check file.js` guesses the module
        # type and, in Node 20, passes a module with a syntax error.
        done = subprocess.run(
            [node, "--input-type=module", "--check"],
            input=module.read_text(),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, f"{module.name}: {done.stderr}"


@pytest.mark.django_db
def test_demo_page__every_contact_has_a_call_button() -> None:
    fake_ready_worker()
    client = Client()
    client.force_login(get_user_model().objects.create_user("agent", password="pw"))
    response = client.get("/")
    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    assert html.count('class="tel-call__button"') == 5
    assert html.count(ASSETS) == 1 and html.index(ASSETS) < html.index("<main>")
    assert "data-tel-service-status" in html and ">Ready<" in html
    assert "csrftoken" in response.cookies


@pytest.mark.django_db
def test_demo_page__anonymous_visitors_see_the_fallback() -> None:
    fake_ready_worker()
    html = Client().get("/").content.decode()
    assert "tel-call__button" not in html
    assert html.count("Log in to call") == 5
