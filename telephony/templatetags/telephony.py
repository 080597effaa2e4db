"""``{% load telephony %}``: the call button a host app puts next to a phone number.

    {% load telephony %}
    {% telephony_assets %}                       {# optional, e.g. in <head> #}
    {% call_button contact.phone %}
    {% call_button contact.phone label="Call Ada" name=contact.name %}

A page render must never fail or wait because of telephony, so ``call_button`` never
raises: an unavailable service, an anonymous user, a bad number, a broken override of
the template or a bug in here all render the plain "Calls unavailable" fallback, and
whatever went wrong is logged (with the number masked). The service state comes from the
cached reading (``get_telephony_service().status()``): no worker round trip.

The CSS and JS come with the first ``call_button`` of a request (or of a render, without
a request), unless ``{% telephony_assets %}`` already included them; the script is also
safe to load twice. See docs/FRONTEND.md.

A page of buttons is cheap: what its buttons share (URLs, the state, the CSRF cookie) is
worked out once per request, each number is parsed once per process, and a button's
markup, a pure function of its variables, is rendered once and then looked up
(bounded caches; docs/BENCHMARKS.md has the figures).
"""

from __future__ import annotations

import logging
from functools import lru_cache
from types import NoneType
from typing import Any, NamedTuple
from urllib.parse import urlencode

import phonenumbers
from django import template
from django.conf import settings
from django.middleware.csrf import get_token
from django.template import Context
from django.template import Template as DjangoTemplate
from django.template.loader import get_template
from django.templatetags.static import static
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from telephony.exceptions import DestinationNotAllowed, InvalidNumber
from telephony.numbers import validate_destination
from telephony.recording_policy import recording_policy
from telephony.web.client import get_telephony_service

logger = logging.getLogger(__name__)
register = template.Library()

TEMPLATE = "telephony/call_button.html"
WS_URL = "/ws/webrtc/"
# The vendored @telnyx/webrtc ES module the softphone imports on demand (static/vendor/).
SDK_PATH = "vendor/telnyx-webrtc/2.27.10/bundle.mjs"
UNAVAILABLE_TEXT = "Calls unavailable"
# Marks, on the request (or the render context), that the CSS/JS tags were written.
ASSETS_FLAG = "_telephony_assets_included"
PAGE_KEY = "_telephony_page"
# Numbers parsed, and buttons rendered, kept per process (a few MB at most).
NUMBER_CACHE_SIZE = 4096
HTML_CACHE_SIZE = 2048
# Separators people type in numbers; "+1 (202) 555-0143" is accepted as +12025550143.
_SEPARATORS = str.maketrans("", "", " -.()/\u00a0")

# Why a button is not offered (data-tel-reason); the JS upgrades only "service" and "error".
SERVICE, ERROR, LOGIN, INVALID, NOT_ALLOWED = (
    "service",
    "error",
    "login",
    "invalid_number",
    "not_allowed",
)
HINTS = {
    LOGIN: "Log in to call",
    INVALID: "Not a valid phone number",
    NOT_ALLOWED: "Calls to this number are not allowed",
}


class Button(NamedTuple):
    """What the template needs for one button (``available`` false: the fallback)."""

    available: bool
    reason: str = ""
    number: str = ""
    display: str = ""
    label: str = "Call"
    aria_label: str = ""
    hint: str = ""
    hint_url: str = ""
    call_url: str = ""
    status_url: str = ""
    ws_url: str = WS_URL
    csrf_cookie: str = "csrftoken"
    credential_url: str = ""
    sdk_url: str = ""
    rtc_host: str = ""
    recording: str = "off"  # TELEPHONY_RECORDING: the page offers the toggle under on_demand
    assets: str = ""


class Page(NamedTuple):
    """What a request's buttons share, worked out once; hashable, a key of the cache."""

    base: Button  # the page's URLs and settings, nothing of any one number
    template: Any  # the button template (a host app's override, if any): see _template
    authenticated: bool
    available: bool | None  # None: the state could not be read
    login_url: str
    countries: tuple[str, ...]  # TELEPHONY_ALLOWED_COUNTRIES


def mask_number(raw: object) -> str:
    """The number for logs: country code and last two digits only (``+12*******43``)."""
    try:
        text = str(raw)
    except Exception:
        return "<unprintable>"
    if len(text) <= 5:
        return "*" * len(text)
    return text[:3] + "*" * (len(text) - 5) + text[-2:]


@lru_cache(maxsize=NUMBER_CACHE_SIZE)
def _checked(text: str, allowed_countries: tuple[str, ...]) -> tuple[str, str, str]:
    """``(reason, e164, display)`` for a typed number; ``reason`` empty when it may be
    called. Cached: a CRM page shows the same numbers render after render, and parsing
    is most of a button's cost (docs/BENCHMARKS.md)."""
    try:
        number = validate_destination(
            text.translate(_SEPARATORS), allowed_countries=allowed_countries
        )
    except InvalidNumber:
        return INVALID, "", ""
    except DestinationNotAllowed:
        return NOT_ALLOWED, "", ""
    return "", number, _display(number)


