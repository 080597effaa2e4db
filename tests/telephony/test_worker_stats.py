"""Worker counters: what each heartbeat flushes to the shared metrics in Redis."""

from __future__ import annotations

from telephony.worker.stats import WorkerStats


def test_worker_stats__buckets_and_counts() -> None:
    stats = WorkerStats()
    stats.record("call.dial", 0.004, "ok")
    stats.record("call.dial", 0.3, "http_503")
    stats.record("call.dial", 99.0, "ok")
    requests, latency, latency_sum = stats.take_pending()
    assert requests == {"call.dial|ok": 2, "call.dial|http_503": 1}
    assert (
        latency["call.dial|5"] == 1
        and latency["call.dial|500"] == 1
        and latency["call.dial|+Inf"] == 1
    )
    assert latency["call.dial|count"] == 3
    assert round(latency_sum["call.dial|sum"], 3) == 99304.0
    summary = stats.summary()
    assert summary.window == 3 and summary.errors == {"http_503": 1}


def test_worker_stats__a_failed_flush_keeps_the_counts() -> None:
    stats = WorkerStats()
    stats.record("health.ping", 0.001, "ok")
    pending = stats.take_pending()
    stats.record("health.ping", 0.001, "ok")  # recorded while the flush was in the air
    stats.restore_pending(pending)
    requests, latency, _ = stats.take_pending()
    assert requests == {"health.ping|ok": 2}
    assert latency["health.ping|count"] == 2
    assert stats.take_pending()[0] == {}
