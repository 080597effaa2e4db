"""The django-health-check integration: ``/ht/`` fails while telephony is unavailable."""

from __future__ import annotations

import os
import signal
from http import HTTPStatus

import pytest

from telephony.procutil import wait_for
from telephony.state import state_cache

pytest.importorskip("health_check", reason="pip install django-health-check")

from dashboard.ops.health_checks import TelephonyHealthCheck
from tests.dashboard.conftest import put_supervisor, put_worker

CHECK = "TelephonyHealthCheck()"


def ht(client) -> tuple[int, dict[str, str]]:
    response = client.get("/ht/", HTTP_ACCEPT="application/json")
    return response.status_code, response.json()


async def test_health_check__passes_while_available_fails_with_the_reason() -> None:
    put_supervisor("h1:1", desired=2)
    put_worker("h1:2", supervisor_id="h1:1")
    assert (await TelephonyHealthCheck().get_result()).error is None  # degraded still serves

    put_worker("h1:2", supervisor_id="h1:1", draining=True)
    state_cache.clear()
    error = (await TelephonyHealthCheck().get_result()).error
    assert error is not None and str(error) == "Unavailable: telephony is unavailable (no_worker)"


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.django_db(transaction=True)
def test_health_check__flips_when_the_workers_stop(client, supervisor, procs) -> None:
    sup, _ = supervisor(workers=1)
    status, body = ht(client)
    assert status == HTTPStatus.OK and body[CHECK] == "OK"
    assert {"Database(alias='default')", "Cache(alias='default')"} <= set(body)

    os.kill(sup.pid, signal.SIGTERM)  # a graceful stop: workers drain and go
    assert wait_for(lambda: ht(client)[0] != HTTPStatus.OK, timeout=30), procs.output(sup)
    status, body = ht(client)
    assert status == HTTPStatus.INTERNAL_SERVER_ERROR  # health_check's convention
    assert body[CHECK].startswith("Unavailable: telephony is ")
    assert all(v == "OK" for k, v in body.items() if k != CHECK)
