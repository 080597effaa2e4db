"""1,000,000 generated calls for the analytics benchmark, fast, on SQLite or PostgreSQL.

The rows come from one seeded generator (the same calls on both databases): a year of
calls ending now, five agents with uneven shares, outcomes in realistic proportions, with
the legs' timestamps, talk times and hangup causes that go with each outcome. PostgreSQL
takes them through COPY, SQLite through executemany in one transaction per batch; then
both get ANALYZE (PostgreSQL VACUUM ANALYZE, so index-only scans can skip the heap).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

COLUMNS = (
    "id", "user_id", "to_number", "from_number", "status", "call_control_id",
    "call_session_id", "agent_call_control_id", "created_at", "updated_at", "dialed_at",
    "agent_answered_at", "ringing_at", "answered_at", "ended_at", "agent_ended_at",
    "customer_ended_at", "duration_seconds", "hangup_cause", "hangup_side",
    "hangup_requested", "error_code", "is_recording", "recording_error",
)  # fmt: skip
# (status, weight, hangup causes): canceled and half the failed never rang the customer.
OUTCOMES = [
    ("completed", 55, ["normal_clearing"] * 9 + ["originator_cancel"]),
    ("no_answer", 16, ["timeout", "no_answer"]),
    ("busy", 7, ["user_busy"]),
    ("failed", 6, ["call_rejected", "unallocated_number", "normal_temporary_failure"]),
    ("canceled", 16, ["originator_cancel"]),
]
AGENT_WEIGHTS = [35, 25, 20, 12, 8]
BATCH = 20_000


def rows(
    n: int, user_ids: list[int], *, now: datetime, seed: int = 13
) -> Iterator[tuple[Any, ...]]:
    """``n`` call rows (tuples in ``COLUMNS`` order) created over the year before ``now``,
    in the order they were placed."""
    rnd = random.Random(seed)
    statuses = [o[0] for o in OUTCOMES]
    causes = {o[0]: o[2] for o in OUTCOMES}
    weights = [o[1] for o in OUTCOMES]
    year = 365 * 86400
    for i in range(n):  # oldest first, as a live table is written: ranges are contiguous
        status = rnd.choices(statuses, weights)[0]
        created = now - timedelta(seconds=year * (1 - (i + rnd.random()) / n))
        dialed = created + timedelta(seconds=0.2)
        rang = status in ("completed", "no_answer", "busy") or (
            status == "failed" and rnd.random() < 0.5
        )
        agent_answered = created + timedelta(seconds=rnd.uniform(1, 4)) if rang else None
        ringing = agent_answered + timedelta(seconds=0.5) if agent_answered else None
        answered = talk = None
        if status == "completed":
            answered = ringing + timedelta(seconds=rnd.lognormvariate(1.8, 0.6))  # type: ignore[operator]
            talk = int(rnd.lognormvariate(4.6, 0.9))
            ended = answered + timedelta(seconds=talk)
        elif ringing is not None:
            ended = ringing + timedelta(seconds=30 if status == "no_answer" else 2)
        else:
            ended = created + timedelta(seconds=rnd.uniform(2, 15))
        yield (
            uuid.UUID(int=rnd.getrandbits(128), version=4), rnd.choices(user_ids, AGENT_WEIGHTS)[0],
            f"+1202555{rnd.randrange(10000):04d}", "+12025550100", status, "", "", "",
            created, ended, dialed, agent_answered, ringing, answered, ended, ended,
            ended if rang else None, talk, rnd.choice(causes[status]),
            rnd.choice(["agent", "customer"]) if answered else "system", False, "", False, "",
        )  # fmt: skip


def insert(connection: Any, n: int, user_ids: list[int]) -> None:
    """Write ``n`` generated calls through ``connection`` (Django's), then analyse them."""
    now = datetime.now(UTC)
    generated = rows(n, user_ids, now=now)
    raw = connection.connection
    if connection.vendor == "postgresql":
        with raw.cursor() as cur:
            with cur.copy(f"COPY telephony_call ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in generated:
                    copy.write_row(row)
        raw.commit()
        raw.autocommit = True
        raw.execute("VACUUM ANALYZE telephony_call")
        return
    sql = (
        f"INSERT INTO telephony_call ({', '.join(COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(COLUMNS))})"
    )
    while batch := list(islice(generated, BATCH)):
        raw.execute("BEGIN")  # Django's sqlite3 connection autocommits each statement
        raw.executemany(sql, [tuple(_sqlite(v) for v in row) for row in batch])
        raw.execute("COMMIT")
    raw.execute("ANALYZE")


def _sqlite(value: Any) -> Any:
    """Values as Django stores them in SQLite: naive UTC datetimes, UUIDs as 32 hex digits."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
    if isinstance(value, uuid.UUID):
        return value.hex
    return value
