"""The API's expected 503s make no ``django.request`` record at all (not one made and then
filtered out: each cost CPU per answer during an outage); real crashes still do."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def django_request_records(monkeypatch: pytest.MonkeyPatch, settings) -> Iterator[Records]:
    """Every record ``django.request`` makes, the settings' filter taken away."""
    settings.TELEPHONY_STATE_CACHE_TTL = 0
    logger = logging.getLogger("django.request")
    monkeypatch.setattr(logger, "filters", [])
    handler = Records()
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def test_api__expected_503s_make_no_error_record(django_request_records: Records) -> None:
    client = Client()
    client.force_login(get_user_model().objects.create_user("agent", password="pw"))
    # No worker: the service is unavailable.
    assert client.get("/api/webrtc/status").status_code == 503
    assert client.post("/api/webrtc/credential").status_code == 503
    assert client.post("/api/webrtc/call", {"to": "+12025550143"}).status_code == 503
    assert django_request_records.records == []


def test_api__a_crash_is_still_logged(
    django_request_records: Records, monkeypatch: pytest.MonkeyPatch
) -> None:
    from telephony.web import views

    async def crash() -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(views.service, "astatus", crash)
    assert Client().get("/api/webrtc/status").status_code == 500
    assert [r.levelname for r in django_request_records.records] == ["ERROR"]
