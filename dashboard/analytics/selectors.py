"""The analytics figures, each from one aggregate query over a ``Period`` (HackSoft: reads).

Everything runs in the database and works on SQLite and PostgreSQL alike: ``Count`` with
``filter`` for conditional counts, ``Trunc*`` in the project's time zone for the buckets.
Percentiles are continuous (linear interpolation between the two nearest ranks, as
PostgreSQL's ``PERCENTILE_CONT``): on PostgreSQL one ordered-set aggregate, elsewhere two
rows read at an offset of the ordered values. Both give the same number.

The indexes behind them: (created_at, status) and (user, created_at) on the call table
(migration ``0004_analytics_indexes``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import (
    Aggregate,
    Count,
    Expression,
    F,
    FloatField,
    Func,
    Q,
    QuerySet,
    Sum,
)
from django.db.models.functions import Coalesce, TruncDay, TruncHour

from dashboard.analytics.forms import Period
from dashboard.ops.selectors import OUTCOMES
from telephony.models import Call

OUTCOME_KEYS = tuple(str(s) for s in OUTCOMES)
FRACTIONS = (0.5, 0.9)
TOP_CAUSES = 8

ANSWERED = Q(answered_at__isnull=False)
RANG = Q(ringing_at__isnull=False)
HANDLED = Q(answered_at__isnull=False, ended_at__isnull=False)


class SecondsBetween(Func):
    """``end - start`` in seconds (a float), in the database's own arithmetic: SQLite's
    ``julianday`` rather than Django's Python-level timestamp difference, which would be
    called once per row; PostgreSQL's ``EXTRACT(EPOCH FROM interval)``."""

    arity = 2
    output_field = FloatField()
    template = "CAST(EXTRACT(EPOCH FROM (%(expressions)s)) AS double precision)"
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


def calls_in(period: Period) -> QuerySet[Call]:
    """Calls created in the period (and by its agent, if any), without the default order."""
    qs = Call.objects.filter(created_at__gte=period.start, created_at__lt=period.end)
    if period.user_id is not None:
        qs = qs.filter(user_id=period.user_id)
    return qs.order_by()


def _outcome_counts() -> dict[str, Any]:
    return {key: Count("pk", filter=Q(status=key)) for key in OUTCOME_KEYS}


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _seconds(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)


def summary(period: Period) -> dict[str, Any]:
    """Totals: placed, rang (customer leg placed), answered, the answer rate (answered over
    rang), talk time, and the ended calls per outcome."""
    row = calls_in(period).aggregate(
        placed=Count("pk"),
        rang=Count("pk", filter=RANG),
        answered=Count("pk", filter=ANSWERED),
        talk_s=Sum("duration_seconds"),
        **_outcome_counts(),
    )
    return {
        "placed": row["placed"],
        "rang": row["rang"],
        "answered": row["answered"],
        "answer_rate": _rate(row["answered"], row["rang"]),
        "talk_s": row["talk_s"] or 0,
        "outcomes": {key: row[key] for key in OUTCOME_KEYS},
    }


def per_bucket(period: Period) -> list[dict[str, Any]]:
    """Calls per local hour (periods up to two days) or per local day, every bucket of the
    period present (empty ones with zeros), oldest first."""
    trunc = TruncHour if period.hourly else TruncDay
    rows = (
        calls_in(period)
        .annotate(bucket=trunc("created_at", tzinfo=period.tz))
        .values("bucket")
        .annotate(
            total=Count("pk"),
            rang=Count("pk", filter=RANG),
            answered=Count("pk", filter=ANSWERED),
            **_outcome_counts(),
        )
        .order_by("bucket")
    )
    found = {_local_key(r["bucket"], period): r for r in rows}
    out = []
    for key in bucket_keys(period):
        r = found.get(key) or {}
        counts = {k: r.get(k, 0) for k in ("total", "rang", "answered", *OUTCOME_KEYS)}
        out.append(
            {"start": key, **counts, "answer_rate": _rate(counts["answered"], counts["rang"])}
        )
    return out


def _local_key(value: datetime, period: Period) -> datetime:
    """A bucket as a naive local datetime (PostgreSQL answers aware, SQLite may not)."""
    if value.tzinfo is not None:
        value = value.astimezone(period.tz)
    return value.replace(tzinfo=None)


