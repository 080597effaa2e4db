"""Recovering a recording fetch: a cut download, a worker that died or stalled, a row
its workers keep dying on, a server that ignores ranges, a remote delete that failed."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from telephony.exceptions import ProviderUnavailable
from telephony.models import Recording, RecordingStatus
from telephony.worker import recordings as rec
from telephony.worker.recording_download import spool_lock
from telephony.worker.recording_retention import REMOTE_RETRY, recording_hygiene
from telephony.worker.recordings import RecordingFetcher, storage_name
from tests.telephony.recording_helpers import (
    Clock,
    audio,
    make_row,
    refreshed,
    sha,
    spool_files,
    stored_files,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]

SIZE = 300_000


async def test_fetch__cut_off_download_resumes_with_range_to_the_same_sha256(
    fetcher, download_server, fake, storage_dir, settings, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    data = audio(SIZE)
    download_server.files["a.mp3"] = data
    download_server.cut_after = 100_000
    fake.add("rec-1", "a.mp3")
    row = await make_row("rec-1")

    first = await fetcher.fetch(row.id, url=download_server.url("a.mp3"))
    assert first["error"] == "connection_lost"
    row = await refreshed(row)
    assert row.status == RecordingStatus.PENDING and row.error_code == "connection_lost"
    assert spool_files(settings)[0].stat().st_size == 100_000  # every byte that came

    assert row.lease_until is not None
    fetcher.now.at = row.lease_until + timedelta(seconds=1)  # the backoff has passed
    result = await recording_hygiene(fetcher, now=fetcher.now.at)
    assert result["resumed"] == [row.id]
    await asyncio.gather(*fetcher.tasks)

    row = await refreshed(row)
    assert row.status == RecordingStatus.STORED and row.sha256 == sha(data)
    assert (
        download_server.requests[-1][1].startswith("bytes=")
        and download_server.requests[-1][1] != "bytes=0-"
    )
    assert stored_files(storage_dir) == [storage_dir / row.storage_name]
    assert row.attempts == 2 and spool_files(settings) == []
    assert "connection_lost" in caplog.text and "token=" not in caplog.text


async def test_fetch__worker_death_mid_download__lease_lapses_and_another_resumes(
    fake, download_server, storage_dir
) -> None:
    data = audio(SIZE)
    download_server.files["a.mp3"] = data
    fake.add("rec-1", "a.mp3")
    row = await make_row("rec-1")
    clock = Clock()
    dead = RecordingFetcher(fake, worker_id="dead", now=clock)
    assert await dead._claim(row.id) is not None  # it claimed, spooled part, then was killed
    spool = rec.spool_path(row)
    spool.parent.mkdir(parents=True)
    spool.write_bytes(data[:123_457])
    # Its leftover in the storage too (it died while saving): replaced, never a second file.
    (storage_dir / storage_name(row)).parent.mkdir(parents=True)
    (storage_dir / storage_name(row)).write_bytes(b"half a file")

    survivor = RecordingFetcher(fake, worker_id="alive", now=clock)
    try:
        assert (await recording_hygiene(survivor, now=clock.at))["resumed"] == []  # lease held
        clock.at += rec.LEASE + timedelta(seconds=1)
        assert (await recording_hygiene(survivor, now=clock.at))["resumed"] == [row.id]
        await asyncio.gather(*survivor.tasks)
    finally:
        await survivor.aclose()

    row = await refreshed(row)
    assert row.status == RecordingStatus.STORED and row.sha256 == sha(data)
    assert download_server.requests == [("fresh", "bytes=123457-")]
    assert stored_files(storage_dir) == [storage_dir / row.storage_name]
    assert (storage_dir / row.storage_name).read_bytes() == data


async def test_fetch__failed_remote_delete_is_retried_by_hygiene(
    fetcher, fake, download_server, settings
) -> None:
    settings.TELEPHONY_RECORDING_DELETE_REMOTE = True
    download_server.files["a.mp3"] = audio(SIZE)
    fake.add("rec-1", "a.mp3")
    fake.fail_deletes = ProviderUnavailable(reason="http_503")
    row = await make_row("rec-1")
    await fetcher.fetch(row.id, url=download_server.url("a.mp3"))
    row = await refreshed(row)
    assert row.status == RecordingStatus.STORED and row.remote_deleted_at is None

    assert (await recording_hygiene(fetcher, now=fetcher.now()))["remote_deleted"] == 0
    fake.fail_deletes = None
    # Tried again only after REMOTE_RETRY, not on every pass.
    assert (await recording_hygiene(fetcher, now=fetcher.now()))["remote_deleted"] == 0
    later = fetcher.now() + REMOTE_RETRY + timedelta(seconds=1)
    assert (await recording_hygiene(fetcher, now=later))["remote_deleted"] == 1
    row = await refreshed(row)
    assert fake.deletes == ["rec-1"] and row.remote_deleted_at is not None
    assert row.lease_until is None


async def test_fetch__server_ignoring_range_restarts_the_spool(
    fetcher, download_server, fake
) -> None:
    data = audio(SIZE)
    download_server.files["a.mp3"] = data
    download_server.ignore_range = True
    row = await make_row()
    spool = rec.spool_path(row)
    spool.parent.mkdir(parents=True)
    spool.write_bytes(b"x" * 5000)  # garbage from an earlier attempt
    await fetcher.fetch(row.id, url=download_server.url("a.mp3"))
    row = await refreshed(row)
    assert row.status == RecordingStatus.STORED and row.sha256 == sha(data)


async def test_hygiene__a_row_whose_workers_keep_dying_is_given_up(fetcher, fake) -> None:
    row = await make_row("rec-1", attempts=rec.MAX_ATTEMPTS)
    await Recording.objects.filter(pk=row.pk).aupdate(
        lease_until=fetcher.now() - timedelta(seconds=1)
    )
    assert (await recording_hygiene(fetcher, now=fetcher.now()))["resumed"] == []
    row = await refreshed(row)
    assert (row.status, row.error_code, row.lease_until) == ("failed", "gave_up", None)
    assert fake.gets == []


async def test_fetch__a_stalled_but_alive_holder_keeps_its_spool(
    fetcher, fake, download_server, settings
) -> None:
    """Its lease lapsed, but it still holds the spool: the next claimant backs off rather
    than append to the same file (the kernel frees the lock when the holder dies)."""
    download_server.files["a.mp3"] = audio(SIZE)
    row = await make_row()
    spool = rec.spool_path(row)
    spool.parent.mkdir(parents=True)
    spool.write_bytes(b"partial")
    with spool_lock(spool):  # the stalled worker
        result = await fetcher.fetch(row.id, url=download_server.url("a.mp3"))
    assert result["error"] == "spool_busy" and download_server.requests == []
    assert spool.read_bytes() == b"partial"
    assert (await refreshed(row)).status == RecordingStatus.PENDING
