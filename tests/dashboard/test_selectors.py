"""Small pieces of the health page: event colours, today's boundary, number formats."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dashboard.ops.selectors import event_tone, start_of_today
from dashboard.templatetags.health_format import age, duration, le_ms, ms, pct


@pytest.mark.parametrize(
    ("kind", "state", "expected", "tone"),
    [
        ("worker_exited", "", False, "bad"),
        ("worker_exited", "", True, "info"),  # recycling, rolling restart: asked for
        ("worker_hung", "", False, "bad"),
        ("restart_intensity_exceeded", "", False, "bad"),
        ("worker_restarted", "", False, "warn"),
        ("worker_started", "", False, "good"),
        ("control_restart", "", False, "control"),
        ("breaker_forced", "", False, "control"),
        ("state_changed", "ready", False, "good"),
        ("state_changed", "degraded", False, "warn"),
        ("state_changed", "unavailable", False, "bad"),
        ("credentials_cleaned", "", False, "info"),
    ],
)
def test_event_tone(kind, state, expected, tone) -> None:
    assert event_tone(kind, state, expected=expected) == tone


def test_start_of_today__is_midnight_in_the_project_time_zone(settings) -> None:
    settings.TIME_ZONE = "America/New_York"
    start = start_of_today(now=datetime(2026, 3, 5, 3, 30, tzinfo=UTC))  # 22:30 the day before
    assert start.isoformat() == "2026-03-04T00:00:00-05:00"


def test_formats() -> None:
    assert [duration(v) for v in (None, 4.9, 65, 3 * 3600 + 120, 2 * 86400 + 7200)] == [
        "\u2013", "4 s", "1 m 05 s", "3 h 02 m", "2 d 2 h",
    ]  # fmt: skip
    assert [ms(v) for v in (3.21, 140.4, 2500)] == ["3.2 ms", "140 ms", "2.5 s"]
    assert le_ms(25.0) == "≤ 25 ms" and pct(0.256) == "26%" and age(0.44) == "0.4 s ago"