def check_number(raw: object, countries: tuple[str, ...]) -> tuple[str, str, str]:
    """``(reason, e164, display)`` for what a template passed as the number."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = f"+{raw}"
    if not isinstance(raw, str):
        return INVALID, "", ""
    return _checked(str.__str__(raw), countries)


def normalize_number(raw: object) -> str:
    """E.164 for the API, or ``InvalidNumber``/``DestinationNotAllowed``."""
    reason, number, _ = check_number(raw, tuple(settings.TELEPHONY_ALLOWED_COUNTRIES))
    if reason == INVALID:
        raise InvalidNumber()
    if reason == NOT_ALLOWED:
        raise DestinationNotAllowed()
    return number


@lru_cache(maxsize=NUMBER_CACHE_SIZE)
def _display(number: str) -> str:
    return phonenumbers.format_number(
        phonenumbers.parse(number, None), phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )


def _assets_once(context: template.Context) -> str:
    """The CSS/JS tags the first time they are asked for in this request (or render)."""
    request = context.get("request")
    if request is not None:
        included = getattr(request, ASSETS_FLAG, False)
    else:
        included = context.render_context.get(ASSETS_FLAG, False)
    if included:
        return ""
    tags = format_html(
        '<link rel="stylesheet" href="{}"><script type="module" src="{}"></script>',
        static("telephony/call-button.css"),
        static("telephony/call-button.js"),
    )
    if request is not None:
        setattr(request, ASSETS_FLAG, True)
    else:
        context.render_context[ASSETS_FLAG] = True
    return str(tags)


def _sdk_url() -> str:
    """The vendored SDK's URL; empty (no softphone, the button still renders) if the
    static storage cannot name it."""
    try:
        return str(static(SDK_PATH))
    except Exception:
        logger.exception("[Telephony Tag] call_button: no static URL for %s", SDK_PATH)
        return ""


def _user_is_authenticated(context: template.Context) -> bool:
    request = context.get("request")
    user = getattr(request, "user", None) if request is not None else context.get("user")
    return bool(getattr(user, "is_authenticated", False))


def _login_url(context: template.Context) -> str:
    request = context.get("request")
    url = str(settings.LOGIN_URL)
    if url.startswith("/") and request is not None:
        url = f"{url}?{urlencode({'next': request.get_full_path()})}"
    return url


def _page(context: template.Context, number: object) -> Page:
    """What a request's (or, without one, a render's) buttons share, worked out by its
    first button: one state reading, one CSRF cookie, three ``reverse()``, however many
    buttons the page has. ``number`` only names the first button in a log line."""
    request = context.get("request")
    holder = context.render_context if request is None else request.__dict__
    page: Page | None = holder.get(PAGE_KEY)
    if page is not None:
        return page
    base = Button(
        available=False,
        call_url=reverse("telephony:call"),
        status_url=reverse("telephony:status"),
        csrf_cookie=str(settings.CSRF_COOKIE_NAME),
        credential_url=reverse("telephony:credential"),
        sdk_url=_sdk_url(),
        rtc_host=str(getattr(settings, "TELEPHONY_RTC_HOST", "") or ""),
        recording=recording_policy(),
    )
    authenticated = _user_is_authenticated(context)
    available: bool | None = False
    login_url = ""
    if authenticated:
        if request is not None:
            get_token(request)  # makes sure the csrftoken cookie the JS sends back is set
        try:
            available = bool(get_telephony_service().status().available)
        except Exception:
            logger.exception(
                "[Telephony Tag] call_button: state read failed for %s", mask_number(number)
            )
            available = None
    else:
        login_url = _login_url(context)
    page = Page(
        base,
        _template(),
        authenticated,
        available,
        login_url,
        tuple(settings.TELEPHONY_ALLOWED_COUNTRIES),
    )
    holder[PAGE_KEY] = page
    return page


def _template() -> Any:
    """The button template: the engine's own cached ``Template`` for a Django template
    (the same object render after render, until a reload replaces it), else the backend's."""
    wrapper = get_template(TEMPLATE)
    inner = getattr(wrapper, "template", None)
    return inner if isinstance(inner, DjangoTemplate) else wrapper


