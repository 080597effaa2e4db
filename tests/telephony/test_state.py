"""Service state: derived from live supervisor and worker records in a real Redis."""

from __future__ import annotations

import logging

import pytest

from telephony.connections import get_redis
from telephony.keys import Keys
from telephony.protocol import Heartbeat, SupervisorRecord
from telephony.state import (
    DEGRADED,
    FAILED,
    READY,
    STARTING,
    STOPPED,
    UNAVAILABLE,
    compute_state,
    now_ms,
    read_state,
    state_cache,
)


def _state(sups=(), workers=(), forced=None, stopped=False):
    return compute_state(
        supervisors=list(sups),
        workers=list(workers),
        forced_breaker=forced,
        stopped=stopped,
        timestamp=1,
    )


def _w(breaker="closed", draining=False, spare=False):
    return Heartbeat(id="h:1", breaker=breaker, draining=draining, spare=spare)


def _sup(state, desired, sid="h:1"):
    return SupervisorRecord(id=sid, state=state, desired=desired)


@pytest.mark.parametrize(
    ("sups", "workers", "forced", "stopped", "expected"),
    [
        ([], [], None, False, UNAVAILABLE),
        ([], [], None, True, STOPPED),
        ([_sup("starting", 2)], [], None, False, STARTING),
        ([_sup("failed", 2)], [], None, False, FAILED),
        ([_sup("running", 2)], [_w(), _w()], None, False, READY),
        ([_sup("running", 2)], [_w()], None, False, DEGRADED),
        ([_sup("running", 2)], [_w(), _w(draining=True)], None, False, DEGRADED),
        # An idle spare takes no requests: it neither serves nor makes up for a missing worker.
        ([_sup("running", 2)], [_w(), _w(spare=True)], None, False, DEGRADED),
        ([_sup("running", 1)], [_w(spare=True)], None, False, UNAVAILABLE),
        ([_sup("running", 1)], [_w("open")], None, False, UNAVAILABLE),
        ([_sup("running", 2)], [_w("open"), _w()], None, False, DEGRADED),
        ([_sup("running", 2)], [_w("half_open"), _w()], None, False, DEGRADED),
        ([_sup("running", 1)], [_w()], "open", False, UNAVAILABLE),
        ([_sup("running", 1)], [_w("open")], "closed", False, READY),
        # Two supervisors add up; one failed while the other serves is degraded, not failed.
        (
            [_sup("running", 1), _sup("failed", 1)],
            [_w()],
            None,
            False,
            DEGRADED,
        ),
        (
            [_sup("running", 1), _sup("running", 1)],
            [_w(), _w()],
            None,
            False,
            READY,
        ),
        # Workers without a supervisor (run by hand) serve: desired is what is alive.
        ([], [_w()], None, False, READY),
    ],
)
def test_compute_state__rules(sups, workers, forced, stopped, expected) -> None:
    assert _state(sups, workers, forced, stopped).status == expected


def test_state__public_shape() -> None:
    body = _state([_sup("running", 2)], [_w()]).public()
    assert body == {
        "status": DEGRADED,
        "healthy": True,
        "timestamp": 1,
        "workers": {"alive": 1, "desired": 2},
    }


def _beat(worker_id: str, age_ms: int = 0, ttl_ms: int = 3000, **extra) -> None:
    r = get_redis()
    r.set(
        Keys.worker(worker_id),
        Heartbeat(id=worker_id, **extra).encode(),
        px=ttl_ms,
    )
    r.zadd(Keys.workers(), {worker_id: now_ms() - age_ms})


def test_read_state__counts_fresh_heartbeats_only(settings) -> None:
    settings.TELEPHONY_HEARTBEAT_TIMEOUT = 3.0
    _beat("a:1")
    _beat("b:2", age_ms=10_000)  # stale score: a worker that stopped beating
    state = read_state()
    assert (state.status, state.alive) == (READY, 1)
    get_redis().delete(Keys.worker("a:1"))  # its TTL passed
    assert read_state().status == UNAVAILABLE


def test_read_state__adds_up_supervisors_across_hosts() -> None:
    r = get_redis()
    for sid, desired in (("host1:10", 2), ("host2:20", 1)):
        r.set(
            Keys.supervisor(sid),
            _sup("running", desired, sid).encode(),
            px=3000,
        )
        r.zadd(Keys.supervisors(), {sid: now_ms()})
    _beat("host1:11")
    _beat("host1:12")
    state = read_state()
    assert (state.status, state.alive, state.desired) == (DEGRADED, 2, 3)
    _beat("host2:21")
    assert read_state().status == READY


def test_read_state__redis_unreachable_reads_unavailable(settings) -> None:
    from telephony.connections import reset_clients

    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    reset_clients()
    state = read_state()
    assert (state.status, state.reason) == (UNAVAILABLE, "redis_unreachable")


async def test_state_cache__serves_a_reading_within_its_ttl(settings) -> None:
    settings.TELEPHONY_STATE_CACHE_TTL = 60
    first = await state_cache.aget()
    _beat("a:1")
    assert (await state_cache.aget()) is first
    state_cache.clear()
    assert (await state_cache.aget()).status == READY


def test_compute_state__a_lost_supervisor_keeps_its_workers_desired() -> None:
    lost = [_sup("running", 1, "host2:9")]
    state = compute_state(
        supervisors=[_sup("running", 1)],
        workers=[_w()],
        forced_breaker=None,
        stopped=False,
        timestamp=1,
        lost=lost,
    )
    assert (state.status, state.alive, state.desired) == (DEGRADED, 1, 2)
    assert state.supervisors[-1].state == "lost"


def test_read_state__supervisor_gone_without_stopping_is_lost_not_forgotten(settings) -> None:
    settings.TELEPHONY_HEARTBEAT_TIMEOUT = 3.0
    r = get_redis()
    for sid in ("h1:1", "h2:2"):
        rec = _sup("running", 1, sid).encode()
        r.set(Keys.supervisor(sid), rec, px=3000)
        r.hset(Keys.supervisors_last(), sid, rec)
    r.zadd(Keys.supervisors(), {"h1:1": now_ms(), "h2:2": now_ms() - 10_000})  # h2 went quiet
    r.delete(Keys.supervisor("h2:2"))
    _beat("h1:11")
    state = read_state()
    assert (state.status, state.desired, state.alive) == (DEGRADED, 2, 1)
    # Stopped on purpose instead: its entry is gone, nothing is missing.
    r.hdel(Keys.supervisors_last(), "h2:2")
    assert read_state().status == READY


def test_read_state__a_malformed_heartbeat_reads_as_absent_and_is_logged_once(caplog) -> None:
    _beat("a:1")
    r = get_redis()
    r.set(Keys.worker("bad:2"), '{"id": "bad:2", "handled": "many"}', px=3000)
    r.zadd(Keys.workers(), {"bad:2": now_ms()})
    r.set(Keys.worker("junk:3"), "not json", px=3000)
    r.zadd(Keys.workers(), {"junk:3": now_ms()})
    with caplog.at_level(logging.WARNING, logger="telephony.state"):
        first, second = read_state(), read_state()
    assert [w.id for w in first.workers] == ["a:1"] and (first.status, first.alive) == (READY, 1)
    assert [w.id for w in second.workers] == ["a:1"]
    logged = [rec.getMessage() for rec in caplog.records]
    assert len(logged) == 2, logged  # one line per bad key, not one per read
    assert any("bad:2" in line and "handled" in line for line in logged)
    assert all("many" not in line for line in logged)  # the reason, never the raw value
