"""Time to answer and talk time: median and p90, the same on SQLite and PostgreSQL.

Percentiles are continuous: the value at rank p x (n - 1) of the ordered values,
interpolated between the two nearest (PostgreSQL's ``PERCENTILE_CONT``). They are read
from a histogram the database builds, one ``GROUP BY`` per figure: talk time is whole
seconds already, time to answer is counted per millisecond. A hash aggregate over the
range is much cheaper than sorting every value (``PERCENTILE_CONT``, or ordered reads at an
offset), the code is the same on every database, and the answer is exact for talk time and
within half a millisecond for time to answer.
"""

from __future__ import annotations

import math
from typing import Any

from django.db.models import Count, Expression, F, FloatField, Func, Q, QuerySet
from django.db.models.functions import Coalesce

from telephony.models import Call

FRACTIONS = (0.5, 0.9)


class SecondsBetween(Func):
    """``end - start`` in seconds (a float), in the database's own arithmetic: SQLite's
    ``julianday`` rather than Django's Python-level timestamp difference, which would be
    called once per row; PostgreSQL's ``date_part('epoch', interval)``, a double precision
    (``EXTRACT`` answers ``numeric`` since PostgreSQL 14: a third slower over a year of calls)."""

    arity = 2
    output_field = FloatField()
    template = "date_part('epoch', (%(expressions)s))"
    arg_joiner = " - "

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler,
            connection,
            template="((julianday(%(expressions)s)) * 86400.0)",
            arg_joiner=") - julianday(",
            **extra,
        )


def time_to_answer() -> Expression:
    """Customer leg placed -> customer answered, in seconds."""
    return SecondsBetween("answered_at", "ringing_at")


def handle_time() -> Expression:
    """Agent picked up their leg -> call ended, in seconds: dialling and ringing the
    customer plus the talk (the legs' timestamps fall back to the customer's when the
    agent's are missing)."""
    return SecondsBetween("ended_at", Coalesce("agent_answered_at", "ringing_at", "answered_at"))


# name -> (the histogram's value, its unit in seconds, the calls that have one)
FIGURES: dict[str, tuple[Any, float, Q]] = {
    "time_to_answer": (
        lambda: Func(time_to_answer() * 1000, function="ROUND", output_field=FloatField()),
        0.001,
        Q(ringing_at__isnull=False, answered_at__isnull=False),
    ),
    "talk_time": (lambda: F("duration_seconds"), 1.0, Q(duration_seconds__isnull=False)),
}


def durations(qs: QuerySet[Call]) -> dict[str, dict[str, Any]]:
    """``{figure: {"n", "p50", "p90"}}`` in seconds over the calls of ``qs`` that have it."""
    return {name: figure(qs, name) for name in FIGURES}


def figure(qs: QuerySet[Call], name: str) -> dict[str, Any]:
    """One figure's ``{"n", "p50", "p90"}`` in seconds, from one ``GROUP BY``."""
    value, unit, has = FIGURES[name]
    rows = qs.filter(has).annotate(v_=value()).values("v_").annotate(n=Count("pk"))
    return from_histogram(sorted((r["v_"], r["n"]) for r in rows), unit)


def from_histogram(histogram: list[tuple[Any, int]], unit: float = 1.0) -> dict[str, Any]:
    """``{"n", "p50", "p90"}`` of the values that ``histogram`` ([(value, count)], sorted by
    value) counts, interpolated between neighbouring ranks, times ``unit``."""
    n = sum(count for _, count in histogram)
    out: dict[str, Any] = {"n": n}
    for p in FRACTIONS:
        position = p * (n - 1)
        low = math.floor(position)
        if n == 0:
            out[f"p{round(p * 100)}"] = None
            continue
        a, b = _at(histogram, low), _at(histogram, min(low + 1, n - 1))
        out[f"p{round(p * 100)}"] = round((a + (b - a) * (position - low)) * unit, 3)
    return out


def _at(histogram: list[tuple[Any, int]], rank: int) -> float:
    """The value at 0-based ``rank`` of the ordered values the histogram counts."""
    seen = 0
    for value, count in histogram:
        seen += count
        if rank < seen:
            return float(value)
    raise IndexError(rank)
