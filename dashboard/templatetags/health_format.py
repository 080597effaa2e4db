"""Number formats of the health page; ``static/dashboard/health.js`` mirrors them."""

from __future__ import annotations

from django import template

register = template.Library()

DASH = "\u2013"  # en dash


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
