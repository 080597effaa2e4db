"""The django-health-check integration: ``/ht/`` fails while telephony is unavailable."""

from __future__ import annotations

from dataclasses import replace
from http import HTTPStatus

import pytest

from dashboard.ops.health_checks import TelephonyHealthCheck
from telephony.protocol import STOPPED
from telephony.state import state_cache
from telephony.supervisor.store import SupervisorStore
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


@pytest.mark.django_db
def test_health_check__flips_when_the_supervisor_stops(client, settings) -> None:
    settings.TELEPHONY_STATE_CACHE_TTL = 0
    rec = put_supervisor("h1:1", desired=1)
    put_worker("h1:2", supervisor_id="h1:1")
    status, body = ht(client)
    assert status == HTTPStatus.OK and body[CHECK] == "OK"
    assert {"Database(alias='default')", "Cache(alias='default')"} <= set(body)

    # A graceful stop's last word, written by the supervisor's own store: its drained worker
    # forgotten, its record stopped, the service marked stopped (test_supervisor.py shows a
    # real SIGTERM gets there).
    stopped = replace(rec, state=STOPPED, alive=0, workers=())
    SupervisorStore("h1:1", heartbeat_timeout=1.0).finish(record=stopped, forget=["h1:2"])
    status, body = ht(client)
    assert status == HTTPStatus.INTERNAL_SERVER_ERROR  # health_check's convention
    assert body[CHECK] == "Unavailable: telephony is stopped (stopped)"
    assert all(v == "OK" for k, v in body.items() if k != CHECK)
