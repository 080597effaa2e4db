"""CSV exports of the analytics page, streamed (constant memory whatever the range).

Three tables, chosen with ``?table=``: ``agents`` (the page's per-agent rows), ``periods``
(its per-hour or per-day rows) and ``calls`` (one row per call in the range, read from the
database in chunks with ``.iterator(chunk_size=...)``: a year of calls never sits in memory).

Under ASGI (daphne) the body must be an async iterator: Django would read a sync one into a
list first. So there the same generator is driven in batches through ``sync_to_async`` on the
request's own thread (its database connection and server-side cursor stay with it).
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Iterable, Iterator
from itertools import islice
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.http import StreamingHttpResponse

from dashboard.analytics import selectors
from dashboard.analytics.forms import Period

CHUNK_SIZE = 2000
TABLES = ("agents", "periods", "calls")


class _Echo:
    """A file-like object whose ``write`` hands the line back, for ``csv.writer``."""

    def write(self, value: str) -> str:
        return value


def _lines(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow(row)


def _blank(value: Any) -> Any:
    return "" if value is None else value


def agent_rows(period: Period) -> Iterator[list[Any]]:
    for r in selectors.per_agent(period):
        yield [r.agent, r.calls, r.rang, r.answered, r.talk_s, r.handled, _blank(r.aht_s)]


def period_rows(period: Period) -> Iterator[list[Any]]:
    for b in selectors.per_bucket(period):
        counts = [b[k] for k in ("total", "rang", "answered", *selectors.OUTCOME_KEYS)]
        yield [b["start"].isoformat(), *counts]


def _iso(value: Any, period: Period) -> str:
    return value.astimezone(period.tz).isoformat() if value is not None else ""


def call_rows(period: Period) -> Iterator[list[Any]]:
    username = f"user__{get_user_model().USERNAME_FIELD}"
    fields: tuple[str, ...] = ("pk", "created_at", username, "to_number", "status", "ringing_at")
    fields += ("answered_at", "ended_at", "duration_seconds", "hangup_cause", "hangup_side")
    rows = (
        selectors.calls_in(period)
        .order_by("created_at", "pk")
        .values_list(*fields)
        .iterator(chunk_size=CHUNK_SIZE)
    )
    for pk, created, user, to, status, ringing, answered, ended, talk, cause, side in rows:
        tta = round((answered - ringing).total_seconds(), 3) if ringing and answered else ""
        times = [_iso(t, period) for t in (created, ringing, answered, ended)]
        yield [pk, times[0], user, to, status, *times[1:], tta, _blank(talk), cause, side]


HEADERS = {
    "agents": [
        "agent",
        "calls",
        "rang",
        "answered",
        "talk_seconds",
        "handled",
        "avg_handle_seconds",
    ],
    "periods": ["start", "calls", "rang", "answered", *selectors.OUTCOME_KEYS],
    "calls": [
        "id",
        "created_at",
        "agent",
        "to",
        "status",
        "ringing_at",
        "answered_at",
        "ended_at",
        "time_to_answer_seconds",
        "talk_seconds",
        "hangup_cause",
        "hangup_side",
    ],
}
ROWS = {"agents": agent_rows, "periods": period_rows, "calls": call_rows}


def _batches(lines: Iterator[str]) -> Iterator[str]:
    """The lines joined ``CHUNK_SIZE`` at a time: one body chunk per database chunk."""
    while part := "".join(islice(lines, CHUNK_SIZE)):
        yield part


async def _async_batches(lines: Iterator[str]) -> AsyncIterator[str]:
    """``_batches``, each batch read on the request's sync thread."""
    batches = _batches(lines)

    def take() -> str:
        return next(batches, "")

    while part := await sync_to_async(take, thread_sensitive=True)():
        yield part


def csv_response(period: Period, table: str, *, asynchronous: bool) -> StreamingHttpResponse:
    """The table as a streamed ``text/csv`` download named after the table and the days;
    ``asynchronous``: served by ASGI, so the body is an async iterator."""
    lines = _lines(HEADERS[table], ROWS[table](period))
    body = _async_batches(lines) if asynchronous else _batches(lines)
    response = StreamingHttpResponse(body, content_type="text/csv; charset=utf-8")
    name = f"telephony-{table}-{period.first_day:%Y%m%d}-{period.last_day:%Y%m%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "no-store"
    return response
