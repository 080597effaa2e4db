"""The health page's template filters, against the table the live updates' formatter
(``static/dashboard/health/format.mjs``, ``tests/js/health-format.test.mjs``) is tested
with: a value reads the same on the first render and after a live update."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from dashboard.templatetags import health_format
from tests.conftest import ROOT

CASES: dict[str, list[list[Any]]] = {
    name: cases
    for name, cases in json.loads(
        (ROOT / "tests" / "fixtures" / "health_format_cases.json").read_text()
    ).items()
    if not name.startswith("_")
}


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [(name, value, shown) for name, cases in CASES.items() for value, shown in cases],
)
def test_health_format__reads_as_the_live_updates_do(name: str, value: Any, shown: str) -> None:
    assert str(getattr(health_format, name)(value)) == shown


def test_health_format__every_case_table_has_a_filter() -> None:
    assert set(CASES) <= set(health_format.register.filters)


def test_utc_clock__takes_datetimes_in_any_zone() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert health_format.utc_clock(datetime(2025, 6, 30, 22, 15, tzinfo=plus_two)) == "20:15:00 UTC"
    assert health_format.utc_clock(datetime(2025, 6, 30, 22, 15)) == "22:15:00 UTC"
    assert health_format.utc_clock(datetime(2025, 6, 30, 22, 15, tzinfo=UTC)) == "22:15:00 UTC"
