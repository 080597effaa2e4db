"""The worker's ``recording.fetch``: one verified file per recording, whatever goes wrong.

In-process: a local aiohttp download server with faults, a fake of Telnyx's recordings
API, a recordings storage in a tmp dir per test, an injected clock for leases. Recovery
(resuming, dead and stalled workers, retries) is in ``test_recording_recovery.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from telephony.exceptions import RecordingFetchFailed
from telephony.models import Recording, RecordingStatus
from telephony.worker import recordings as rec
from telephony.worker.recordings import RecordingFetcher, storage_name
from tests.helpers import await_until
from tests.telephony.recording_helpers import (
    audio,
    make_row,
    refreshed,
    sha,
    spool_files,
    stored_files,
)
from tests.telephony.test_webhooks import event, post

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]

SIZE = 300_000


async def test_fetch__streams_verifies_and_stores_one_file(
    fetcher, download_server, storage_dir, settings
) -> None:
    data = audio(SIZE)
    download_server.files["a.mp3"] = data
    row = await make_row()

    result = await fetcher.fetch(row.id, url=download_server.url("a.mp3"))

    row = await refreshed(row)
    assert result["status"] == "stored" and row.status == RecordingStatus.STORED
    assert (row.size_bytes, row.sha256) == (SIZE, sha(data))
    assert row.storage_name == storage_name(row) and row.storage_name.endswith(f"{row.id}.mp3")
    assert stored_files(storage_dir) == [storage_dir / row.storage_name]
    assert (storage_dir / row.storage_name).read_bytes() == data
    assert row.lease_until is None and row.attempts == 1 and row.stored_at is not None
    assert spool_files(settings) == []


async def test_fetch__two_concurrent_fetches_make_one_file(
    fake, download_server, storage_dir
) -> None:
    download_server.files["a.mp3"] = audio(SIZE)
    download_server.chunk_delay = 0.02  # the first is still downloading when the second comes
    row = await make_row()
    one = RecordingFetcher(fake, worker_id="w1")
    two = RecordingFetcher(fake, worker_id="w2")
    try:
        results = await asyncio.gather(
            one.fetch(row.id, url=download_server.url("a.mp3")),
            two.fetch(row.id, url=download_server.url("a.mp3")),
        )
    finally:
        await one.aclose()
        await two.aclose()
    assert sorted(r["claimed"] for r in results) == [False, True]
    assert len(download_server.requests) == 1
    assert len(stored_files(storage_dir)) == 1
    assert (await refreshed(row)).status == RecordingStatus.STORED


async def test_fetch__a_replayed_request_after_storing_changes_nothing(
    fetcher, download_server, storage_dir
) -> None:
    download_server.files["a.mp3"] = audio(SIZE)
    row = await make_row()
    await fetcher.fetch(row.id, url=download_server.url("a.mp3"))
    again = await fetcher.fetch(row.id, url=download_server.url("a.mp3"))
    assert again == {"recording_id": str(row.id), "status": "stored", "claimed": False}
    assert len(download_server.requests) == 1 and len(stored_files(storage_dir)) == 1


async def test_fetch__expired_link_gets_fresh_urls_from_telnyx(
    fetcher, fake, download_server, storage_dir, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    data = audio(SIZE)
    download_server.files["a.mp3"] = data
    download_server.expired.add("old")
    fake.add("rec-1", "a.mp3")
    row = await make_row("rec-1")

    await fetcher.fetch(row.id, url=download_server.url("a.mp3", "old"))

    row = await refreshed(row)
    assert row.status == RecordingStatus.STORED and row.sha256 == sha(data)
    assert fake.gets == ["rec-1"]
    assert [t for t, _ in download_server.requests] == ["old", "fresh"]
    assert row.duration_seconds == 61.5  # Telnyx's duration_millis, learnt on the way
    assert "token=" not in caplog.text  # download links are secrets


async def test_fetch__link_past_its_lifetime_is_not_even_tried(
    fetcher, fake, download_server
) -> None:
    download_server.files["a.mp3"] = audio(SIZE)
    fake.add("rec-1", "a.mp3")
    row = await make_row("rec-1")
    await fetcher.fetch(
        row.id, url=download_server.url("a.mp3", "old"), url_expires_at=time.time() - 1
    )
    assert [t for t, _ in download_server.requests] == ["fresh"]
    assert (await refreshed(row)).status == RecordingStatus.STORED


async def test_fetch__webhook_without_recording_id_is_resolved_by_leg_and_start(
    fetcher, fake, download_server
) -> None:
    download_server.files["a.mp3"] = audio(SIZE)
    download_server.expired.add("old")
    row = await make_row("leg:leg-1:2030-01-01T12:00:00+00:00")
    assert row.started_at is not None
    fake.add("rec-real", "a.mp3", started_at=row.started_at)
    fake.add("rec-other", "a.mp3", started_at=row.started_at + timedelta(minutes=1))

    await fetcher.fetch(row.id, url=download_server.url("a.mp3", "old"))

    row = await refreshed(row)
    assert row.status == RecordingStatus.STORED and row.telnyx_recording_id == "rec-real"


async def test_fetch__too_large_fails_with_a_code_and_keeps_nothing(
    fetcher, download_server, storage_dir, settings
) -> None:
    settings.TELEPHONY_RECORDING_MAX_BYTES = 100_000
    download_server.files["a.mp3"] = audio(SIZE)
    row = await make_row()
    result = await fetcher.fetch(row.id, url=download_server.url("a.mp3"))
    row = await refreshed(row)
    assert result["error"] == "too_large"
    assert (row.status, row.error_code, row.lease_until) == (
        RecordingStatus.FAILED,
        "too_large",
        None,
    )
    assert stored_files(storage_dir) == [] and spool_files(settings) == []


async def test_fetch__recording_gone_at_telnyx_fails_the_row(fetcher, download_server) -> None:
    download_server.files["a.mp3"] = audio(SIZE)
    download_server.expired.add("old")
    row = await make_row("rec-gone")
    await fetcher.fetch(row.id, url=download_server.url("a.mp3", "old"))
    row = await refreshed(row)
    assert (row.status, row.error_code) == (RecordingStatus.FAILED, "gone_at_provider")


async def test_fetch__delete_remote_only_after_the_verified_store(
    fetcher, fake, download_server, settings, monkeypatch
) -> None:
    settings.TELEPHONY_RECORDING_DELETE_REMOTE = True
    download_server.files["a.mp3"] = audio(SIZE)
    fake.add("rec-1", "a.mp3")
    row = await make_row("rec-1")
    real_store = rec.store_verified

    def broken_store(*a: Any) -> None:
        raise RecordingFetchFailed(reason="checksum_mismatch")

    monkeypatch.setattr(rec, "store_verified", broken_store)
    await fetcher.fetch(row.id, url=download_server.url("a.mp3"))
    assert fake.deletes == []  # not verified: Telnyx's copy is all there is
    assert (await refreshed(row)).remote_deleted_at is None

    monkeypatch.setattr(rec, "store_verified", real_store)
    await Recording.objects.filter(pk=row.pk).aupdate(lease_until=None)
    await fetcher.fetch(row.id, url=download_server.url("a.mp3"))
    row = await refreshed(row)
    assert row.status == RecordingStatus.STORED and fake.deletes == ["rec-1"]
    assert row.remote_deleted_at is not None


async def test_fetch__webhook_to_stored_file_through_an_in_process_worker(
    in_process_workers, key, call, download_server, storage_dir, settings
) -> None:
    """The whole road: signed webhook -> row -> ``recording.fetch`` on the layer -> worker."""
    settings.TELNYX_API_KEY, settings.TELNYX_BASE_URL = "KEY-unused", "http://127.0.0.1:9/v2"
    data = audio(SIZE)
    download_server.files["a.mp3"] = data
    await in_process_workers.start()
    body = event(
        "call.recording.saved",
        call,
        at=timezone.now(),
        recording_id="rec-e2e",
        channels="dual",
        recording_urls={"mp3": download_server.url("a.mp3")},
    )
    assert (await post(key, body)).status_code == 204

    async def stored() -> bool:
        return await Recording.objects.filter(status=RecordingStatus.STORED).aexists()

    await await_until(stored, timeout=10)
    row = await Recording.objects.aget()
    assert row.call_id == call.id and row.sha256 == sha(data)
    assert stored_files(storage_dir) == [storage_dir / row.storage_name]


async def test_fetch__a_malformed_link_fails_without_showing_it(fetcher, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    row = await make_row()
    result = await fetcher.fetch(row.id, url="http://[bad-host/r/a.mp3?token=secret")
    assert result["error"] == "connection_lost" and "secret" not in caplog.text
