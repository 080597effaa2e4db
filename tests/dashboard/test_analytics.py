"""The analytics figures on calls with known answers (tests/dashboard/analytics_data.py).

Written database-neutral: CI runs them on SQLite, then on PostgreSQL (DATABASE_URL), where
the percentiles come from PERCENTILE_CONT instead of offset reads; the answers are the same.
"""

from __future__ import annotations

import threading
from datetime import date
from http import HTTPStatus

import pytest
from django.db import connection

from dashboard.analytics import percentiles, selectors
from dashboard.analytics.forms import Period
from tests.dashboard.analytics_data import QUERY, TZ

pytestmark = pytest.mark.django_db

PAGE = "/admin/telephony/analytics/"


def period(first: int = 2, last: int = 4, user_id: int | None = None) -> Period:
    return Period(date(2026, 3, first), date(2026, 3, last), TZ, user_id)


def test_summary__counts_outcomes_and_answer_rate_in_local_days(users) -> None:
    s = selectors.summary(period())
    assert s["placed"] == 15  # the call at 23:30 local on the 4th in, 23:59 on the 1st out
    assert s["rang"] == 12
    assert s["answered"] == 9
    assert s["answer_rate"] == 0.75
    assert s["talk_s"] == 560
    assert s["outcomes"] == {"completed": 8, "no_answer": 2, "busy": 1, "failed": 2, "canceled": 1}


def test_durations__median_and_p90_interpolated(users) -> None:
    d = selectors.durations(period())
    # time to answer 1 2 3 4 5 6 7 8 10: p50 at rank 4 -> 5; p90 at 7.2 -> 8 + 0.2 * 2
    assert d["time_to_answer"] == {"n": 9, "p50": 5.0, "p90": 8.4}
    # talk 10 20 30 40 60 100 120 180: p50 at 3.5 -> 50; p90 at 6.3 -> 120 + 0.3 * 60
    assert d["talk_time"] == {"n": 8, "p50": 50.0, "p90": 138.0}


@pytest.mark.django_db(transaction=True)  # other connections see only what is committed
def test_figures__side_by_side_on_postgresql_the_same_as_one_at_a_time(users, monkeypatch) -> None:
    threads: set[str] = set()
    figure = percentiles.figure

    def spied(qs, name):
        threads.add(threading.current_thread().name)
        return figure(qs, name)

    monkeypatch.setattr(percentiles, "figure", spied)
    week = period(1, 9)  # a week or more: side by side, on PostgreSQL
    together = selectors.figures(week)
    monkeypatch.setattr(selectors, "SIDE_BY_SIDE_DAYS", 10_000)
    apart = selectors.figures(week)
    assert together == apart and together[1]["talk_time"]["n"] > 0
    assert together[0].by_agent and together[0].by_bucket
    ran_in_pool = any(name.startswith("analytics") for name in threads)
    assert ran_in_pool == (connection.vendor == "postgresql"), threads


def test_durations__none_without_calls(users) -> None:
    d = selectors.durations(period(20, 21))
    assert d["talk_time"] == {"n": 0, "p50": None, "p90": None}
    assert d["time_to_answer"] == {"n": 0, "p50": None, "p90": None}


def test_per_bucket__days_in_local_time_with_empty_days_present(users) -> None:
    rows = selectors.per_bucket(period())
    assert [(r["start"].day, r["total"], r["answered"]) for r in rows] == [
        (2, 10, 5),
        (3, 4, 4),
        (4, 1, 0),
    ]
    assert rows[0]["answer_rate"] == 0.625 and rows[2]["answer_rate"] is None
    assert rows[0]["no_answer"] == 2 and rows[2]["failed"] == 1


def test_per_bucket__one_day_is_charted_per_local_hour(users) -> None:
    rows = selectors.per_bucket(period(2, 2))
    assert len(rows) == 24
    assert {r["start"].hour: r["total"] for r in rows if r["total"]} == {10: 10}


def test_hangup_causes__largest_first(users) -> None:
    assert selectors.hangup_causes(period()) == [
        {"cause": "normal_clearing", "n": 8},
        {"cause": "timeout", "n": 2},
        {"cause": "originator_cancel", "n": 1},
        {"cause": "unallocated_number", "n": 1},
        {"cause": "user_busy", "n": 1},
    ]


def test_per_agent__calls_answered_talk_and_average_handle_time(users) -> None:
    rows = selectors.per_agent(period())
    got = [(r.agent, r.calls, r.rang, r.answered, r.talk_s, r.handled, r.aht_s) for r in rows]
    # handle = 2 s agent lead + time to answer + talk, over answered calls that ended
    assert got == [
        ("alice", 11, 8, 5, 200, 5, 46.0),  # (13 + 24 + 35 + 46 + 112) / 5
        ("bob", 4, 4, 4, 360, 3, 128.0),  # (67 + 128 + 189) / 3; the live call not yet
    ]
    assert rows[0].answer_rate == 0.625


def test_agent_filter__narrows_every_figure(users) -> None:
    bob = period(user_id=users["bob"].pk)
    assert selectors.summary(bob)["placed"] == 4
    assert selectors.durations(bob)["talk_time"] == {"n": 3, "p50": 120.0, "p90": 168.0}
    assert [r.agent for r in selectors.per_agent(bob)] == ["bob"]


def test_page__renders_the_figures_charts_and_tables(users, admin_client) -> None:
    response = admin_client.get(PAGE, QUERY)
    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    assert 'data-ta="placed">15<' in html
    assert 'data-ta="answer-rate">75%<' in html
    assert 'data-ta="tta-median">5.0 s<' in html
    assert html.count('<svg class="ta-chart') == 5 and html.count('role="img"') == 5
    assert html.count("<title id=") == 5 and html.count("<desc id=") == 5
    assert "Time to answer: median 5.0 s, p90 8.4 s, over 9 calls" in html
    assert 'data-agent="alice"' in html and 'data-agent="bob"' in html
    assert "America/New_York" in html
    assert "table=agents" in html and "table=calls" in html


def test_page__agent_choice_lists_users_with_calls(users, admin_client) -> None:
    response = admin_client.get(PAGE, {**QUERY, "agent": users["bob"].pk})
    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    assert 'data-ta="placed">4<' in html
    assert f'<option value="{users["bob"].pk}" selected>bob</option>' in html
    assert ">admin</option>" not in html  # staff without calls is no agent


def test_page__default_is_the_last_seven_days(admin_client) -> None:
    response = admin_client.get(PAGE)
    assert response.status_code == HTTPStatus.OK
    assert response.context["period"].days == 7
    assert 'data-ta="placed">0<' in response.content.decode()


@pytest.mark.parametrize(
    ("values", "p50", "p90"),
    [
        ([7], 7.0, 7.0),
        ([1, 2], 1.5, 1.9),
        ([10, 20, 30, 40], 25.0, 37.0),
        ([5, 5, 5, 1, 9], 5.0, 7.4),  # repeated values: ranks inside one histogram bar
    ],
)
def test_from_histogram__matches_percentile_cont(values, p50, p90) -> None:
    counts: dict[int, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    got = percentiles.from_histogram(sorted(counts.items()))
    assert got == {"n": len(values), "p50": p50, "p90": p90}


def test_from_histogram__empty_and_scaled() -> None:
    assert percentiles.from_histogram([]) == {"n": 0, "p50": None, "p90": None}
    assert percentiles.from_histogram([(1500, 1), (2500, 1)], 0.001)["p50"] == 2.0
