"""What the "Telephony health" admin page shows, as one JSON-ready dict.

Everything comes from shared storage: the service state and the worker and supervisor
records in Redis (:func:`telephony.state.read_state`, never a worker round trip), the
request counters the workers flush to Redis (:mod:`telephony.web.metrics`) and the record in
the database (:mod:`dashboard.ops.selectors`). Any web process on any host shows the same.

The shape is documented in ``docs/OBSERVABILITY.md``; the page's script renders it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from dashboard.ops import selectors
from dashboard.templatetags.health_format import duration
from telephony.state import ServiceState, now_ms, read_state
from telephony.web.metrics import RequestMetrics, read_forced_breaker, read_request_metrics

LABELS = {
    "starting": "Starting",
    "ready": "Ready",
    "degraded": "Degraded",
    "unavailable": "Unavailable",
    "failed": "Failed",
    "stopped": "Stopped",
}
TONES = {
    "starting": "info",
    "ready": "good",
    "degraded": "warn",
    "unavailable": "bad",
    "failed": "bad",
    "stopped": "muted",
}
REASONS = {
    "workers_missing": "Serving with {alive} of {desired} workers.",
    "provider_failing": "Serving, but the phone provider is failing on some workers.",
    "supervisor_failed": "Serving, but a supervisor gave up restarting its workers.",
    "no_worker": "No worker is running: calls are refused at once.",
    "circuit_open": "The provider circuit is open on every worker: calls are refused.",
    "circuit_forced_open": "An operator forced the provider circuit open: calls are refused.",
    "redis_unreachable": "Redis is unreachable: nothing can reach the workers.",
    "restart_intensity": "Gave up after too many restarts. Reset or restart to try again.",
    "starting": "Workers are starting.",
    "stopped": "Stopped on purpose.",
}


def explain(state: ServiceState) -> str:
    """The state in one sentence, for people."""
    if not state.reason and state.status == "ready":
        return (
            "The worker is serving." if state.alive == 1 else f"All {state.alive} workers serving."
        )
    text = REASONS.get(state.reason, state.reason.replace("_", " ").capitalize())
    return text.format(alive=state.alive, desired=state.desired)


def _age_s(now: int, then: Any) -> float | None:
    return round(max(0, now - int(then)) / 1000, 1) if isinstance(then, int | float) else None


def worker_rows(state: ServiceState, *, now: int) -> list[dict[str, Any]]:
    """Every worker on every host: heartbeating ones, then those a supervisor started
    that have not beaten yet (``starting``) or no longer beat (``silent``)."""
    interval = float(settings.TELEPHONY_HEARTBEAT_INTERVAL)
    late_after = max(2.0 * interval, 0.5 * float(settings.TELEPHONY_HEARTBEAT_TIMEOUT))
    rows: list[dict[str, Any]] = []
    for w in sorted(state.workers, key=lambda w: (str(w.get("host")), w.get("started_at") or 0)):
        beat_age = _age_s(now, w.get("beat_at"))
        if w.get("draining"):
            word = "draining"
        elif beat_age is not None and beat_age > late_after:
            word = "late"
        elif w.get("spare"):
            word = "spare"
        else:
            word = "serving"
        detail = w.get("breaker_detail") or {}
        latency = w.get("latency") or {}
        rows.append(
            {
                "id": w.get("id"),
                "host": w.get("host"),
                "pid": w.get("pid"),
                "supervisor_id": w.get("supervisor_id") or None,
                "state": word,
                "started_at": w.get("started_at"),
                "uptime_s": _age_s(now, w.get("started_at")),
                "beat_at": w.get("beat_at"),
                "beat_age_s": beat_age,
                "handled": w.get("handled", 0),
                "failed": w.get("failed", 0),
                "in_flight": w.get("in_flight", 0),
                "rss_mb": w.get("rss_mb"),
                "last_error": w.get("last_error") or None,
                "breaker": {
                    "state": w.get("breaker", "closed"),
                    "forced": detail.get("forced"),
                    "failure_rate": detail.get("failure_rate"),
                    "slow_rate": detail.get("slow_rate"),
                    "calls": detail.get("calls"),
                    "opened_count": detail.get("opened_count"),
                },
                "latency": {
                    "window": latency.get("window", 0),
                    "p50_ms": latency.get("p50_ms"),
                    "p99_ms": latency.get("p99_ms"),
                    "errors": latency.get("errors") or {},
                },
            }
        )
    beating = {row["id"] for row in rows}
    for sup in state.supervisors:
        if sup.get("state") in ("lost", "stopped"):
            continue
        for child in sup.get("workers") or []:
            if child.get("worker_id") in beating:
                continue
            rows.append(
                {
                    "id": child.get("worker_id"),
                    "host": sup.get("host"),
                    "pid": child.get("pid"),
                    "supervisor_id": sup.get("id"),
                    "state": "silent" if child.get("ready") else "starting",
                    "started_at": child.get("started_at"),
                    "uptime_s": _age_s(now, child.get("started_at")),
                    "beat_at": None,
                    "beat_age_s": None,
                    "handled": None,
                    "failed": None,
                    "in_flight": None,
                    "rss_mb": None,
                    "last_error": None,
                    "breaker": None,
                    "latency": None,
                }
            )
    return rows


def supervisor_rows(state: ServiceState, *, now: int) -> list[dict[str, Any]]:
    """Supervisors on every host, lost ones (gone without saying so) included."""
    rows = []
    for s in sorted(state.supervisors, key=lambda s: (str(s.get("host")), str(s.get("id")))):
        rows.append(
            {
                "id": s.get("id"),
                "host": s.get("host"),
                "pid": s.get("pid"),
                "state": s.get("state"),
                "desired": s.get("desired", 0),
                "alive": s.get("alive", 0),
                "restarts": s.get("restarts", 0),
                "restarts_in_window": s.get("restarts_in_window", 0),
                "uptime_s": _age_s(now, s.get("started_at")),
                "updated_age_s": _age_s(now, s.get("updated_at")),
                "last_event": s.get("last_event") or None,
            }
        )
    return rows


def latency_summary(workers: list[dict[str, Any]], metrics: RequestMetrics) -> dict[str, Any]:
    """Recent latency across workers, and per operation since the counters began.

    Recent: each worker's heartbeat summarises its last requests (up to 500); ``p50_ms``
    is the window-weighted mean of their medians and ``p99_ms`` the worst worker's p99.
    Per operation: the shared Redis histograms, so p50/p99 are bucket bounds ("at most").
    """
    window, weighted, p99 = 0, 0.0, None
    errors: dict[str, int] = {}
    for w in workers:
        lat = w.get("latency") or {}
        n = int(lat.get("window") or 0)
        if n and lat.get("p50_ms") is not None:
            window += n
            weighted += n * float(lat["p50_ms"])
        if lat.get("p99_ms") is not None:
            p99 = max(p99 or 0.0, float(lat["p99_ms"]))
        for code, count in (lat.get("errors") or {}).items():
            errors[code] = errors.get(code, 0) + int(count)
    ops = []
    for op in metrics.ops():
        outcomes = {o: n for (name, o), n in metrics.requests.items() if name == op}
        hist = metrics.latency.get(op)
        count = hist.count if hist else sum(outcomes.values())
        ops.append(
            {
                "op": op,
                "requests": sum(outcomes.values()) or count,
                "errors": sum(n for o, n in outcomes.items() if o != "ok"),
                "outcomes": dict(sorted(outcomes.items())),
                "mean_ms": round(hist.sum_ms / hist.count, 1) if hist and hist.count else None,
                "p50_le_ms": hist.quantile_le_ms(0.5) if hist else None,
                "p99_le_ms": hist.quantile_le_ms(0.99) if hist else None,
            }
        )
    return {
        "window": window,
        "p50_ms": round(weighted / window, 1) if window else None,
        "p99_ms": p99,
        "errors": dict(sorted(errors.items(), key=lambda kv: -kv[1])),
        "errors_total": sum(errors.values()),
        "ops": ops,
        "counters_ok": metrics.ok,
    }


def seat_label(holder: dict[str, Any]) -> str:
    """A seat holder's state in a few words: online, or away for how long and until when."""
    if holder["online"] is None:
        return "presence unknown"
    if holder["online"]:
        return "online"
    frees = holder["frees_in_s"]
    left = f"left {duration(holder['idle_s'])} ago"
    return f"{left}, freeing now" if not frees else f"{left}, frees in {duration(frees)}"


