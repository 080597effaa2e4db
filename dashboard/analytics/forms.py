"""The analytics page's filter: a date range and an agent, read from the query string.

Days are calendar days in the project's time zone (``settings.TIME_ZONE``): "today" runs
from local midnight to the next local midnight, whatever the server's clock zone. The form
turns the choice into a ``Period``: aware datetimes, start inclusive, end exclusive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from telephony.models import Call

MAX_DAYS = 366
# Beyond these, local midnights cannot be turned into UTC instants (datetime overflows).
EARLIEST, LATEST = date(1970, 1, 1), date(9998, 12, 31)
HOURLY_UP_TO_DAYS = 2  # ranges up to this many days are charted per hour, longer per day
RANGES = {"today": 1, "7d": 7, "30d": 30}


@dataclass(frozen=True)
class Period:
    """A range of local calendar days: ``start`` <= created_at < ``end`` (aware)."""

    first_day: date
    last_day: date
    tz: ZoneInfo
    user_id: int | None = None

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first_day, time.min, tzinfo=self.tz)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last_day + timedelta(days=1), time.min, tzinfo=self.tz)

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    @property
    def hourly(self) -> bool:
        return self.days <= HOURLY_UP_TO_DAYS


def project_zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def agents() -> QuerySet[Any]:
    """Users who placed at least one call (an index probe each, not a scan of the calls)."""
    has_calls = Exists(Call.objects.filter(user=OuterRef("pk")))
    return get_user_model().objects.filter(has_calls).order_by("username")


class AgentChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.get_username())


class AnalyticsForm(forms.Form):
    """Range (today, 7 or 30 days ending today, or custom dates) and an optional agent."""

    range = forms.ChoiceField(
        choices=[
            ("today", "Today"),
            ("7d", "Last 7 days"),
            ("30d", "Last 30 days"),
            ("custom", "Custom"),
        ],
        initial="7d",
        required=False,
    )
    date_from = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )
    agent = AgentChoiceField(queryset=None, required=False, empty_label="All agents")

    def __init__(self, *args: Any, today: date | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["agent"].queryset = agents()  # type: ignore[attr-defined]
        self.today = today or timezone.localdate(timezone=project_zone())

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        choice = data.get("range") or "7d"
        data["range"] = choice
        if choice != "custom":
            data["date_to"] = self.today
            data["date_from"] = self.today - timedelta(days=RANGES[choice] - 1)
            return data
        first, last = data.get("date_from"), data.get("date_to")
        if self.errors:  # malformed dates already have their own message
            return data
        if first is None or last is None:
            raise forms.ValidationError(
                "A custom range needs both a From and a To date.", code="incomplete_range"
            )
        if not (EARLIEST <= first <= LATEST and EARLIEST <= last <= LATEST):
            raise forms.ValidationError(
                f"Dates must fall between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}.",
                code="date_out_of_range",
            )
        if first > last:
            raise forms.ValidationError(
                "The From date is after the To date.", code="inverted_range"
            )
        if (last - first).days + 1 > MAX_DAYS:
            raise forms.ValidationError(
                f"A range covers at most {MAX_DAYS} days.", code="range_too_long"
            )
        return data

    def period(self) -> Period:
        """The validated choice as a ``Period`` (call only when ``is_valid()``)."""
        agent = self.cleaned_data.get("agent")
        return Period(
            first_day=self.cleaned_data["date_from"],
            last_day=self.cleaned_data["date_to"],
            tz=project_zone(),
            user_id=agent.pk if agent is not None else None,
        )
