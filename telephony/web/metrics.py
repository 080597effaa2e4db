"""Prometheus metrics, read from shared storage at scrape time.

Workers, supervisors and web processes never keep metrics in their own memory for the
scrape: workers add their counts to Redis hashes with every heartbeat
(``Keys.metric_requests``, ``Keys.metric_latency``), supervisors and workers publish
their records, and the database holds the calls. :class:`TelephonyCollector` reads all
of that when ``/metrics`` is scraped, so any web process answers the same numbers,
whichever process did the work and on whichever host.

Labels carry operation names, outcome codes, worker and supervisor ids (``host:pid``)
and states: nothing secret ever becomes a label.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import redis
from django.conf import settings
from django.db.models import Count
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from telephony.connections import get_redis
from telephony.keys import Keys
from telephony.models import Call, CallStatus, Credential
from telephony.protocol import LATENCY_BUCKETS_MS, Heartbeat, SupervisorRecord
from telephony.state import STATES, read_state

logger = logging.getLogger(__name__)

# The workers' histogram buckets (``telephony.worker.stats``), in ms; buckets found in
# Redis that are not listed here are added, so a change on the worker side shows up.
BREAKER_STATES = ("closed", "open", "half_open")


@dataclass
class OpLatency:
    """One operation's latency histogram as the workers flushed it (counts per bucket)."""

    buckets: dict[float, int] = field(default_factory=dict)  # upper bound (ms) -> count
    inf: int = 0  # slower than the last bound
    count: int = 0
    sum_ms: float = 0.0

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound ms, observations <= bound)`` for every bound, ascending."""
        bounds = sorted(set(LATENCY_BUCKETS_MS) | set(self.buckets))
        out, running = [], 0
        for bound in bounds:
            running += self.buckets.get(bound, 0)
            out.append((float(bound), running))
        return out

    def quantile_le_ms(self, q: float) -> float | None:
        """The upper bound of the bucket holding quantile ``q``; None when empty or past
        the last bound (a histogram only knows "at most this")."""
        total = max(self.count, sum(self.buckets.values()) + self.inf)
        if total <= 0:
            return None
        rank = q * total
        for bound, seen in self.cumulative():
            if seen >= rank:
                return bound
        return None


@dataclass
class RequestMetrics:
    """The shared request counters and latency histograms, as read from Redis."""

    requests: dict[tuple[str, str], int] = field(default_factory=dict)  # (op, outcome) -> n
    latency: dict[str, OpLatency] = field(default_factory=dict)
    ok: bool = True  # False: Redis could not be read

    def ops(self) -> list[str]:
        """Every operation seen in either hash, so one with only errors still shows."""
        return sorted({op for op, _ in self.requests} | set(self.latency))


def parse_request_metrics(
    requests: dict[str, str], latency: dict[str, str], *, ok: bool = True
) -> RequestMetrics:
    """Turn the two Redis hashes into :class:`RequestMetrics` (pure, for testing)."""
    out = RequestMetrics(ok=ok)
    for raw_key, raw_value in requests.items():
        op, _, outcome = raw_key.partition("|")
        try:
            out.requests[(op, outcome or "unknown")] = int(raw_value)
        except ValueError:
            continue
    for raw_key, raw_value in latency.items():
        op, _, part = raw_key.partition("|")
        hist = out.latency.setdefault(op, OpLatency())
        try:
            if part == "sum":
                hist.sum_ms = float(raw_value)
            elif part == "count":
                hist.count = int(raw_value)
            elif part == "+Inf":
                hist.inf = int(raw_value)
            else:
                hist.buckets[float(part)] = int(raw_value)
        except ValueError:
            continue
    return out


def read_request_metrics() -> RequestMetrics:
    """Read the request counters and latency histograms (one Redis round trip)."""
    try:
        pipe = get_redis().pipeline(transaction=False)
        pipe.hgetall(Keys.metric_requests())
        pipe.hgetall(Keys.metric_latency())
        requests, latency = pipe.execute()
    except (redis.RedisError, OSError) as e:
        logger.warning("[Telephony Metrics] Redis unreachable: %s", type(e).__name__)
        return RequestMetrics(ok=False)
    return parse_request_metrics(requests or {}, latency or {})


def _bucket_label(ms: float) -> str:
    return str(floatToGoString(ms / 1000.0))


class TelephonyCollector(Collector):
    """Everything about the service a Prometheus scrape needs, read at scrape time."""

    def collect(self) -> Iterator[Any]:
        """Called at each scrape: a few Redis round trips and two cheap queries."""
        yield from self._requests()
        yield from self._service()
        yield from self._database()

    def _requests(self) -> Iterator[Any]:
        data = read_request_metrics()
        up = GaugeMetricFamily(
            "telephony_metrics_redis_up",
            "1 when the shared counters could be read from Redis at this scrape.",
        )
        up.add_metric([], 1.0 if data.ok else 0.0)
        yield up
        counter = CounterMetricFamily(
            "telephony_requests",
            "Requests handled by all workers, by operation and outcome (ok or error code).",
            labels=["op", "outcome"],
        )
        for (op, outcome), n in sorted(data.requests.items()):
            counter.add_metric([op, outcome], float(n))
        yield counter
        hist = HistogramMetricFamily(
            "telephony_request_duration_seconds",
            "Time a worker spent on a request, by operation.",
            labels=["op"],
        )
        for op, lat in sorted(data.latency.items()):
            buckets = [(_bucket_label(bound), float(n)) for bound, n in lat.cumulative()]
            total = max(lat.count, buckets[-1][1] + lat.inf if buckets else lat.inf)
            buckets.append(("+Inf", float(total)))
            hist.add_metric([op], buckets, sum_value=lat.sum_ms / 1000.0)
        yield hist

    def _service(self) -> Iterator[Any]:
        state = read_state()
        status = GaugeMetricFamily(
            "telephony_service_status", "1 for the current service state.", labels=["status"]
        )
        for name in STATES:
            status.add_metric([name], 1.0 if state.status == name else 0.0)
        yield status
        available = GaugeMetricFamily(
            "telephony_service_available", "1 when the service is ready or degraded."
        )
        available.add_metric([], 1.0 if state.available else 0.0)
        yield available
        alive = GaugeMetricFamily("telephony_workers_alive", "Workers serving requests.")
        alive.add_metric([], float(state.alive))
        yield alive
        desired = GaugeMetricFamily("telephony_workers_desired", "Workers the supervisors run.")
        desired.add_metric([], float(state.desired))
        yield desired
        yield from self._supervisors(state.supervisors)
        yield from self._workers(state.workers)

    def _supervisors(self, records: list[SupervisorRecord]) -> Iterator[Any]:
        restarts = CounterMetricFamily(
            "telephony_worker_restarts",
            "Worker restarts by each supervisor since it started (lost ones included).",
            labels=["supervisor"],
        )
        states = GaugeMetricFamily(
            "telephony_supervisors", "Supervisors by state (lost: gone without stopping).",
            labels=["state"],
        )  # fmt: skip
        counts: dict[str, int] = {}
        for rec in records:
            restarts.add_metric([rec.id], float(rec.restarts))
            counts[rec.state] = counts.get(rec.state, 0) + 1
        for key, n in sorted(counts.items()):
            states.add_metric([key], float(n))
        yield restarts
        yield states

    def _workers(self, workers: list[Heartbeat]) -> Iterator[Any]:
        breaker = GaugeMetricFamily(
            "telephony_breaker_state",
            "1 for each worker's current provider circuit state.",
            labels=["worker", "state"],
        )
        failure = GaugeMetricFamily(
            "telephony_breaker_failure_rate",
            "Failure rate over each worker's breaker window.",
            labels=["worker"],
        )
        in_flight = GaugeMetricFamily(
            "telephony_worker_in_flight", "Requests each worker is working on.", labels=["worker"]
        )
        rss = GaugeMetricFamily(
            "telephony_worker_rss_bytes", "Resident memory of each worker.", labels=["worker"]
        )
        # A worker forked from the template shares most of its pages: PSS splits them
        # between the sharers, USS is what the worker alone holds (what its exit frees).
        pss = GaugeMetricFamily(
            "telephony_worker_pss_bytes",
            "Proportional set size of each worker (shared pages split between sharers).",
            labels=["worker"],
        )
        uss = GaugeMetricFamily(
            "telephony_worker_uss_bytes",
            "Unique set size of each worker (pages only it maps).",
            labels=["worker"],
        )
        for w in workers:
            for name in BREAKER_STATES:
                breaker.add_metric([w.id, name], 1.0 if w.breaker == name else 0.0)
            failure.add_metric([w.id], w.breaker_detail.failure_rate)
            in_flight.add_metric([w.id], float(w.in_flight))
            rss.add_metric([w.id], w.rss_mb * 1048576)
            if w.pss_mb:  # 0: not measured (no /proc/<pid>/smaps_rollup)
                pss.add_metric([w.id], w.pss_mb * 1048576)
                uss.add_metric([w.id], w.uss_mb * 1048576)
        forced = GaugeMetricFamily(
            "telephony_breaker_forced",
            "1 when an operator forced the provider circuit into this state.",
            labels=["state"],
        )
        mode = read_forced_breaker()
        for name in ("open", "closed"):
            forced.add_metric([name], 1.0 if mode == name else 0.0)
        yield from (breaker, failure, in_flight, rss, pss, uss, forced)

    def _database(self) -> Iterator[Any]:
        calls = GaugeMetricFamily(
            "telephony_calls", "Calls in the record, by status.", labels=["status"]
        )
        counts = dict(Call.objects.values_list("status").annotate(n=Count("id")).order_by())
        for status in CallStatus.values:
            calls.add_metric([status], float(counts.get(status, 0)))
        yield calls
        active = GaugeMetricFamily(
            "telephony_credentials_active", "Telnyx credentials not deleted and not expired."
        )
        active.add_metric(
            [],
            float(
                Credential.objects.filter(
                    deleted_at__isnull=True, expires_at__gt=timezone.now()
                ).count()
            ),
        )
        yield active
        limit = GaugeMetricFamily(
            "telephony_credentials_limit",
            "TELEPHONY_ACCOUNT_CREDENTIAL_LIMIT (0: not configured).",
        )
        limit.add_metric([], float(getattr(settings, "TELEPHONY_ACCOUNT_CREDENTIAL_LIMIT", 0)))
        yield limit


def read_forced_breaker() -> str | None:
    """The operator's switch for the provider circuit: "open", "closed", or None (the
    breakers decide; also when Redis cannot be read, which the state reports anyway)."""
    try:
        value = get_redis().get(Keys.breaker_forced())
    except (redis.RedisError, OSError):
        return None
    mode = value or None
    return mode if mode in ("open", "closed") else None


_registry: CollectorRegistry | None = None


def registry() -> CollectorRegistry:
    """The registry ``/metrics`` exposes: the telephony collector only.

    Not the process-global default registry: its per-process series (CPU, memory of
    whichever web process answered) would change with the process behind the load
    balancer, while everything here is the same from any of them.
    """
    global _registry
    if _registry is None:
        reg = CollectorRegistry(auto_describe=False)
        reg.register(TelephonyCollector())
        _registry = reg
    return _registry
