"""``/metrics``: Prometheus series read from shared storage, behind an IP list or a token."""

from __future__ import annotations

import time
from http import HTTPStatus
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from prometheus_client.parser import text_string_to_metric_families

from telephony.connections import get_redis, reset_clients
from telephony.keys import Keys
from telephony.models import Call, CallStatus
from telephony.web.client import get_telephony_service
from tests.dashboard.conftest import put_supervisor, put_worker, sid

SECRET = "s3cret-metrics-token"


def scrape(client, **extra: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", **extra)
    assert response.status_code == HTTPStatus.OK, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.django_db
def test_metrics__loopback_only_by_default(client) -> None:
    assert client.get("/metrics").status_code == HTTPStatus.OK  # the test client is 127.0.0.1
    refused = client.get("/metrics", REMOTE_ADDR="10.1.2.3")
    assert refused.status_code == HTTPStatus.FORBIDDEN
    assert refused["Content-Type"].startswith("text/plain") and b"telephony" not in refused.content
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == HTTPStatus.OK
    assert client.post("/metrics").status_code == HTTPStatus.METHOD_NOT_ALLOWED


@pytest.mark.django_db
def test_metrics__a_bearer_token_or_an_allowed_network(client, settings: Any) -> None:
    settings.TELEPHONY_METRICS_TOKEN = SECRET
    settings.TELEPHONY_METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    far = {"REMOTE_ADDR": "192.0.2.7"}
    assert client.get("/metrics", **far).status_code == HTTPStatus.FORBIDDEN
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope", **far)
    assert wrong.status_code == HTTPStatus.FORBIDDEN
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {SECRET}", **far).status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.20.30.40").status_code == HTTPStatus.OK
    assert client.get("/metrics").status_code == HTTPStatus.FORBIDDEN  # loopback not listed
    settings.TELEPHONY_METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ", **far).status_code == 403


@pytest.mark.django_db
def test_metrics__series_from_redis_records_and_the_database(
    client, admin_user, settings: Any
) -> None:
    settings.TELNYX_API_KEY = "KEYsupersecret"
    put_supervisor("alpha:10", desired=2, restarts=3)
    put_supervisor("gamma:30", lost=True, restarts=1)
    put_worker("alpha:11", supervisor_id="alpha:10")
    put_worker("alpha:12", supervisor_id="alpha:10", breaker="half_open")
    r = get_redis()
    r.hset(Keys.metric_requests(), mapping={"call.dial|ok": 4, "call.dial|provider_error": 1})
    r.hset(
        Keys.metric_latency(),
        mapping={"call.dial|10": 2, "call.dial|250": 2, "call.dial|+Inf": 1,
                 "call.dial|count": 5, "call.dial|sum": 40512.5},
    )  # fmt: skip
    r.set(Keys.breaker_forced(), "closed")
    for status in (CallStatus.COMPLETED, CallStatus.COMPLETED, CallStatus.FAILED):
        Call.objects.create(user=admin_user, to_number="+12025550143", status=status)

    response = client.get("/metrics")
    assert b"KEYsupersecret" not in response.content
    s = scrape(client)

    assert value(s, "telephony_requests_total", op="call.dial", outcome="ok") == 4
    assert value(s, "telephony_requests_total", op="call.dial", outcome="provider_error") == 1
    bucket = "telephony_request_duration_seconds_bucket"
    assert value(s, bucket, op="call.dial", le="0.005") == 0
    assert value(s, bucket, op="call.dial", le="0.01") == 2
    assert value(s, bucket, op="call.dial", le="0.25") == 4
    assert value(s, bucket, op="call.dial", le="30.0") == 4
    assert value(s, bucket, op="call.dial", le="+Inf") == 5
    assert value(s, "telephony_request_duration_seconds_count", op="call.dial") == 5
    assert value(s, "telephony_request_duration_seconds_sum", op="call.dial") == 40.5125
    assert value(s, "telephony_service_status", status="degraded") == 1
    assert value(s, "telephony_service_status", status="ready") == 0
    assert value(s, "telephony_service_available") == 1
    assert value(s, "telephony_workers_alive") == 2 and value(s, "telephony_workers_desired") == 3
    assert value(s, "telephony_worker_restarts_total", supervisor="alpha:10") == 3
    assert value(s, "telephony_worker_restarts_total", supervisor="gamma:30") == 1
    assert value(s, "telephony_supervisors", state="lost") == 1
    assert value(s, "telephony_breaker_state", worker="alpha:12", state="half_open") == 1
    assert value(s, "telephony_breaker_state", worker="alpha:12", state="closed") == 0
    assert value(s, "telephony_breaker_state", worker="alpha:11", state="closed") == 1
    assert value(s, "telephony_breaker_forced", state="closed") == 1
    assert value(s, "telephony_worker_rss_bytes", worker="alpha:11") == 88.4 * 1048576
    assert value(s, "telephony_worker_pss_bytes", worker="alpha:11") == 40.2 * 1048576
    assert value(s, "telephony_worker_uss_bytes", worker="alpha:11") == 21.7 * 1048576
    assert value(s, "telephony_calls", status="completed") == 2
    assert value(s, "telephony_calls", status="failed") == 1
    assert value(s, "telephony_calls", status="queued") == 0
    assert value(s, "telephony_credentials_limit") == 5
    assert value(s, "telephony_metrics_redis_up") == 1


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.django_db(transaction=True)
def test_metrics__counters_move_with_requests_from_any_process(client, supervisor) -> None:
    sup, [pid] = supervisor(workers=1)
    before = scrape(client)
    ping = ("telephony_requests_total", (("op", "health.ping"), ("outcome", "ok")))
    count = ("telephony_request_duration_seconds_count", (("op", "health.ping"),))
    assert value(before, "telephony_workers_alive") == 1
    assert value(before, "telephony_worker_restarts_total", supervisor=sid(sup)) == 0

    for _ in range(3):
        assert async_to_sync(get_telephony_service().aping)()["worker_id"].endswith(f":{pid}")

    deadline = time.monotonic() + 10  # the worker flushes its counts with each heartbeat
    after = scrape(client)
    while after.get(ping, 0) < before.get(ping, 0) + 3 and time.monotonic() < deadline:
        time.sleep(0.1)
        after = scrape(client)
    assert after.get(ping, 0) == before.get(ping, 0) + 3
    assert after.get(count, 0) == before.get(count, 0) + 3
    assert value(after, "telephony_breaker_state", worker=f"{sid(sup).split(':')[0]}:{pid}",
                 state="closed") == 1  # fmt: skip


@pytest.mark.django_db
def test_metrics__still_answer_when_redis_is_down(client, settings, tmp_path) -> None:
    settings.REDIS_URL = f"unix://{tmp_path}/nothing.sock"
    reset_clients()
    s = scrape(client)
    assert value(s, "telephony_metrics_redis_up") == 0
    assert value(s, "telephony_service_available") == 0
    assert value(s, "telephony_service_status", status="unavailable") == 1
