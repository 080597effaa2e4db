"""Logging pieces referenced from ``LOGGING`` in ``config/settings.py``.

Log lines name their component in brackets (``[Telephony Worker] Started ...``) and
carry ``request_id=`` / ``call_id=`` on every line about one request or call.
:class:`JsonFormatter` (``TELEPHONY_LOG_FORMAT=json``) lifts those into fields, for log
pipelines. :class:`SkipExpectedApiErrors` keeps the contract's own 502/503/504 answers
under ``/api/`` out of the ``django.request`` ERROR log: the API already logs each at
INFO with its reason, and an outage must not bury real crashes (500s) in noise.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
from typing import Any

COMPONENT = re.compile(r"^\[([^\]]+)\]\s*")
IDS = re.compile(r"\b(request_id|call_id|worker_id|supervisor_id|command_id)=([\w:.\-]+)")
EXPECTED_STATUSES = frozenset({502, 503, 504})
API_PREFIX = "/api/"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, process, component, ids, message."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
        }
        match = COMPONENT.match(message)
        if match:
            entry["component"] = match.group(1)
            message = message[match.end() :]
        entry["message"] = message
        for key, value in IDS.findall(message):
            entry.setdefault(key, value)
        status = getattr(record, "status_code", None)
        if isinstance(status, int):
            entry["status_code"] = status
        request = getattr(record, "request", None)
        path = getattr(request, "path", None)
        if isinstance(path, str):
            entry["path"] = path
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


class SkipExpectedApiErrors(logging.Filter):
    """Drop ``django.request`` records for 502/503/504 answers under ``/api/``.

    Those are answers of the API contract (provider error, service unavailable, worker
    timeout), logged by the API itself. Real server errors (500, crashes) pass.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) not in EXPECTED_STATUSES:
            return True
        path = getattr(getattr(record, "request", None), "path", "")
        return not (isinstance(path, str) and path.startswith(API_PREFIX))