def bucket_keys(period: Period) -> Iterator[datetime]:
    """Every bucket's naive local start: each local day, or each hour of each local day."""
    for i in range(period.days):
        day = datetime.combine(period.first_day + timedelta(days=i), datetime.min.time())
        if not period.hourly:
            yield day
            continue
        for hour in range(24):
            yield day + timedelta(hours=hour)


class PercentileCont(Aggregate):
    """PostgreSQL's continuous percentile (an ordered-set aggregate)."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    allow_distinct = False

    def __init__(self, expression: Any, fraction: float, **extra: Any) -> None:
        super().__init__(expression, fraction=float(fraction), **extra)


def percentiles(qs: QuerySet[Call], value: Expression | str) -> dict[str, Any]:
    """``{"n", "p50", "p90"}`` of ``value`` over the rows of ``qs`` where it is not null."""
    qs = qs.annotate(_v=value).filter(_v__isnull=False)
    if connection.vendor == "postgresql":
        row = qs.aggregate(n=Count("pk"), **{_key(p): PercentileCont(value, p) for p in FRACTIONS})
        return {"n": row["n"], **{_key(p): _seconds(row[_key(p)]) for p in FRACTIONS}}
    n = qs.count()
    out: dict[str, Any] = {"n": n}
    ordered = qs.order_by("_v").values_list("_v", flat=True)
    for p in FRACTIONS:
        if n == 0:
            out[_key(p)] = None
            continue
        position = p * (n - 1)
        low = math.floor(position)
        values = [_seconds(v) or 0.0 for v in ordered[low : low + 2]]
        weight = position - low
        value_at = values[0] + (values[-1] - values[0]) * weight
        out[_key(p)] = round(value_at, 3)
    return out


def _key(p: float) -> str:
    return f"p{round(p * 100)}"


def durations(period: Period) -> dict[str, dict[str, Any]]:
    """Time to answer and talk time: how many calls had one, their median and p90 (s)."""
    qs = calls_in(period)
    return {
        "time_to_answer": percentiles(qs, time_to_answer()),
        "talk_time": percentiles(qs, F("duration_seconds")),
    }


def hangup_causes(period: Period) -> list[dict[str, Any]]:
    """Hangup causes by count, the largest first; past the top few, one "other" row."""
    rows = list(
        calls_in(period)
        .exclude(hangup_cause="")
        .values("hangup_cause")
        .annotate(n=Count("pk"))
        .order_by("-n", "hangup_cause")
    )
    top = [{"cause": r["hangup_cause"], "n": r["n"]} for r in rows[:TOP_CAUSES]]
    rest = sum(r["n"] for r in rows[TOP_CAUSES:])
    return top + ([{"cause": "other", "n": rest}] if rest else [])


@dataclass(frozen=True)
class AgentRow:
    """One agent's figures; ``aht_s`` is the average handle time over handled calls."""

    user_id: int
    agent: str
    calls: int
    rang: int
    answered: int
    talk_s: int
    handled: int
    aht_s: float | None

    @property
    def answer_rate(self) -> float | None:
        return _rate(self.answered, self.rang)


def per_agent(period: Period) -> list[AgentRow]:
    """Per agent: calls placed, customer legs dialled, answered by the customer, total talk
    time, and average handle time (handle time summed over answered, ended calls, divided
    by their count). Busiest first."""
    rows = list(
        calls_in(period)
        .values("user_id")
        .annotate(
            calls=Count("pk"),
            rang=Count("pk", filter=RANG),
            answered=Count("pk", filter=ANSWERED),
            talk_s=Sum("duration_seconds"),
            handled=Count("pk", filter=HANDLED),
            handle=Sum(handle_time(), filter=HANDLED),
        )
        .order_by("-calls", "user_id")
    )
    user_model = get_user_model()
    names = dict(
        user_model.objects.filter(pk__in=[r["user_id"] for r in rows]).values_list(
            "pk", user_model.USERNAME_FIELD
        )
    )
    return [
        AgentRow(
            user_id=r["user_id"],
            agent=str(names.get(r["user_id"], r["user_id"])),
            calls=r["calls"],
            rang=r["rang"],
            answered=r["answered"],
            talk_s=r["talk_s"] or 0,
            handled=r["handled"],
            aht_s=round(_seconds(r["handle"]) / r["handled"], 1)  # type: ignore[operator]
            if r["handled"] and r["handle"] is not None
            else None,
        )
        for r in rows
    ]
