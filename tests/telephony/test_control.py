"""Operator control: commands through Redis to live supervisors, audited in the database."""

from __future__ import annotations

import time

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model

from telephony import control
from telephony import exceptions as exc
from telephony.connections import get_redis, reset_clients
from telephony.keys import Keys
from telephony.models import ServiceEvent
from telephony.procutil import pid_alive, wait_for
from telephony.protocol import ControlCommand, SupervisorRecord
from telephony.state import READY, now_ms, read_state
from telephony.web.client import get_telephony_service
from tests.telephony.test_supervisor import (
    FAST,
    START,
    events,
    record,
    sid,
    spare_pids,
    start_supervisor,
    wait_events,
    wait_ready,
    worker_pids,
)

pytestmark = pytest.mark.django_db(transaction=True)


def fake_supervisor(sid: str, state: str = "running", desired: int = 1) -> None:
    """A fresh supervisor record, as a live supervisor would write it."""
    rec = SupervisorRecord(id=sid, state=state, desired=desired, updated_at=now_ms())
    r = get_redis()
    r.set(Keys.supervisor(sid), rec.encode(), px=3000)
    r.zadd(Keys.supervisors(), {sid: now_ms()})


def commands(sid: str) -> list[ControlCommand]:
    return [ControlCommand.decode(raw) for raw in get_redis().lrange(Keys.control(sid), 0, -1)]


@pytest.fixture
def user():
    return get_user_model().objects.create_user("operator", password="x")


def test_control__scale_reaches_every_live_supervisor_and_is_audited(user) -> None:
    fake_supervisor("h1:1")
    fake_supervisor("h2:2", state="failed")
    fake_supervisor("h3:3", state="stopping")  # on its way out: not told
    fake_supervisor("h4:4", state="stopped")
    reached = control.request_scale(3, user_id=user.pk)
    assert sorted(reached) == ["h1:1", "h2:2"]
    [cmd] = commands("h1:1")
    assert cmd.cmd == "scale" and cmd.n == 3 and cmd.user_id == user.pk and cmd.id
    assert commands("h3:3") == [] and commands("h4:4") == []
    assert 0 < get_redis().ttl(Keys.control("h1:1")) <= control.COMMAND_TTL
    audit = ServiceEvent.objects.get(kind="control_scale")
    assert audit.user == user and sorted(audit.data["targets"]) == ["h1:1", "h2:2"]
    assert "user=" in audit.message and audit.data["n"] == 3


def test_control__names_one_supervisor_or_reaches_none() -> None:
    fake_supervisor("h1:1")
    fake_supervisor("h2:2")
    assert control.request_reset(supervisor_id="h2:2") == ["h2:2"]
    assert [c.cmd for c in commands("h2:2")] == ["reset"] and commands("h1:1") == []
    assert control.request_restart(supervisor_id="gone:9") == []
    assert ServiceEvent.objects.get(kind="control_restart").data["targets"] == []


def test_control__scale_rejects_a_negative_count() -> None:
    with pytest.raises(ValueError):
        control.request_scale(-1)


def test_control__force_breaker_sets_and_clears_the_switch(user) -> None:
    fake_supervisor("h1:1")
    assert control.force_breaker("open", user_id=user.pk) == ["h1:1"]
    assert get_redis().get(Keys.breaker_forced()) == "open"
    assert read_state().status == "unavailable"  # maintenance: refused at once
    control.force_breaker(None, user_id=user.pk)
    assert get_redis().get(Keys.breaker_forced()) is None
    kinds = [(e.kind, e.data["forced"]) for e in ServiceEvent.objects.order_by("id")]
    assert kinds == [("breaker_forced", "open"), ("breaker_forced", None)]
    with pytest.raises(ValueError):
        control.force_breaker("half_open")


def test_control__redis_unreachable_is_a_clean_error(settings) -> None:
    settings.REDIS_URL = "unix:///tmp/no-such-telephony-redis.sock"
    reset_clients()
    with pytest.raises(exc.ServiceUnavailable) as e:
        control.request_restart()
    assert e.value.reason == "redis_unreachable"


@pytest.fixture
def sup_env(subprocess_env, settings):
    settings.TELEPHONY_HEARTBEAT_TIMEOUT = 1.0
    settings.TELEPHONY_STATE_CACHE_TTL = 0
    return {**subprocess_env, **FAST}


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_control__scale_up_then_down(procs, sup_env) -> None:
    sup = start_supervisor(procs, sup_env, workers=1)
    [first] = wait_ready(procs, sup, 1)
    assert control.request_scale(2) == [sid(sup)]
    pids = wait_ready(procs, sup, 2)
    assert first in pids and read_state().desired == 2
    scaled = wait_events("scaled")[0].data
    assert (scaled["previous"], scaled["desired"]) == (1, 2)
    assert control.request_scale(1) == [sid(sup)]
    assert wait_for(
        lambda: len(worker_pids(sup)) == 1 and getattr(record(sup), "desired", None) == 1,
        timeout=START,
    )
    retired = [p for p in pids if p not in worker_pids(sup)]
    assert len(retired) == 1 and wait_for(lambda: not pid_alive(retired[0]), timeout=15)
    state = read_state()
    assert (state.status, state.alive, state.desired) == (READY, 1, 1)
    assert events("worker_restarted") == []  # scaling is not a failure


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("spares", ["0", "1"])
async def test_control__rolling_restart_replaces_every_worker_without_failing_a_ping(
    procs, sup_env, spares
) -> None:
    sup = start_supervisor(procs, sup_env, workers=2, TELEPHONY_SPARE_WORKERS=spares)
    old = set(await sync_to_async(wait_ready)(procs, sup, 2))
    if spares == "1":
        assert await sync_to_async(wait_for)(lambda: len(spare_pids(sup)) == 1, timeout=START)
        old |= set(await sync_to_async(spare_pids)(sup))  # it runs the old code too
    reached = await sync_to_async(control.request_restart)(user_id=None)
    assert reached == [sid(sup)]
    service = get_telephony_service()
    ok, failed = 0, []

    def finished() -> bool:
        return any(e.data.get("phase") == "finished" for e in events("rolling_restart"))

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            await service.aping(timeout=10)
            ok += 1
        except Exception as e:
            failed.append(repr(e))
        if ok % 20 == 0 and await sync_to_async(finished)():
            break
    assert not failed, failed[:5]
    new = set(await sync_to_async(wait_ready)(procs, sup, 2))
    assert not (new & old), (old, new)
    assert await sync_to_async(wait_for)(lambda: not any(pid_alive(p) for p in old), timeout=15)
    recycled = await sync_to_async(events)("worker_recycled")
    assert {e.data["reason"] for e in recycled} == {"rolling_restart"} and len(recycled) == 2
    assert getattr(await sync_to_async(record)(sup), "restarts", None) == 0
    if spares == "1":  # a new spare, with the new code, once the restart is over
        assert await sync_to_async(wait_for)(
            lambda: len(spare_pids(sup)) == 1 and not set(spare_pids(sup)) & old, timeout=START
        )
