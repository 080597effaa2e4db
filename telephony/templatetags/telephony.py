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
import threading
from functools import lru_cache
from types import NoneType
from typing import Any, NamedTuple
from urllib.parse import urlencode

import phonenumbers
from django import template
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.middleware.csrf import get_token
from django.template import Context
from django.template import Template as DjangoTemplate
from django.template.base import FilterExpression, token_kwargs
from django.template.loader import get_template
from django.templatetags.static import static
from django.urls import get_script_prefix, get_urlconf, reverse
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
HTML_KEY = "_telephony_buttons"  # the request's page's rendered buttons
# Numbers parsed, and buttons rendered, kept per process (a few MB at most).
NUMBER_CACHE_SIZE = 4096
HTML_CACHE_SIZE = 2048  # buttons per distinct page
PAGE_CACHE_SIZE = 64  # distinct pages (states, logged in or not, settings)
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


def _base_button(urlconf: str | None, recording: str, sdk_url: str) -> Button:
    return Button(
        available=False,
        call_url=reverse("telephony:call", urlconf=urlconf),
        status_url=reverse("telephony:status", urlconf=urlconf),
        csrf_cookie=str(settings.CSRF_COOKIE_NAME),
        credential_url=reverse("telephony:credential", urlconf=urlconf),
        sdk_url=sdk_url,
        rtc_host=str(getattr(settings, "TELEPHONY_RTC_HOST", "") or ""),
        recording=recording,
    )


@lru_cache(maxsize=16)
def _base(script_prefix: str, urlconf: str | None, recording: str) -> Button:
    """The page's URLs and settings, nothing of any one number: three ``reverse()`` and
    a static URL, worked out once per script prefix and URLconf (and again after a
    settings change). A failure is not cached."""
    return _base_button(urlconf, recording, str(static(SDK_PATH)))


def _page_base() -> Button:
    prefix, urlconf, recording = get_script_prefix(), get_urlconf(), recording_policy()
    try:
        return _base(prefix, urlconf, recording)
    except Exception:
        # No softphone (the SDK's URL is empty), but the button still renders.
        logger.exception("[Telephony Tag] call_button: no static URL for %s", SDK_PATH)
        return _base_button(urlconf, recording, "")


@receiver(setting_changed)
def _settings_changed(**kwargs: Any) -> None:
    _base.cache_clear()


def _page(context: template.Context, number: object) -> Page:
    """What a request's (or, without one, a render's) buttons share, worked out by its
    first button: one state reading, one CSRF cookie, three ``reverse()``, however many
    buttons the page has. ``number`` only names the first button in a log line."""
    request = context.get("request")
    holder = context.render_context if request is None else request.__dict__
    page: Page | None = holder.get(PAGE_KEY)
    if page is not None:
        return page
    base = _page_base()
    authenticated = _user_is_authenticated(context)
    available: bool | None = False
    login_url = ""
    if authenticated:
        if request is not None and not request.META.get("CSRF_COOKIE_NEEDS_UPDATE"):
            # Makes sure the csrftoken cookie the JS sends back is set (unless something,
            # e.g. a {% csrf_token %}, already did in this request).
            get_token(request)
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
# (the same contacts, the same state) costs one dict lookup per button. One dict of buttons
# per distinct Page (the state, the user being logged in, the template, the settings);
# a request finds its dict once, under HTML_KEY, so a button does not hash the Page.
_PAGES: dict[Page, dict[tuple[object, ...], tuple[SafeString, str]]] = {}
_PAGES_LOCK = threading.Lock()
_PLAIN = (str, NoneType)


def _buttons_of(page: Page) -> dict[tuple[object, ...], tuple[SafeString, str]]:
    buttons = _PAGES.get(page)
    if buttons is None:
        with _PAGES_LOCK:
            while len(_PAGES) >= PAGE_CACHE_SIZE:
                del _PAGES[next(iter(_PAGES))]  # the oldest page
            buttons = _PAGES.setdefault(page, {})
    return buttons


def clear_caches() -> None:
    """Forget every parsed number and rendered button (tests, benchmarks)."""
    _checked.cache_clear()
    _display.cache_clear()
    _PAGES.clear()


def _cacheable(number: object, label: object, name: object) -> bool:
    # A SafeString or a lazy string may be escaped unlike an equal plain one, and True
    # equals 1: only plain values are looked up in, or put into, the cache.
    return type(number) in (str, int) and type(label) in _PLAIN and type(name) in _PLAIN


def _markup(
    context: template.Context, page: Page, number: object, label: object, name: object,
    assets: str,
) -> tuple[SafeString, str]:  # fmt: skip
    if not (_cacheable(number, label, name) and isinstance(page.template, DjangoTemplate)):
        # Another engine's template object is not the same one twice: never cached.
        return _html(page, number, label, name, assets)
    buttons = _buttons_of(page)
    key = (number, label, name, assets)
    hit = buttons.get(key)
    if hit is None:
        hit = _html(page, number, label, name, assets)
        if len(buttons) >= HTML_CACHE_SIZE:
            buttons.clear()
        buttons[key] = hit
    request = context.get("request")
    if request is not None:
        request.__dict__[HTML_KEY] = buttons  # the node's fast path, from now on
    return hit


