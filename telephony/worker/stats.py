"""A worker's counters: published in its heartbeat, flushed to shared Redis metrics.

Counts recorded between heartbeats are handed over with each beat (``take_pending``) and
put back if the flush fails (``restore_pending``), so a Redis blip loses no counts.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field

from telephony.protocol import LATENCY_BUCKETS_MS, LatencySummary

Pending = tuple["Counter[str]", "Counter[str]", "defaultdict[str, float]"]


@dataclass
class WorkerStats:
    """Counters and a recent latency window, published in every heartbeat."""

    handled: int = 0
    failed: int = 0
    dropped_late: int = 0
    duplicates: int = 0
    in_flight: int = 0
    last_error: str = ""
    recent: deque[tuple[str, float, str]] = field(default_factory=lambda: deque(maxlen=500))
    # Not yet flushed to the shared counters in Redis (flushed with each heartbeat).
    pending_requests: Counter[str] = field(default_factory=Counter)
    pending_latency: Counter[str] = field(default_factory=Counter)
    pending_latency_sum: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))

    def record(self, op: str, seconds: float, code: str) -> None:
        ms = seconds * 1000.0
        self.recent.append((op, ms, code))
        self.pending_requests[f"{op}|{code}"] += 1
        bucket = next((b for b in LATENCY_BUCKETS_MS if ms <= b), "+Inf")
        self.pending_latency[f"{op}|{bucket}"] += 1
        self.pending_latency[f"{op}|count"] += 1
        self.pending_latency_sum[f"{op}|sum"] += ms

    def take_pending(self) -> Pending:
        """Hand over what was recorded since the last flush, and start afresh."""
        pending = (self.pending_requests, self.pending_latency, self.pending_latency_sum)
        self.pending_requests, self.pending_latency = Counter(), Counter()
        self.pending_latency_sum = defaultdict(float)
        return pending

    def restore_pending(self, pending: Pending) -> None:
        """A flush failed (Redis down): keep the counts for the next one."""
        self.pending_requests.update(pending[0])
        self.pending_latency.update(pending[1])
        for name, ms in pending[2].items():
            self.pending_latency_sum[name] += ms

    def summary(self) -> LatencySummary:
        """The recent window as the heartbeat publishes it."""
        lat = sorted(ms for _, ms, _ in self.recent)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 2) if lat else None

        errors: dict[str, int] = {}
        for _, _, code in self.recent:
            if code != "ok":
                errors[code] = errors.get(code, 0) + 1
        return LatencySummary(window=len(lat), p50_ms=pct(0.5), p99_ms=pct(0.99), errors=errors)
