"""The "Telephony health" admin page and its JSON: staff only, real data, every host."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from telephony.connections import get_redis, reset_clients
from telephony.keys import Keys
from telephony.models import Call, CallStatus, Credential, ServiceEvent
from telephony.protocol import LatencySummary, WorkerSummary
from telephony.supervisor.events import EventSink
from tests.dashboard.conftest import HOST, client_for, put_supervisor, put_worker

PAGE = "/admin/telephony/health/"
DATA = "/admin/telephony/health.json"


def test_health_urls__live_inside_the_admin() -> None:
    assert reverse("telephony_health:page") == PAGE
    assert reverse("telephony_health:data") == DATA
    assert reverse("telephony_health:action", args=["restart"]) == f"{PAGE}actions/restart/"


@pytest.mark.django_db(transaction=True)  # the event sink writes from its own thread
def test_health_page__shows_a_supervisor_its_worker_and_its_events(admin_client) -> None:
    # The record and the beat in the shapes the supervisor and the worker publish (their
    # typed encoders), the events through the supervisor's own EventSink; that real
    # processes write them is test_supervisor.py's subject.
    sup_id, pid = f"{HOST}:7", 8
    put_supervisor(
        sup_id, desired=1, workers=[WorkerSummary(pid=pid, worker_id=f"{HOST}:{pid}", ready=True)]
    )
    put_worker(f"{HOST}:{pid}", supervisor_id=sup_id)
    sink = EventSink(sup_id)
    sink.start()
    sink.emit("supervisor_started", "Started workers=1", state="starting", desired=1)
    sink.emit("worker_started", f"Worker started worker_id={HOST}:{pid}", state="starting",
              worker_id=f"{HOST}:{pid}", pid=pid)  # fmt: skip
    sink.close()

    page = admin_client.get(PAGE)
    assert page.status_code == HTTPStatus.OK
    html = page.content.decode()
    assert re.search(r'data-th="status">Ready<', html)
    assert f'data-pid="{pid}"' in html
    assert f'data-supervisor-id="{sup_id}"' in html
    assert 'data-kind="worker_started"' in html and "Worker started" in html
    assert 'action="/admin/telephony/health/actions/restart/"' in html  # a superuser may act

    data = admin_client.get(DATA).json()
    assert data["service"]["status"] == "ready" and data["service"]["healthy"] is True
    assert data["service"]["alive"] == data["service"]["desired"] == 1
    [worker] = data["workers"]
    assert worker["pid"] == pid and worker["state"] == "serving"
    assert worker["supervisor_id"] == sup_id and worker["breaker"]["state"] == "closed"
    assert worker["beat_age_s"] < 1.0 and worker["rss_mb"] > 0
    assert 0 < worker["uss_mb"] <= worker["pss_mb"] <= worker["rss_mb"]  # from smaps_rollup
    [record] = data["supervisors"]
    assert record["id"] == sup_id and record["state"] == "running" and record["restarts"] == 0
    assert record["template"]["state"] == "ready" and record["template"]["pid"] > 0
    assert "template ready" in html
    assert {"supervisor_started", "worker_started"} <= {e["kind"] for e in data["events"]}
    assert data["can_control"] is True


@pytest.mark.django_db
def test_health_page__is_linked_from_the_admin_index(admin_client) -> None:
    html = admin_client.get("/admin/").content.decode()
    assert f'href="{PAGE}"' in html and "Telephony health" in html
    assert "app-telephony" in html  # Django's own app list is still there


@pytest.mark.django_db
@pytest.mark.parametrize("url", [PAGE, DATA])
def test_health_page__sends_non_staff_to_the_admin_login(client, customer, url) -> None:
    for who in (client, client_for(customer)):
        response = who.get(url)
        assert response.status_code == HTTPStatus.FOUND
        assert response["Location"].startswith("/admin/login/?next=")


@pytest.mark.django_db
def test_health_page__staff_without_the_permission_see_but_cannot_act(viewer) -> None:
    html = client_for(viewer).get(PAGE).content.decode()
    assert 'data-th="status"' in html
    assert "/actions/" not in html and "need the permission" in html
    assert client_for(viewer).get(DATA).json()["can_control"] is False


@pytest.mark.django_db
def test_health_json__covers_every_host_lost_supervisors_and_the_record(
    admin_client, admin_user, settings: Any
) -> None:
    settings.TELEPHONY_ACCOUNT_CREDENTIAL_LIMIT = 4
    # Late after 10 s without a beat, gone after 20 s: wide margins for a loaded machine.
    settings.TELEPHONY_HEARTBEAT_INTERVAL = 1.0
    settings.TELEPHONY_HEARTBEAT_TIMEOUT = 20.0
    user = admin_user
    now = timezone.now()
    for status, answered, duration in [
        (CallStatus.COMPLETED, now, 30),
        (CallStatus.COMPLETED, now, 50),
        (CallStatus.FAILED, None, None),
        (CallStatus.BUSY, None, None),
        (CallStatus.NO_ANSWER, None, None),
        (CallStatus.NO_ANSWER, None, None),
        (CallStatus.CANCELED, None, None),
        (CallStatus.RINGING, None, None),
    ]:
        Call.objects.create(
            user=user,
            to_number="+12025550143",
            status=status,
            answered_at=answered,
            duration_seconds=duration,
        )
    old = Call.objects.create(user=user, to_number="+12025550143", status=CallStatus.FAILED)
    Call.objects.filter(pk=old.pk).update(created_at=now - timedelta(days=2))
    for i, (expires, deleted) in enumerate([(1, None), (1, None), (-1, None), (1, now)]):
        Credential.objects.create(
            user=user,
            telnyx_id=f"c{i}",
            sip_username=f"u{i}",
            tag="t",
            expires_at=now + timedelta(hours=expires),
            deleted_at=deleted,
        )
    ServiceEvent.objects.create(kind="breaker_forced", message="breaker forced open", user=user)
    # Records and beats last, just before the request: they age (and expire) as in Redis.
    put_supervisor("alpha:10", desired=2, restarts=5, workers=[
        WorkerSummary(pid=11, worker_id="alpha:11", started_at=1, ready=True),
        WorkerSummary(pid=12, worker_id="alpha:12", started_at=1, ready=False),
    ])  # fmt: skip
    put_supervisor("beta:20", desired=1, state="running")
    put_supervisor("gamma:30", desired=1, lost=True)
    put_worker("alpha:11", supervisor_id="alpha:10")
    put_worker("beta:21", supervisor_id="beta:20", beat_age_ms=12_000, breaker="open")
    put_worker(
        "alpha:13", supervisor_id="alpha:10", spare=True, handled=0, latency=LatencySummary()
    )
    get_redis().hset(
        Keys.metric_requests(), mapping={"health.ping|ok": 7, "call.dial|provider_error": 2}
    )
    get_redis().hset(
        Keys.metric_latency(),
        mapping={"health.ping|5": 6, "health.ping|25": 1, "health.ping|count": 7,
                 "health.ping|sum": 21.0},
    )  # fmt: skip
    data = admin_client.get(DATA).json()

    assert data["service"]["status"] == "degraded"  # 2 serving of 4 wanted (lost one counts)
    assert data["service"]["summary"] == "Serving with 2 of 4 workers."
    workers = {w["id"]: w for w in data["workers"]}
    assert workers["alpha:11"]["state"] == "serving"
    mem = workers["alpha:11"]
    assert (mem["rss_mb"], mem["pss_mb"], mem["uss_mb"]) == (88.4, 40.2, 21.7)
    assert workers["beta:21"]["state"] == "late"  # 12 s without a beat: late, not gone
    assert workers["alpha:13"]["state"] == "spare"  # idle: not among the 2 serving
    assert workers["alpha:12"]["state"] == "starting" and workers["alpha:12"]["handled"] is None
    assert workers["beta:21"]["breaker"]["state"] == "open"
    supervisors = {s["id"]: s for s in data["supervisors"]}
    assert supervisors["gamma:30"]["state"] == "lost" and supervisors["alpha:10"]["restarts"] == 5
    latency = data["latency"]
    assert latency["window"] == 80 and latency["p50_ms"] == 4.0 and latency["p99_ms"] == 30.0
    assert latency["errors"] == {"timeout": 4} and latency["errors_total"] == 4
    ops = {op["op"]: op for op in latency["ops"]}
    assert ops["health.ping"]["requests"] == 7 and ops["health.ping"]["mean_ms"] == 3.0
    assert ops["health.ping"]["p50_le_ms"] == 5.0 and ops["health.ping"]["p99_le_ms"] == 25.0
    assert ops["call.dial"]["errors"] == 2
    assert data["calls_today"] | {"since": None} == {
        "since": None,
        "placed": 8,
        "answered": 2,
        "failed": 1,  # busy, no answer and canceled are outcomes of their own
        "outcomes": {"completed": 2, "no_answer": 2, "busy": 1, "failed": 1, "canceled": 1},
        "in_progress": 1,
        "avg_duration_s": 40.0,
    }
    assert data["credentials"] == {"in_use": 2, "limit": 4, "percent": 50, "level": "ok"}
    [event] = data["events"]
    assert event["user"] == user.get_username() and event["tone"] == "control"

    html = admin_client.get(PAGE).content.decode()
    assert 'data-pid="12"' in html and "th-badge--starting" in html
    assert "th-badge--lost" in html and "th-badge--late" in html
    assert f"by {user.get_username()}" in html
    outcomes = (
        '<span data-th="calls-completed">2</span> completed · <span data-th="calls-no-answer">2'
        '</span> no answer · <span data-th="calls-busy">1</span> busy · <span data-th="calls-'
        'failed">1</span> failed · <span data-th="calls-canceled">1</span> canceled'
    )
    assert outcomes in html


@pytest.mark.django_db
def test_health_page__still_answers_when_redis_is_down(admin_client, settings, tmp_path) -> None:
    settings.REDIS_URL = f"unix://{tmp_path}/nothing.sock"
    reset_clients()
    data = admin_client.get(DATA).json()
    assert data["service"]["status"] == "unavailable"
    assert data["service"]["reason"] == "redis_unreachable"
    assert data["service"]["summary"].startswith("Redis is unreachable")
    assert data["workers"] == [] and data["latency"]["counters_ok"] is False
    assert admin_client.get(PAGE).status_code == HTTPStatus.OK


@pytest.mark.django_db
@pytest.mark.parametrize("time_zone", ["UTC", "America/New_York"])
def test_health_page__event_times_read_as_utc_like_the_live_updates(
    admin_client, settings: Any, time_zone: str
) -> None:
    # static/dashboard/health/format.mjs writes "05:06:07 UTC" for the same "at" after a
    # live update (tests/js/health-format.test.mjs); TIME_ZONE changes neither.
    settings.TIME_ZONE = time_zone
    event = ServiceEvent.objects.create(kind="worker_started", message="worker started")
    at = datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
    ServiceEvent.objects.filter(pk=event.pk).update(created_at=at)

    [shown] = admin_client.get(DATA).json()["events"]
    html = admin_client.get(PAGE).content.decode()

    assert shown["at"] == "2025-03-04T05:06:07.123456+00:00"
    assert f'<time datetime="{shown["at"]}">05:06:07 UTC</time>' in html


@pytest.mark.django_db
def test_health_page__shows_seats_against_the_limit_and_who_holds_them(
    admin_client, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.contrib.auth import get_user_model

    from telephony import presence

    settings.TELEPHONY_ACCOUNT_CREDENTIAL_LIMIT = 5
    settings.TELEPHONY_SEAT_IDLE_SECONDS = 300
    now = 1_800_000_000.0
    monkeypatch.setattr(presence, "clock", lambda: now)
    expires = timezone.now() + timedelta(hours=20)
    presence.touch(0, at=now - 3600)  # presence tracking began an hour ago
    for n, seen_ago in enumerate([5, 200, 400]):
        user = get_user_model().objects.create_user(f"agent{n}")
        Credential.objects.create(
            user=user, telnyx_id=f"t{n}", sip_username=f"sip{n}", tag="x", expires_at=expires
        )
        presence.touch(user.pk, at=now - seen_ago)
    gone = get_user_model().objects.create_user("gone")
    Credential.objects.create(
        user=gone, telnyx_id="t9", sip_username="sip9", tag="x", expires_at=expires,
        deleted_at=timezone.now(), deleted_reason="seat_idle",
    )  # fmt: skip

    seats = admin_client.get(DATA).json()["seats"]
    assert (seats["in_use"], seats["limit"], seats["level"]) == (3, 5, "ok")
    assert [(h["user"], h["online"], h["idle_s"], h["frees_in_s"]) for h in seats["holders"]] == [
        ("agent0", True, None, None),
        ("agent1", False, 200, 100),
        ("agent2", False, 400, 0),
    ]
    labels = [h["label"] for h in seats["holders"]]
    assert labels == [
        "online",
        "left 3 m 20 s ago, frees in 1 m 40 s",
        "left 6 m 40 s ago, freeing now",
    ]
    html = admin_client.get(PAGE).content.decode()
    assert "Seats in use" in html
    assert 'data-seat-user="agent0" data-seat-online="true">agent0 · online<' in html
    assert 'data-seat-user="agent1" data-seat-online="false"' in html and "gone ·" not in html
