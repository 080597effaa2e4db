"""The "Telephony analytics" admin page and its CSV export.

Mounted under ``/admin/telephony/`` by ``dashboard.analytics.urls``, every view wrapped in
``admin.site.admin_view``: anyone who is not active staff goes to the admin login. The
filter is a GET form; a bad one (malformed, inverted, over 366 days) is shown with its
error and answered 400, never a 500. What each figure means: docs/OBSERVABILITY.md.
"""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.http.response import HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import reverse

from dashboard.analytics import charts, export, selectors
from dashboard.analytics.forms import AnalyticsForm, Period
from dashboard.templatetags.health_format import duration

OUTCOME_LABELS = {
    "completed": "Completed",
    "no_answer": "No answer",
    "busy": "Busy",
    "failed": "Failed",
    "canceled": "Canceled",
    "other": "Not ended",
}
DEFAULT = QueryDict("range=7d")


def seconds(value: float | None) -> str:
    """ "4.5 s" under a minute (time to answer wants the tenth), else the health page's form."""
    if value is None:
        return "\u2013"
    return f"{value:.1f} s" if value < 60 else duration(value)


def _form(request: HttpRequest) -> AnalyticsForm:
    return AnalyticsForm(request.GET or DEFAULT)


def _bucket_label(period: Period, start: Any) -> str:
    if not period.hourly:
        return f"{start:%m-%d}"
    return f"{start:%H}h" if period.days == 1 else f"{start:%a %H}h"


def _charts(period: Period, buckets: list[dict[str, Any]], durations: dict[str, Any],
            causes: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    labels = [_bucket_label(period, b["start"]) for b in buckets]
    every = max(1, math.ceil(len(labels) / 12))
    unit = "hour" if period.hourly else "day"
    series = [
        charts.Series(key, OUTCOME_LABELS[key], [b[key] for b in buckets])
        for key in selectors.OUTCOME_KEYS
    ]
    not_ended = [b["total"] - sum(b[k] for k in selectors.OUTCOME_KEYS) for b in buckets]
    series.append(charts.Series("other", OUTCOME_LABELS["other"], not_ended))
    busiest = max(buckets, key=lambda b: b["total"], default=None)
    total = sum(b["total"] for b in buckets)
    calls_desc = f"{total} calls in {len(buckets)} {unit}s" + (
        f"; busiest {_bucket_label(period, busiest['start'])} with {busiest['total']}"
        if busiest and busiest["total"]
        else ""
    )
    rates = [b["answer_rate"] for b in buckets]
    known = [r for r in rates if r is not None]
    rate_desc = (
        f"Answer rate per {unit}, from {round(min(known) * 100)}% to {round(max(known) * 100)}%"
        if known
        else f"No call reached a customer in any {unit}."
    )
    out = {
        "calls": charts.stacked_bars(
            f"Calls per {unit}, by outcome", calls_desc, labels, series, every
        ),
        "answer_rate": charts.line(f"Answer rate per {unit}", rate_desc, labels, rates, every),
        "causes": charts.hbars(
            "Hangup causes",
            "; ".join(f"{c['cause']}: {c['n']}" for c in causes) or "No hangup cause recorded.",
            [charts.Bar(c["cause"], c["n"], str(c["n"]), "cause") for c in causes],
        ),
    }
    for key, title in (("time_to_answer", "Time to answer"), ("talk_time", "Talk time")):
        d = durations[key]
        bars = [
            charts.Bar(f"{title}, {name}", d[p] or 0, seconds(d[p]), key)
            for name, p in (("median", "p50"), ("p90", "p90"))
        ]
        desc = f"{title}: median {seconds(d['p50'])}, p90 {seconds(d['p90'])}, over {d['n']} calls"
        out[key] = charts.hbars(title, desc, bars)
    return out


def analytics_page(request: HttpRequest) -> HttpResponse:
    """The page: the filter form, then (when it is valid) the figures and charts."""
    form = _form(request)
    context: dict[str, Any] = {
        **admin.site.each_context(request),
        "title": "Telephony analytics",
        "form": form,
        "time_zone": settings.TIME_ZONE,
        "outcome_labels": OUTCOME_LABELS,
    }
    if not form.is_valid():
        return TemplateResponse(request, "dashboard/analytics.html", context, status=400)
    period = form.period()
    rows, durations = selectors.figures(period)
    buckets = selectors.per_bucket(period, rows)
    causes = selectors.hangup_causes(period, rows)
    query = request.GET.urlencode() or DEFAULT.urlencode()
    csv_url = reverse("telephony_analytics:csv")
    summary = selectors.summary(period, rows)
    context.update(
        period=period,
        summary=summary,
        outcomes=[(k, OUTCOME_LABELS[k], n) for k, n in summary["outcomes"].items()],
        buckets=[{**b, "label": _bucket_label(period, b["start"])} for b in buckets],
        durations={
            k: {**v, "p50_text": seconds(v["p50"]), "p90_text": seconds(v["p90"])}
            for k, v in durations.items()
        },
        causes=causes,
        agents=selectors.per_agent(period, rows),
        charts=_charts(period, buckets, durations, causes),
        csv={t: f"{csv_url}?{query}&table={t}" for t in export.TABLES},
    )
    return TemplateResponse(request, "dashboard/analytics.html", context)


def analytics_csv(request: HttpRequest) -> HttpResponseBase:
    """``?table=agents|periods|calls`` plus the page's filter, as a streamed CSV file."""
    form = _form(request)
    table = request.GET.get("table", "agents")
    if table not in export.TABLES:
        return _error(f"table must be one of {', '.join(export.TABLES)}.", "invalid_table")
    if not form.is_valid():
        [(field, errors)] = list(form.errors.as_data().items())[:1]
        first = errors[0]
        message = " ".join(first.messages)
        label = "" if field == "__all__" else f"{field}: "
        return _error(f"{label}{message}", first.code or "invalid_request")
    return export.csv_response(form.period(), table, asynchronous=isinstance(request, ASGIRequest))


def _error(message: str, code: str) -> JsonResponse:
    return JsonResponse({"error": message, "code": code}, status=400)
