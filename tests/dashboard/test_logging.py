"""Logging: expected API outages stay out of the ERROR log; lines can be JSON."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from http import HTTPStatus

import pytest
from django.test import RequestFactory

from config.log import JsonFormatter, SkipExpectedApiErrors
from tests.conftest import ROOT


def request_record(path: str, status: int) -> logging.LogRecord:
    record = logging.LogRecord(
        "django.request", logging.ERROR, __file__, 1, "%s: %s", ("Error", path), None
    )
    record.status_code = status
    record.request = RequestFactory().get(path)
    return record


@pytest.mark.parametrize(
    ("path", "status", "kept"),
    [
        ("/api/webrtc/status", 503, False),
        ("/api/webrtc/call", 502, False),
        ("/api/webrtc/call", 504, False),
        ("/api/webrtc/call", 500, True),  # a real crash is always logged
        ("/admin/telephony/health/", 503, True),  # only the API's contract answers go
    ],
)
def test_logging__django_request_drops_only_expected_api_answers(path, status, kept) -> None:
    assert SkipExpectedApiErrors().filter(request_record(path, status)) is kept
    # ... and the filter is installed on django.request by LOGGING.
    assert logging.getLogger("django.request").filter(request_record(path, status)) is kept


@pytest.mark.django_db
def test_logging__an_outage_does_not_log_errors(client) -> None:
    handler_records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            handler_records.append(record)

    logger = logging.getLogger("django.request")
    collect = Collect(level=logging.ERROR)
    logger.addHandler(collect)
    try:
        # No worker runs in this test: the status endpoint answers 503, as it should.
        assert client.get("/api/webrtc/status").status_code == HTTPStatus.SERVICE_UNAVAILABLE
    finally:
        logger.removeHandler(collect)
    assert handler_records == []


def test_logging__json_lines_carry_component_ids_and_process() -> None:
    record = logging.LogRecord(
        "telephony.worker.main", logging.INFO, __file__, 1,
        "[Telephony Worker] request_id=%s op=%s failed: %s", ("r-1", "call.dial", "timeout"), None,
    )  # fmt: skip
    entry = json.loads(JsonFormatter().format(record))
    assert entry["component"] == "Telephony Worker" and entry["request_id"] == "r-1"
    assert entry["message"] == "request_id=r-1 op=call.dial failed: timeout"
    assert entry["level"] == "INFO" and entry["logger"] == "telephony.worker.main"
    assert isinstance(entry["process"], int) and entry["time"].endswith("+00:00")


def test_logging__telephony_log_format_json_is_used_by_every_process(
    subprocess_env: dict[str, str],
) -> None:
    code = (
        "import django, logging; django.setup(); "
        "logging.getLogger('telephony.test').info('[Telephony Test] call_id=%s done', 'c-9')"
    )
    env = {**subprocess_env, "TELEPHONY_LOG_FORMAT": "json"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    entry = json.loads(out.stderr.strip().splitlines()[-1])
    assert entry["component"] == "Telephony Test" and entry["call_id"] == "c-9"

    bad = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**env, "TELEPHONY_LOG_FORMAT": "xml"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode != 0 and "TELEPHONY_LOG_FORMAT" in bad.stderr