def seats(data: dict[str, Any]) -> dict[str, Any]:
    """The seats card: :func:`selectors.seats_in_use` with a label for each holder."""
    holders = [{**h, "label": seat_label(h)} for h in data["holders"]]
    return {**data, "holders": holders}


def health_snapshot(*, can_control: bool = False) -> dict[str, Any]:
    """The whole page's data (``GET /admin/telephony/health.json``)."""
    state = read_state()
    now = now_ms()
    workers = worker_rows(state, now=now)
    return {
        "generated_at": now,
        "service": {
            "status": state.status,
            "label": LABELS.get(state.status, state.status.capitalize()),
            "tone": TONES.get(state.status, "info"),
            "healthy": state.available,
            "reason": state.reason,
            "summary": explain(state),
            "alive": state.alive,
            "desired": state.desired,
            "breaker_forced": read_forced_breaker(),
            "timestamp": state.timestamp,
        },
        "workers": workers,
        "supervisors": supervisor_rows(state, now=now),
        "latency": latency_summary(state.workers, read_request_metrics()),
        "calls_today": selectors.calls_today(),
        "credentials": selectors.credentials_in_use(),
        "seats": seats(selectors.seats_in_use()),
        "events": selectors.recent_events(),
        "can_control": can_control,
        "heartbeat_interval_s": float(settings.TELEPHONY_HEARTBEAT_INTERVAL),
    }
