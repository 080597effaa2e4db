"""Calls with known answers for the analytics tests, in New York time (UTC-5 in early March
2026, before daylight saving time starts on the 8th).

Over 2026-03-02 .. 2026-03-04 (local days):

- alice, 2026-03-02 from 10:00 local: 5 completed (time to answer 1, 2, 3, 4, 10 s; talk
  10, 20, 30, 40, 100 s), 2 no answer, 1 busy (all three rang), 1 failed and 1 canceled
  (never reached the customer); and one failed call at 23:30 local on 2026-03-04, which
  is 04:30 UTC on the 5th: inside the range only if days are read in local time.
- bob, 2026-03-03 at 15:00 local: 3 completed (time to answer 5, 6, 7 s; talk 60, 120,
  180 s) and one still talking (answered after 8 s, not ended).
- one more completed call of bob's at 23:59 local on 2026-03-01 (04:59 UTC on the 2nd):
  outside the range in local time, inside it if days were read in UTC.

Every agent picks up their own leg 2 s before the customer's phone rings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib.auth import get_user_model

from telephony.models import Call, CallStatus

TZ_NAME = "America/New_York"
TZ = ZoneInfo(TZ_NAME)
AGENT_LEAD = timedelta(seconds=2)


@dataclass(frozen=True)
class Spec:
    user: str
    at: datetime
    status: str
    tta: float | None = None  # time to answer, s; None: the customer never answered
    talk: int | None = None
    rang: bool = True
    cause: str = ""
    ended: bool = True


def _local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=TZ)


SPECS: list[Spec] = [
    *(
        Spec(
            "alice",
            _local(2, 10, i),
            CallStatus.COMPLETED,
            tta=tta,
            talk=talk,
            cause="normal_clearing",
        )
        for i, (tta, talk) in enumerate([(1, 10), (2, 20), (3, 30), (4, 40), (10, 100)])
    ),
    Spec("alice", _local(2, 10, 10), CallStatus.NO_ANSWER, cause="timeout"),
    Spec("alice", _local(2, 10, 11), CallStatus.NO_ANSWER, cause="timeout"),
    Spec("alice", _local(2, 10, 12), CallStatus.BUSY, cause="user_busy"),
    Spec("alice", _local(2, 10, 13), CallStatus.FAILED, rang=False),
    Spec("alice", _local(2, 10, 14), CallStatus.CANCELED, rang=False, cause="originator_cancel"),
    Spec("alice", _local(4, 23, 30), CallStatus.FAILED, rang=False, cause="unallocated_number"),
    *(
        Spec(
            "bob",
            _local(3, 15, i),
            CallStatus.COMPLETED,
            tta=tta,
            talk=talk,
            cause="normal_clearing",
        )
        for i, (tta, talk) in enumerate([(5, 60), (6, 120), (7, 180)])
    ),
    Spec("bob", _local(3, 15, 5), CallStatus.ANSWERED, tta=8, ended=False),
    Spec("bob", _local(1, 23, 59), CallStatus.COMPLETED, tta=1, talk=999, cause="normal_clearing"),
]

QUERY = {"range": "custom", "date_from": "2026-03-02", "date_to": "2026-03-04"}


def make_calls() -> dict[str, Any]:
    """Write the calls above; the users by name."""
    users = {
        name: get_user_model().objects.create_user(name, password="pw") for name in ("alice", "bob")
    }
    for s in SPECS:
        ringing = s.at + timedelta(seconds=1) if s.rang else None
        answered = ringing + timedelta(seconds=s.tta) if ringing and s.tta is not None else None
        end_base = answered or ringing or s.at + timedelta(seconds=1)
        ended = end_base + timedelta(seconds=s.talk or 0) if s.ended else None
        call = Call.objects.create(
            user=users[s.user],
            to_number="+12025550143",
            status=s.status,
            agent_answered_at=ringing - AGENT_LEAD if ringing else None,
            ringing_at=ringing,
            answered_at=answered,
            ended_at=ended,
            duration_seconds=s.talk,
            hangup_cause=s.cause,
        )
        # created_at is auto_now_add: set it afterwards.
        Call.objects.filter(pk=call.pk).update(created_at=s.at)
    return users
