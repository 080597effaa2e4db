"""The analytics page's access, its form errors and its streamed CSV exports."""

from __future__ import annotations

import csv
import io
from http import HTTPStatus

import pytest
from django.db import connection
from django.http import StreamingHttpResponse
from django.test import AsyncClient
from django.test.utils import CaptureQueriesContext

from tests.dashboard.analytics_data import QUERY, TZ_NAME, make_calls
from tests.dashboard.conftest import client_for

pytestmark = pytest.mark.django_db

PAGE = "/admin/telephony/analytics/"
CSV = "/admin/telephony/analytics.csv"


def rows(response: StreamingHttpResponse) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode()  # type: ignore[arg-type]
    return list(csv.reader(io.StringIO(body)))


@pytest.mark.parametrize("url", [PAGE, CSV])
def test_analytics__anonymous_goes_to_the_admin_login(client, url) -> None:
    response = client.get(url)
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("url", [PAGE, CSV])
def test_analytics__non_staff_goes_to_the_admin_login(customer, url) -> None:
    response = client_for(customer).get(url, QUERY)
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith("/admin/login/")


def test_analytics__linked_from_the_admin_index_and_the_health_page(admin_client) -> None:
    assert f'href="{PAGE}"' in admin_client.get("/admin/").content.decode()
    health = admin_client.get("/admin/telephony/health/").content.decode()
    assert f'href="{PAGE}" data-th="analytics-link"' in health
    assert f'href="{PAGE}?range=today" data-th="calls-analytics-link"' in health  # calls today


BAD = [
    ({"date_from": "2026-03-05", "date_to": "2026-03-01"}, "inverted_range", "is after"),
    ({"date_from": "2025-01-01", "date_to": "2026-01-02"}, "range_too_long", "at most 366"),
    ({"date_from": "2026-02-30", "date_to": "2026-03-01"}, "invalid", "valid date"),
    ({"date_from": "yesterday", "date_to": "2026-03-01"}, "invalid", "valid date"),
    ({"date_from": "2026-03-01"}, "incomplete_range", "both a From and a To"),
    ({"date_from": "9999-12-31", "date_to": "9999-12-31"}, "date_out_of_range", "between"),
    ({"date_from": "0001-01-01", "date_to": "0001-01-01"}, "date_out_of_range", "between"),
]


@pytest.mark.parametrize(("query", "code", "text"), BAD)
def test_page__bad_range_is_a_form_error_not_a_500(admin_client, query, code, text) -> None:
    response = admin_client.get(PAGE, {"range": "custom", **query})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    html = response.content.decode()
    assert 'data-ta="form-errors"' in html and text in html
    assert 'data-ta="placed"' not in html  # no figures for a range that is not one
    assert response.context["form"].has_error("__all__", code) or any(
        e.code == code for errors in response.context["form"].errors.as_data().values()
        for e in errors
    )  # fmt: skip


@pytest.mark.parametrize(("query", "code", "text"), BAD[:3])
def test_csv__bad_range_is_a_json_error_with_a_code(admin_client, query, code, text) -> None:
    response = admin_client.get(CSV, {"range": "custom", **query})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    body = response.json()
    assert body["code"] == code and text in body["error"]


@pytest.mark.parametrize(
    ("query", "field"),
    [({"range": "1y"}, "range"), ({"range": "7d", "agent": "999999"}, "agent")],
)
def test_page__unknown_choices_are_form_errors(admin_client, query, field) -> None:
    response = admin_client.get(PAGE, query)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.context["form"].has_error(field)


def test_csv__unknown_table_is_refused(admin_client) -> None:
    response = admin_client.get(CSV, {**QUERY, "table": "secrets"})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "invalid_table"


def test_csv__agent_rows_match_the_page(users, admin_client) -> None:
    response = admin_client.get(CSV, {**QUERY, "table": "agents"})
    assert response.status_code == HTTPStatus.OK
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="telephony-agents-20260302-20260304.csv"' in response["Content-Disposition"]
    assert rows(response) == [
        ["agent", "calls", "rang", "answered", "talk_seconds", "handled", "avg_handle_seconds"],
        ["alice", "11", "8", "5", "200", "5", "46.0"],
        ["bob", "4", "4", "4", "360", "3", "128.0"],
    ]


def test_csv__period_rows_per_local_day(users, admin_client) -> None:
    got = rows(admin_client.get(CSV, {**QUERY, "table": "periods"}))
    assert got[0][:4] == ["start", "calls", "rang", "answered"]
    assert [r[:4] for r in got[1:]] == [
        ["2026-03-02T00:00:00", "10", "8", "5"],
        ["2026-03-03T00:00:00", "4", "4", "4"],
        ["2026-03-04T00:00:00", "1", "0", "0"],
    ]


def test_csv__calls_stream_lazily_one_row_per_call(users, admin_client) -> None:
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(CSV, {**QUERY, "table": "calls"})
    assert response.streaming
    assert not any("telephony_call" in q["sql"] for q in queries.captured_queries)
    got = rows(response)  # the calls are read only now, while the body is sent
    assert len(got) == 1 + 15
    header = got[0]
    first, last = dict(zip(header, got[1], strict=True)), dict(zip(header, got[-1], strict=True))
    assert header[:3] == ["id", "created_at", "agent"]
    assert first["created_at"] == "2026-03-02T10:00:00-05:00" and first["agent"] == "alice"
    assert first["time_to_answer_seconds"] == "1.0" and first["talk_seconds"] == "10"
    assert last["created_at"] == "2026-03-04T23:30:00-05:00" and last["status"] == "failed"


@pytest.mark.django_db(transaction=True)
async def test_csv__under_asgi_the_body_is_an_async_stream(settings, admin_user) -> None:
    settings.TIME_ZONE = TZ_NAME
    from asgiref.sync import sync_to_async

    await sync_to_async(make_calls)()
    client = AsyncClient()
    await sync_to_async(client.force_login)(admin_user)
    response = await client.get(CSV, {**QUERY, "table": "calls"})
    assert response.status_code == HTTPStatus.OK and response.is_async
    parts = [part async for part in response.streaming_content]
    body = b"".join(parts).decode()
    assert len(list(csv.reader(io.StringIO(body)))) == 1 + 15
