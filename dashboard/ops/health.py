"""What the "Telephony health" admin page shows, as one JSON-ready dict.

Everything comes from shared storage: the service state and the worker and supervisor
records in Redis (:func:`telephony.state.read_state`, never a worker round trip), the
request counters the workers flush to Redis (:mod:`telephony.web.metrics`) and the record in
the database (:mod:`dashboard.ops.selectors`). Any web process on any host shows the same.

The shape is documented in ``docs/OBSERVABILITY.md``; the page's script renders it.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django.conf import settings

from dashboard.ops import selectors
from dashboard.templatetags.health_format import duration
from telephony.protocol import LOST, STOPPED, Heartbeat
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


def _age_s(now: int, then: int | None) -> float | None:
    """Seconds since ``then`` (epoch ms); None when unknown (0 or missing)."""
    return round(max(0, now - then) / 1000, 1) if then else None


def worker_rows(state: ServiceState, *, now: int) -> list[dict[str, Any]]:
    """Every worker on every host: heartbeating ones, then those a supervisor started
    that have not beaten yet (``starting``) or no longer beat (``silent``)."""
    interval = float(settings.TELEPHONY_HEARTBEAT_INTERVAL)
    late_after = max(2.0 * interval, 0.5 * float(settings.TELEPHONY_HEARTBEAT_TIMEOUT))
    rows: list[dict[str, Any]] = []
    for w in sorted(state.workers, key=lambda w: (w.host, w.started_at)):
        beat_age = _age_s(now, w.beat_at)
        if w.draining:
            word = "draining"
        elif beat_age is not None and beat_age > late_after:
            word = "late"
        elif w.spare:
            word = "spare"
        else:
            word = "serving"
        detail, latency = w.breaker_detail, w.latency
        rows.append(
            {
                "id": w.id,
                "host": w.host,
                "pid": w.pid,
                "supervisor_id": w.supervisor_id or None,
                "state": word,
                "started_at": w.started_at or None,
                "uptime_s": _age_s(now, w.started_at),
                "beat_at": w.beat_at or None,
                "beat_age_s": beat_age,
                "handled": w.handled,
                "failed": w.failed,
                "in_flight": w.in_flight,
                "rss_mb": w.rss_mb,
                "pss_mb": w.pss_mb or None,  # 0: an older worker that did not measure it
                "uss_mb": w.uss_mb or None,
                "last_error": w.last_error or None,
                "breaker": {
                    "state": w.breaker,
                    "forced": detail.forced,
                    "failure_rate": detail.failure_rate,
                    "slow_rate": detail.slow_rate,
                    "calls": detail.calls,
                    "opened_count": detail.opened_count,
                },
                "latency": {
                    "window": latency.window,
                    "p50_ms": latency.p50_ms,
                    "p99_ms": latency.p99_ms,
                    "errors": dict(latency.errors),
                },
            }
        )
    beating = {row["id"] for row in rows}
    for sup in state.supervisors:
        if sup.state in (LOST, STOPPED):
            continue
        for child in sup.workers:
            if child.worker_id in beating:
                continue
            rows.append(
                {
                    "id": child.worker_id,
                    "host": sup.host,
                    "pid": child.pid,
                    "supervisor_id": sup.id,
                    "state": "silent" if child.ready else "starting",
                    "started_at": child.started_at or None,
                    "uptime_s": _age_s(now, child.started_at),
                    "beat_at": None,
                    "beat_age_s": None,
                    "handled": None,
                    "failed": None,
                    "in_flight": None,
                    "rss_mb": None,
                    "pss_mb": None,
                    "uss_mb": None,
                    "last_error": None,
                    "breaker": None,
                    "latency": None,
                }
            )
    return rows


def supervisor_rows(state: ServiceState, *, now: int) -> list[dict[str, Any]]:
    """Supervisors on every host, lost ones (gone without saying so) included."""
    rows = []
    for s in sorted(state.supervisors, key=lambda s: (s.host, s.id)):
        rows.append(
            {
                "id": s.id,
                "host": s.host,
                "pid": s.pid,
                "state": s.state,
                "desired": s.desired,
                "alive": s.alive,
                "restarts": s.restarts,
                "restarts_in_window": s.restarts_in_window,
                # The preloaded worker template; None when workers start cold only.
                "template": (
                    {"pid": s.template_pid or None, "state": s.template_state}
                    if s.template_state
                    else None
                ),
                "uptime_s": _age_s(now, s.started_at),
                "updated_age_s": _age_s(now, s.updated_at),
                "last_event": asdict(s.last_event) if s.last_event else None,
            }
        )
    return rows


def latency_summary(workers: list[Heartbeat], metrics: RequestMetrics) -> dict[str, Any]:
    """Recent latency across workers, and per operation since the counters began.

    Recent: each worker's heartbeat summarises its last requests (up to 500); ``p50_ms``
    is the window-weighted mean of their medians and ``p99_ms`` the worst worker's p99.
    Per operation: the shared Redis histograms, so p50/p99 are bucket bounds ("at most").
    """
    window, weighted, p99 = 0, 0.0, None
    errors: dict[str, int] = {}
    for w in workers:
        lat = w.latency
        if lat.window and lat.p50_ms is not None:
            window += lat.window
            weighted += lat.window * lat.p50_ms
        if lat.p99_ms is not None:
            p99 = max(p99 or 0.0, lat.p99_ms)
        for code, count in lat.errors.items():
            errors[code] = errors.get(code, 0) + count
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