def _warn_number(reason: str, number: object) -> None:
    if reason in (INVALID, NOT_ALLOWED):
        logger.warning(
            "[Telephony Tag] call_button: %s %s",
            "not a valid number" if reason == INVALID else "destination not allowed",
            mask_number(number),
        )


def _fallback_html(assets: str = "") -> SafeString:
    """Last resort when even the template failed: still a page, still no exception."""
    return format_html(
        '{}<span class="tel-call tel-call--unavailable" data-tel-call data-tel-state="unavailable"'
        ' data-tel-reason="error"><span class="tel-unavailable">{}</span></span>',
        mark_safe(assets),  # noqa: S308 - our own format_html output
        UNAVAILABLE_TEXT,
    )


def call_button(
    context: template.Context,
    number: object = None,
    label: object = None,
    name: object = None,
    **unknown: Any,
) -> SafeString:
    """A call button for ``number``, or the "Calls unavailable" fallback. Never raises."""
    assets = _assets_quietly(context)
    try:
        if unknown:
            logger.warning(
                "[Telephony Tag] call_button: ignoring unknown argument(s) %s",
                ", ".join(sorted(unknown)),
            )
        html, reason = _markup(context, _page(context, number), number, label, name, assets)
        _warn_number(reason, number)
        return html
    except Exception:
        logger.exception("[Telephony Tag] call_button failed for %s", mask_number(number))
        return _fallback_html(assets)


class CallButtonNode(template.Node):
    """``{% call_button number [label=...] [name=...] [as var] %}``.

    A node of its own rather than a ``simple_tag``: once a request has rendered a button,
    a button it has rendered before costs resolving its arguments and one dict lookup
    (docs/BENCHMARKS.md, section 11). Anything else takes ``call_button``.
    """

    def __init__(
        self,
        args: list[FilterExpression],
        kwargs: dict[str, FilterExpression],
        target: str | None,
    ) -> None:
        self.args, self.kwargs, self.target = args, kwargs, target
        self.number = args[0] if args else kwargs.get("number")
        self.label = kwargs.get("label")
        self.name = kwargs.get("name")
        # One number, by position or by name, and nothing but a label and a name: else the
        # slow path, which says what is wrong.
        self.fast = len(args) + ("number" in kwargs) <= 1 and set(kwargs) <= {
            "number", "label", "name"
        }  # fmt: skip

    def render(self, context: template.Context) -> str:
        try:
            html = self._render(context)
        except Exception:
            logger.exception("[Telephony Tag] call_button: its arguments failed")
            html = _fallback_html(_assets_quietly(context))
        if self.target is None:
            return html
        context[self.target] = html
        return ""

    def _render(self, context: template.Context) -> SafeString:
        if self.fast:
            number = None if self.number is None else self.number.resolve(context)
            label = None if self.label is None else self.label.resolve(context)
            name = None if self.name is None else self.name.resolve(context)
            request = context.get("request")
            if request is not None and _cacheable(number, label, name):
                buttons = request.__dict__.get(HTML_KEY)
                if buttons is not None:
                    hit = buttons.get((number, label, name, ""))
                    if hit is not None:
                        _warn_number(hit[1], number)
                        return hit[0]
            return call_button(context, number, label, name)
        args = [arg.resolve(context) for arg in self.args]
        kwargs = {key: value.resolve(context) for key, value in self.kwargs.items()}
        try:
            return call_button(context, *args, **kwargs)
        except TypeError:  # two numbers, or the number twice
            logger.warning("[Telephony Tag] call_button: takes one number, a label and a name")
            return _fallback_html(_assets_quietly(context))


def _assets_quietly(context: template.Context) -> str:
    try:
        return _assets_once(context)
    except Exception:
        logger.exception("[Telephony Tag] call_button: could not build the asset tags")
        return ""


@register.tag("call_button")
def do_call_button(parser: template.base.Parser, token: template.base.Token) -> CallButtonNode:
    bits = token.split_contents()[1:]
    target = None
    if len(bits) >= 2 and bits[-2] == "as":
        target = bits[-1]
        bits = bits[:-2]
    args: list[FilterExpression] = []
    kwargs: dict[str, FilterExpression] = {}
    for bit in bits:
        kwarg = token_kwargs([bit], parser)
        if kwarg:
            kwargs.update(kwarg)
        elif kwargs:
            raise template.TemplateSyntaxError(
                "call_button: a positional argument after a keyword argument"
            )
        else:
            args.append(parser.compile_filter(bit))
    return CallButtonNode(args, kwargs, target)


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
