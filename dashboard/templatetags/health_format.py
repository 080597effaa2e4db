"""Number and time formats of the health page.

``static/dashboard/health/format.mjs`` applies the same rules to live updates, so a value
reads the same before and after one; ``tests/fixtures/health_format_cases.json`` holds
the cases both are tested against.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from django import template

register = template.Library()

DASH = "\u2013"  # en dash
# The ISO 8601 shapes format.mjs reads too (fromisoformat alone would accept more).
_ISO = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?"
)


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@register.filter
def duration(value: object) -> str:
    """Seconds as "12 s", "4 m 05 s", "3 h 12 m", "2 d 4 h"."""
    s = _num(value)
    if s is None:
        return DASH
    total = int(s)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} m"
    if minutes:
        return f"{minutes} m {seconds:02d} s"
    return f"{seconds} s"


@register.filter
def age(value: object) -> str:
    """Seconds since something, with one decimal: "0.4 s ago"."""
    s = _num(value)
    return DASH if s is None else f"{s:.1f} s ago"


@register.filter
def ms(value: object) -> str:
    """Milliseconds: "3.2 ms", "140 ms", "2.5 s"."""
    v = _num(value)
    if v is None:
        return DASH
    if v >= 1000:
        return f"{v / 1000:.1f} s"
    return f"{v:.1f} ms" if v < 10 else f"{v:.0f} ms"


@register.filter
def le_ms(value: object) -> str:
    """A histogram bucket bound: "≤ 25 ms"; None means past the last bucket."""
    v = _num(value)
    return DASH if v is None else f"≤ {ms(v)}"


@register.filter
def pct(value: object) -> str:
    """A rate in 0..1 as a whole percentage."""
    v = _num(value)
    return DASH if v is None else f"{round(v * 100)}%"


@register.filter
def mb(value: object) -> str:
    """Megabytes, whole."""
    v = _num(value)
    return DASH if v is None else f"{v:.0f} MB"


@register.filter
def dash(value: object) -> object:
    """The value, or a dash when it is None or empty."""
    return DASH if value is None or value == "" else value


@register.filter
def utc_clock(value: object) -> object:
    """An ISO 8601 time (or a datetime) as "14:03:27 UTC": the same clock for every
    operator, whatever their time zone, and the one in the logs. Naive times are taken
    as UTC; anything else is returned as it is, and nothing at all as a dash."""
    if value is None or value == "":
        return DASH
    if isinstance(value, str):
        if not _ISO.fullmatch(value):
            return value
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if not isinstance(value, datetime):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%H:%M:%S UTC")