def _button(page: Page, number: object, label: object, name: object, assets: str) -> Button:
    reason, e164, display = check_number(number, page.countries)
    if reason:
        return page.base._replace(
            label=str(label or "Call"), reason=reason, hint=HINTS[reason], assets=assets
        )
    # The accessible name starts with the visible label (WCAG 2.5.3) and names the number.
    if label:
        aria_label = f"{label}, {display}"
    elif name:
        aria_label = f"Call {name}, {display}"
    else:
        aria_label = f"Call {display}"
    hint = hint_url = ""
    if not page.authenticated:
        reason, hint, hint_url = LOGIN, HINTS[LOGIN], page.login_url
    elif page.available is None:
        reason = ERROR
    elif not page.available:
        reason = SERVICE
    return page.base._replace(
        available=not reason,
        reason=reason,
        number=e164,
        display=display,
        label=str(label or "Call"),
        aria_label=aria_label,
        hint=hint,
        hint_url=hint_url,
        assets=assets,
    )


def _html(
    page: Page, number: object, label: object, name: object, assets: str
) -> tuple[SafeString, str]:
    """One button's markup, and why it is not offered (``reason``, empty if it is)."""
    button = _button(page, number, label, name, assets)
    variables = {**button._asdict(), "unavailable_text": UNAVAILABLE_TEXT}
    if isinstance(page.template, DjangoTemplate):  # as the Django backend renders it
        html = page.template.render(Context(variables, autoescape=page.template.engine.autoescape))
    else:
        html = page.template.render(variables)
    return mark_safe(html), button.reason  # noqa: S308 - rendered by an autoescaping engine


# The markup is a pure function of the page and the tag's arguments: a page rendered again
# (the same contacts, the same state) costs one lookup per button.
_cached_html = lru_cache(maxsize=HTML_CACHE_SIZE)(_html)
_PLAIN = (str, NoneType)


def _markup(
    page: Page, number: object, label: object, name: object, assets: str
) -> tuple[SafeString, str]:
    if (
        type(number) in (str, int)
        and type(label) in _PLAIN
        and type(name) in _PLAIN
        and isinstance(page.template, DjangoTemplate)
    ):
        return _cached_html(page, number, label, name, assets)
    # A SafeString or a lazy string may be escaped unlike an equal plain one, and another
    # engine's template object is not the same one twice: never from, nor into, the cache.
    return _html(page, number, label, name, assets)


def _fallback_html(assets: str = "") -> SafeString:
    """Last resort when even the template failed: still a page, still no exception."""
    return format_html(
        '{}<span class="tel-call tel-call--unavailable" data-tel-call data-tel-state="unavailable"'
        ' data-tel-reason="error"><span class="tel-unavailable">{}</span></span>',
        mark_safe(assets),  # noqa: S308 - our own format_html output
        UNAVAILABLE_TEXT,
    )


@register.simple_tag(takes_context=True)
def call_button(
    context: template.Context,
    number: object = None,
    label: object = None,
    name: object = None,
    **unknown: Any,
) -> SafeString:
    """A call button for ``number``, or the "Calls unavailable" fallback. Never raises."""
    assets = ""
    try:
        assets = _assets_once(context)
    except Exception:
        logger.exception("[Telephony Tag] call_button: could not build the asset tags")
    try:
        if unknown:
            logger.warning(
                "[Telephony Tag] call_button: ignoring unknown argument(s) %s",
                ", ".join(sorted(unknown)),
            )
        html, reason = _markup(_page(context, number), number, label, name, assets)
        if reason in (INVALID, NOT_ALLOWED):
            logger.warning(
                "[Telephony Tag] call_button: %s %s",
                "not a valid number" if reason == INVALID else "destination not allowed",
                mask_number(number),
            )
        return html
    except Exception:
        logger.exception("[Telephony Tag] call_button failed for %s", mask_number(number))
        return _fallback_html(assets)


@register.simple_tag(takes_context=True)
def telephony_assets(context: template.Context) -> SafeString:
    """The call buttons' ``<link>`` and ``<script>`` tags, once; for pages that want them
    in ``<head>``. Never raises."""
    try:
        return mark_safe(_assets_once(context))  # noqa: S308 - format_html output
    except Exception:
        logger.exception("[Telephony Tag] telephony_assets failed")
        return mark_safe("")


@register.simple_tag(takes_context=True)
def telephony_status(context: template.Context) -> str:
    """The service status word (``ready``, ``unavailable`` ...), e.g. for a status badge:
    ``{% telephony_status as status %}``. Elements with ``data-tel-service-status`` are kept
    current by the JS. Never raises (any failure reads as ``unavailable``)."""
    try:
        return str(get_telephony_service().status().status)
    except Exception:
        logger.exception("[Telephony Tag] telephony_status: state read failed")
        return "unavailable"


@register.filter
def phone(value: object) -> str:
    """``+12025550143`` as ``+1 202-555-0143``, for people; anything else unchanged.
    Never raises."""
    try:
        if isinstance(value, str) and value.startswith("+"):
            return _display(value.translate(_SEPARATORS))
        return "" if value is None else str(value)
    except Exception:  # phonenumbers.NumberParseException, an odd __str__ ...
        logger.debug("[Telephony Tag] phone: left a value as it is")
        return value if isinstance(value, str) else ""
