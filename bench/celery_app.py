"""The Celery baseline: one no-op task, Redis as broker and result backend.

Loaded by a ``celery worker`` the benchmark starts (prefork or threads pool) and by the
benchmark as the client. Celery is installed for the benchmark only (var/bench-deps).
"""

from __future__ import annotations

import os

from celery import Celery

URL = os.environ["BENCH_CELERY_URL"]

app = Celery("bench", broker=URL, backend=URL)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
    task_ignore_result=False,
)


@app.task(name="bench.noop")
def noop(payload: dict[str, object]) -> dict[str, object]:
    """Does nothing: what is measured is Celery's own round trip and CPU."""
    return payload
