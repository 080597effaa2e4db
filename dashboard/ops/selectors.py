"""Reads from the record for the health page (HackSoft style: selectors read).

Each is one or two cheap queries: the page refreshes every few seconds while open.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Avg, Count, Q
from django.utils import timezone

from telephony import presence
from telephony.models import Call, CallStatus, Credential, ServiceEvent

LIVE_STATUSES = (CallStatus.DIALING, CallStatus.RINGING, CallStatus.ANSWERED)
# How today's ended calls turned out, in the card's order. Busy, no answer and canceled
# are normal outcomes of a two-leg call, not failures: each gets its own bucket.
OUTCOMES = (
    CallStatus.COMPLETED,
    CallStatus.NO_ANSWER,
    CallStatus.BUSY,
    CallStatus.FAILED,
    CallStatus.CANCELED,
)


def start_of_today(*, now: datetime | None = None) -> datetime:
    """Midnight of today in the project's time zone (``TIME_ZONE``), as an aware datetime."""
    local = timezone.localtime(now or timezone.now())
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def calls_today(*, now: datetime | None = None) -> dict[str, Any]:
    """Today's calls: placed, answered, how the ended ones turned out, still live, talk time.

    ``answered`` counts every call that was picked up (``answered_at`` set), whether it
    has ended since or not; the average duration is over calls that ended with one.
    ``outcomes`` buckets ended calls by terminal status (completed, no_answer, busy,
    failed, canceled); ``failed`` is that bucket alone (a busy customer is no failure).
    """
    since = start_of_today(now=now)
    buckets = {str(s): Count("id", filter=Q(status=s)) for s in OUTCOMES}
    row = Call.objects.filter(created_at__gte=since).aggregate(
        placed=Count("id"),
        answered=Count("id", filter=Q(answered_at__isnull=False)),
        live=Count("id", filter=Q(status__in=LIVE_STATUSES)),
        avg_duration=Avg("duration_seconds", filter=Q(duration_seconds__isnull=False)),
        **buckets,
    )
    avg = row["avg_duration"]
    return {
        "since": since.isoformat(),
        "placed": row["placed"],
        "answered": row["answered"],
        "failed": row[CallStatus.FAILED],
        "outcomes": {str(s): row[str(s)] for s in OUTCOMES},
        "in_progress": row["live"],
        "avg_duration_s": round(float(avg), 1) if avg is not None else None,
    }


def credentials_in_use(*, now: datetime | None = None) -> dict[str, Any]:
    """Our Telnyx credentials that still exist (not deleted, not expired) against the
    account's limit (``TELEPHONY_ACCOUNT_CREDENTIAL_LIMIT``; 0: unknown, no gauge)."""
    in_use = Credential.objects.filter(
        deleted_at__isnull=True, expires_at__gt=now or timezone.now()
    ).count()
    return _gauge(in_use)


def _gauge(in_use: int) -> dict[str, Any]:
    limit = int(getattr(settings, "TELEPHONY_ACCOUNT_CREDENTIAL_LIMIT", 0))
    percent = min(100, round(100 * in_use / limit)) if limit > 0 else None
    level = (
        None if percent is None else "full" if percent >= 100 else "high" if percent >= 80 else "ok"
    )
    return {"in_use": in_use, "limit": limit or None, "percent": percent, "level": level}


def seats_in_use(*, now: datetime | None = None, at: float | None = None) -> dict[str, Any]:
    """Telephony seats (our live credentials) against the account's limit, and who holds
    them: online, or idle since when and whether the seat is about to be freed.

    Presence is read from Redis (``telephony.presence``); when Redis cannot be read the
    holders are listed without it (``online`` is None).
    """
    rows = list(
        Credential.objects.filter(deleted_at__isnull=True, expires_at__gt=now or timezone.now())
        .select_related("user")
        .order_by("created_at", "pk")
    )
    try:
        seen: dict[int, presence.Presence] | None = presence.read((c.user_id for c in rows), at=at)
    except Exception:  # the page must render while Redis is down
        seen = None
    idle_after = presence.seat_idle_seconds()
    holders = []
    for c in rows:
        p = seen.get(c.user_id) if seen is not None else None
        holders.append(
            {
                "user": c.user.get_username(),
                "user_id": c.user_id,
                "sip_username": c.sip_username,
                "since": c.created_at.isoformat(),
                "online": p.online if p else None,
                "last_seen_ms": int(p.last_seen * 1000) if p else None,
                "idle_s": None if p is None or p.online else round(p.idle_seconds),
                "frees_in_s": (
                    None if p is None or p.online else max(0, round(idle_after - p.idle_seconds))
                ),
            }
        )
    return {**_gauge(len(rows)), "idle_after_s": idle_after, "holders": holders}


def recent_events(*, limit: int = 25) -> list[dict[str, Any]]:
    """The newest service events, newest first, with the operator who caused them."""
    events = ServiceEvent.objects.select_related("user").order_by("-created_at", "-id")[:limit]
    return [
        {
            "id": e.pk,
            "at": e.created_at.isoformat(),
            "at_ms": int(e.created_at.timestamp() * 1000),
            "kind": e.kind,
            "title": e.kind.replace("_", " ").capitalize(),
            "tone": event_tone(e.kind, e.state, expected=bool((e.data or {}).get("expected"))),
            "state": e.state,
            "message": e.message,
            "supervisor_id": e.supervisor_id,
            "worker_id": e.worker_id,
            "user": e.user.get_username() if e.user else None,
        }
        for e in events
    ]


_BAD = ("crash", "exited", "hung", "failed", "lost", "unreachable", "exceeded")
_WARN = ("restarted", "recycled", "stopping")
_CONTROL = ("control_", "breaker_forced", "reset", "rolling_restart", "scaled")
_GOOD = ("started", "restored")
_STATE_TONES = {"ready": "good", "degraded": "warn", "unavailable": "bad", "failed": "bad"}


def event_tone(kind: str, state: str = "", *, expected: bool = False) -> str:
    """How the timeline colours an event: ``bad``, ``warn``, ``good``, ``control`` or
    ``info``. A state change takes the colour of the state it moved to; an exit the
    supervisor asked for (recycling, a rolling restart) is no alarm."""
    if kind == "state_changed":
        return _STATE_TONES.get(state, "info")
    if expected:
        return "info"
    if kind.startswith(_CONTROL):
        return "control"
    for tone, words in (("bad", _BAD), ("warn", _WARN), ("good", _GOOD)):
        if any(word in kind for word in words):
            return tone
    return "info"
