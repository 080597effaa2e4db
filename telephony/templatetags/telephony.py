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
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode

import phonenumbers
from django import template
from django.conf import settings
from django.middleware.csrf import get_token
from django.template.loader import render_to_string
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
STATE_KEY = "_telephony_state"
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


@dataclass
class Button:
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


def mask_number(raw: object) -> str:
    """The number for logs: country code and last two digits only (``+12*******43``)."""
    try:
        text = str(raw)
    except Exception:
        return "<unprintable>"
    if len(text) <= 5:
        return "*" * len(text)
    return text[:3] + "*" * (len(text) - 5) + text[-2:]


def normalize_number(raw: object) -> str:
    """E.164 for the API, or ``InvalidNumber``/``DestinationNotAllowed``."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = f"+{raw}"
    if not isinstance(raw, str):
        raise InvalidNumber()
    return validate_destination(
        raw.translate(_SEPARATORS), allowed_countries=settings.TELEPHONY_ALLOWED_COUNTRIES
    )


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


def _service_available(context: template.Context) -> bool:
    """One state reading per render, however many buttons the page has."""
    cached = context.render_context.get(STATE_KEY)
    if cached is None:
        cached = context.render_context[STATE_KEY] = get_telephony_service().status().available
    return bool(cached)


def _login_url(context: template.Context) -> str:
    request = context.get("request")
    url = str(settings.LOGIN_URL)
    if url.startswith("/") and request is not None:
        url = f"{url}?{urlencode({'next': request.get_full_path()})}"
    return url


def _build(context: template.Context, number: object, label: object, name: object) -> Button:
    button = Button(available=False, label=str(label or "Call"))
    button.call_url = reverse("telephony:call")
    button.status_url = reverse("telephony:status")
    button.csrf_cookie = str(settings.CSRF_COOKIE_NAME)
    button.credential_url = reverse("telephony:credential")
    button.sdk_url = _sdk_url()
    button.rtc_host = str(getattr(settings, "TELEPHONY_RTC_HOST", "") or "")
    button.recording = recording_policy()
    try:
        button.number = normalize_number(number)
    except InvalidNumber:
        logger.warning("[Telephony Tag] call_button: not a valid number %s", mask_number(number))
        button.reason, button.hint = INVALID, HINTS[INVALID]
        return button
    except DestinationNotAllowed:
        logger.warning(
            "[Telephony Tag] call_button: destination %s not allowed", mask_number(number)
        )
        button.reason, button.hint = NOT_ALLOWED, HINTS[NOT_ALLOWED]
        return button
    button.display = _display(button.number)
    # The accessible name starts with the visible label (WCAG 2.5.3) and names the number.
    if label:
        button.aria_label = f"{label}, {button.display}"
    elif name:
        button.aria_label = f"Call {name}, {button.display}"
    else:
        button.aria_label = f"Call {button.display}"
    if not _user_is_authenticated(context):
        button.reason, button.hint, button.hint_url = LOGIN, HINTS[LOGIN], _login_url(context)
        return button
    request = context.get("request")
    if request is not None:
        get_token(request)  # makes sure the csrftoken cookie the JS sends back is set
    try:
        button.available = _service_available(context)
    except Exception:
        logger.exception(
            "[Telephony Tag] call_button: state read failed for %s", mask_number(number)
        )
        button.reason = ERROR
        return button
    if not button.available:
        button.reason = SERVICE
    return button


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
        button = _build(context, number, label, name)
    except Exception:
        logger.exception("[Telephony Tag] call_button failed for %s", mask_number(number))
        button = Button(available=False, reason=ERROR)
    button.assets = assets
    try:
        return mark_safe(  # noqa: S308 - rendered by the autoescaping template engine
            render_to_string(
                TEMPLATE,
                {**asdict(button), "unavailable_text": UNAVAILABLE_TEXT},
                request=None,
            )
        )
    except Exception:
        logger.exception(
            "[Telephony Tag] call_button: template %s failed for %s", TEMPLATE, mask_number(number)
        )
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
