"""The analytics figures over a ``Period`` (HackSoft: reads), from four aggregate queries.

Two passes over the range's calls, grouped with conditional counts and sums (``Count``/
``Sum`` with ``filter``; buckets by ``TruncHour`` or ``TruncDay`` in the project's time
zone), give two small tables (``Tables``) that the totals, the per-bucket rows, the hangup
causes and the per-agent rows are all folded from here. The percentiles are two more
(``dashboard/analytics/percentiles.py``). On PostgreSQL, over a week or more, the four
run side by side, each on a connection of its own (:func:`side_by_side`). No raw SQL:
the same code runs on SQLite and PostgreSQL.

The indexes behind them: (created_at, status) and (user, created_at) on the call table
(migration ``0005_analytics_indexes``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection, connections
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncHour

from dashboard.analytics import percentiles
from dashboard.analytics.forms import Period
from dashboard.ops.selectors import OUTCOMES
from telephony.models import Call

OUTCOME_KEYS = tuple(str(s) for s in OUTCOMES)
TOP_CAUSES = 8
COUNTS = ("n", "rang", "answered", "talk_s", "handled", "handle_s")

Rows = list[dict[str, Any]]
# Periods from this many days on run their queries side by side on PostgreSQL.
SIDE_BY_SIDE_DAYS = 7


def calls_in(period: Period) -> QuerySet[Call]:
    """Calls created in the period (and by its agent, if any), without the default order."""
    qs = Call.objects.filter(created_at__gte=period.start, created_at__lt=period.end)
    if period.user_id is not None:
        qs = qs.filter(user_id=period.user_id)
    return qs.order_by()


@dataclass(frozen=True)
class Tables:
    """The period's calls counted two ways, each from one pass over them:

    - ``by_bucket``: per (bucket, status): ``n`` calls, ``rang`` (customer leg placed),
      ``answered`` (customer picked up);
    - ``by_agent``: per (user_id, status, hangup_cause): the same, plus ``talk_s``,
      ``handled`` (answered and ended) and their handle time ``handle_s``.

    Two passes, not one grouped by all four: PostgreSQL cannot estimate how many buckets an
    expression makes, so a four-key grouping gets a sort spilled to disk; the agent, status
    and cause columns have statistics and get a hash aggregate.
    """

    by_bucket: Rows
    by_agent: Rows


def _counts() -> dict[str, Any]:
    return {
        "n": Count("pk"),
        "rang": Count("pk", filter=Q(ringing_at__isnull=False)),
        "answered": Count("pk", filter=Q(answered_at__isnull=False)),
    }


def _by_bucket(period: Period) -> Rows:
    trunc = TruncHour if period.hourly else TruncDay
    return list(
        calls_in(period)
        .annotate(bucket=trunc("created_at", tzinfo=period.tz))
        .values("bucket", "status")
        .annotate(**_counts())
        .order_by()
    )


def _by_agent(period: Period) -> Rows:
    handled = Q(answered_at__isnull=False, ended_at__isnull=False)
    return list(
        calls_in(period)
        .values("user_id", "status", "hangup_cause")
        .annotate(
            **_counts(),
            talk_s=Sum("duration_seconds"),
            handled=Count("pk", filter=handled),
            handle_s=Sum(percentiles.handle_time(), filter=handled),
        )
        .order_by()
    )


def tables(period: Period) -> Tables:
    """Both count tables of the period (a few hundred to a few thousand rows for a year)."""
    by_bucket, by_agent = side_by_side(
        period, lambda: _by_bucket(period), lambda: _by_agent(period)
    )
    return Tables(by_bucket=by_bucket, by_agent=by_agent)


def figures(period: Period) -> tuple[Tables, dict[str, dict[str, Any]]]:
    """What the page shows, from its four aggregate queries: :func:`tables` and
    :func:`durations`, run side by side where that helps (:func:`side_by_side`)."""
    names = list(percentiles.FIGURES)
    by_bucket, by_agent, *durations = side_by_side(
        period,
        lambda: _by_bucket(period),
        lambda: _by_agent(period),
        *(lambda name=name: percentiles.figure(calls_in(period), name) for name in names),
    )
    return Tables(by_bucket, by_agent), dict(zip(names, durations, strict=True))


def side_by_side(period: Period, *queries: Callable[[], Any]) -> list[Any]:
    """Run independent read queries at once, each on a connection of its own, on
    PostgreSQL over more than a few days: each scans the whole range, and PostgreSQL
    runs some of them on one core only (a grouping by an expression, or one with many
    groups, gets no parallel plan). In order otherwise: SQLite, short periods (three
    more connections would cost more than they save), and inside a transaction, which
    other connections could not see."""
    if (
        connection.vendor != "postgresql"
        or connection.in_atomic_block
        or period.days < SIDE_BY_SIDE_DAYS
        or len(queries) < 2
    ):
        return [query() for query in queries]

    def on_own_connection(query: Callable[[], Any]) -> Any:
        try:
            return query()
        finally:
            connections.close_all()  # this thread's connections, opened for this query

    with ThreadPoolExecutor(max_workers=len(queries) - 1, thread_name_prefix="analytics") as pool:
        rest = [pool.submit(on_own_connection, query) for query in queries[1:]]
        first = queries[0]()  # this thread's own connection does one of them meanwhile
        return [first, *(future.result() for future in rest)]


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _fold(rows: Rows, key: Any) -> dict[Any, dict[str, Any]]:
    """Sum the counts of ``rows`` per ``key(row)``, plus the calls per outcome."""
    out: dict[Any, dict[str, Any]] = defaultdict(lambda: dict.fromkeys((*COUNTS, *OUTCOME_KEYS), 0))
    for r in rows:
        acc = out[key(r)]
        for c in COUNTS:
            acc[c] += r.get(c) or 0
        if r["status"] in OUTCOME_KEYS:
            acc[r["status"]] += r["n"]
    return out


def summary(period: Period, t: Tables | None = None) -> dict[str, Any]:
    """Totals: placed, rang (customer leg placed), answered, the answer rate (answered over
    rang), talk time, and the ended calls per outcome."""
    total = _fold((t or tables(period)).by_agent, lambda r: None)[None]
    return {
        "placed": total["n"],
        "rang": total["rang"],
        "answered": total["answered"],
        "answer_rate": _rate(total["answered"], total["rang"]),
        "talk_s": total["talk_s"],
        "outcomes": {key: total[key] for key in OUTCOME_KEYS},
    }


def per_bucket(period: Period, t: Tables | None = None) -> Rows:
    """Calls per local hour (periods up to two days) or per local day, every bucket of the
    period present (empty ones with zeros), oldest first."""
    found = _fold((t or tables(period)).by_bucket, lambda r: _local_key(r["bucket"], period))
    out = []
    for key in bucket_keys(period):
        b = found.get(key) or dict.fromkeys((*COUNTS, *OUTCOME_KEYS), 0)
        counts = {"total": b["n"], "rang": b["rang"], "answered": b["answered"]}
        counts.update({k: b[k] for k in OUTCOME_KEYS})
        out.append({"start": key, **counts, "answer_rate": _rate(b["answered"], b["rang"])})
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


def durations(period: Period) -> dict[str, dict[str, Any]]:
    """Time to answer and talk time: how many calls had one, their median and p90 (s)."""
    return percentiles.durations(calls_in(period))


def hangup_causes(period: Period, t: Tables | None = None) -> Rows:
    """Hangup causes by count, the largest first; past the top few, one "other" row."""
    folded = _fold((t or tables(period)).by_agent, lambda r: r["hangup_cause"])
    ranked = sorted(((c, v["n"]) for c, v in folded.items() if c), key=lambda x: (-x[1], x[0]))
    top = [{"cause": c, "n": n} for c, n in ranked[:TOP_CAUSES]]
    rest = sum(n for _, n in ranked[TOP_CAUSES:])
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


def per_agent(period: Period, t: Tables | None = None) -> list[AgentRow]:
    """Per agent: calls placed, customer legs dialled, answered by the customer, total talk
    time, and average handle time (handle time summed over answered, ended calls, divided
    by their count). Busiest first."""
    folded = _fold((t or tables(period)).by_agent, lambda r: r["user_id"])
    user_model = get_user_model()
    names = dict(
        user_model.objects.filter(pk__in=list(folded)).values_list("pk", user_model.USERNAME_FIELD)
    )
    agents = [
        AgentRow(
            user_id=uid,
            agent=str(names.get(uid, uid)),
            calls=a["n"],
            rang=a["rang"],
            answered=a["answered"],
            talk_s=a["talk_s"],
            handled=a["handled"],
            aht_s=round(a["handle_s"] / a["handled"], 1) if a["handled"] else None,
        )
        for uid, a in folded.items()
    ]
    return sorted(agents, key=lambda a: (-a.calls, a.user_id))
