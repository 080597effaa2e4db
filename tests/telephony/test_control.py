"""Operator control: commands through Redis to live supervisors, audited in the database.

How a supervisor acts on them (scale, rolling restart) is in test_supervisor_decisions.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from telephony import control
from telephony import exceptions as exc
from telephony.connections import Keys, get_redis, reset_clients
from telephony.models import ServiceEvent
from telephony.state import now_ms, read_state

pytestmark = pytest.mark.django_db(transaction=True)


def fake_supervisor(sid: str, state: str = "running", desired: int = 1) -> None:
    """A fresh supervisor record, as a live supervisor would write it."""
    rec = {"id": sid, "state": state, "desired": desired, "alive": 0, "updated_at": now_ms()}
    r = get_redis()
    r.set(Keys.supervisor(sid), json.dumps(rec), px=3000)
    r.zadd(Keys.supervisors(), {sid: now_ms()})


def commands(sid: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in get_redis().lrange(Keys.control(sid), 0, -1)]


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
    assert cmd["cmd"] == "scale" and cmd["n"] == 3 and cmd["user_id"] == user.pk and cmd["id"]
    assert commands("h3:3") == [] and commands("h4:4") == []
    assert 0 < get_redis().ttl(Keys.control("h1:1")) <= control.COMMAND_TTL
    audit = ServiceEvent.objects.get(kind="control_scale")
    assert audit.user == user and sorted(audit.data["targets"]) == ["h1:1", "h2:2"]
    assert "user=" in audit.message and audit.data["n"] == 3


def test_control__names_one_supervisor_or_reaches_none() -> None:
    fake_supervisor("h1:1")
    fake_supervisor("h2:2")
    assert control.request_reset(supervisor_id="h2:2") == ["h2:2"]
    assert [c["cmd"] for c in commands("h2:2")] == ["reset"] and commands("h1:1") == []
    assert control.request_restart(supervisor_id="gone:9") == []
    assert ServiceEvent.objects.get(kind="control_restart").data["targets"] == []


def test_control__scale_rejects_a_negative_count() -> None:
    with pytest.raises(ValueError):
        control.request_scale(-1)


def test_control__force_breaker_sets_and_clears_the_switch(user) -> None:
    fake_supervisor("h1:1")
    assert control.force_breaker("open", user_id=user.pk) == ["h1:1"]
    assert get_redis().get(Keys.breaker_forced()) == b"open"
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
