"""Retention: the hygiene pass and ``manage.py purge_recordings`` delete Telnyx's copy, our
file and the row; a storage error leaves the row and the file as they were."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from telephony.exceptions import ProviderUnavailable
from telephony.management.commands import purge_recordings
from telephony.models import Recording, RecordingStatus, ServiceEvent
from telephony.worker import recording_retention as retention
from telephony.worker.recordings import RecordingFetcher
from tests.telephony.recording_helpers import (
    FakeRecordingsAdapter,
    make_row,
    stored_files,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]


async def stored_row(root: Path, telnyx_id: str, *, days_old: float, **kw: Any) -> Recording:
    row = await make_row(
        telnyx_id, created_at=timezone.now() - timedelta(days=days_old), status="stored", **kw
    )
    name = f"2030/01/{row.id}.mp3"
    (root / "2030/01").mkdir(parents=True, exist_ok=True)
    (root / name).write_bytes(b"audio")
    await Recording.objects.filter(pk=row.pk).aupdate(storage_name=name)
    return await Recording.objects.aget(pk=row.pk)


async def test_hygiene__retention_deletes_remote_copy_file_and_row(
    fake, storage_dir, settings
) -> None:
    settings.TELEPHONY_RECORDING_RETENTION_DAYS = 30
    old = await stored_row(storage_dir, "rec-old", days_old=31)
    young = await stored_row(storage_dir, "rec-young", days_old=29)
    gone = await stored_row(storage_dir, "rec-gone", days_old=40, remote_deleted_at=timezone.now())
    fake.add("rec-old", "x")
    fetcher = RecordingFetcher(fake, worker_id="w1")

    result = await retention.recording_hygiene(fetcher)

    assert [i.outcome for i in result["purged"].items] == ["deleted", "deleted"]
    assert fake.deletes == ["rec-old"]  # rec-gone's copy was deleted already
    assert [r.pk async for r in Recording.objects.all()] == [young.pk]
    assert stored_files(storage_dir) == [storage_dir / young.storage_name]
    assert old.pk != gone.pk


async def test_hygiene__storage_error_leaves_row_and_file_and_is_reported(
    fake, storage_dir, settings, monkeypatch
) -> None:
    settings.TELEPHONY_RECORDING_RETENTION_DAYS = 1
    row = await stored_row(storage_dir, "rec-1", days_old=2, remote_deleted_at=timezone.now())

    def broken(name: str) -> None:
        raise PermissionError("read-only file system")

    monkeypatch.setattr(retention, "_delete_file", broken)
    fetcher = RecordingFetcher(fake, worker_id="w1")
    result = await retention.recording_hygiene(fetcher)

    item = result["purged"].items[0]
    assert item.outcome == "failed" and "PermissionError" in item.error
    left = await Recording.objects.aget(pk=row.pk)
    assert left.status == RecordingStatus.STORED and left.lease_until is None
    assert (storage_dir / row.storage_name).read_bytes() == b"audio"
    event = await ServiceEvent.objects.aget(kind="recordings_purge_failed")
    assert event.data["failures"][0]["id"] == str(row.pk)


async def test_hygiene__failed_remote_delete_keeps_everything(fake, storage_dir, settings) -> None:
    settings.TELEPHONY_RECORDING_RETENTION_DAYS = 1
    row = await stored_row(storage_dir, "rec-1", days_old=2)
    fake.add("rec-1", "x")
    fake.fail_deletes = ProviderUnavailable(reason="http_503")
    fetcher = RecordingFetcher(fake, worker_id="w1")
    result = await retention.recording_hygiene(fetcher)
    assert "http_503" in result["purged"].items[0].error
    assert await Recording.objects.filter(pk=row.pk).aexists()
    assert stored_files(storage_dir) == [storage_dir / row.storage_name]


async def test_hygiene__a_row_being_fetched_is_left_alone(fake, storage_dir, settings) -> None:
    settings.TELEPHONY_RECORDING_RETENTION_DAYS = 1
    row = await make_row("rec-1", created_at=timezone.now() - timedelta(days=3))
    await Recording.objects.filter(pk=row.pk).aupdate(
        lease_until=timezone.now() + timedelta(minutes=1)
    )
    fetcher = RecordingFetcher(fake, worker_id="w1")
    result = await retention.recording_hygiene(fetcher)
    assert [i.outcome for i in result["purged"].items] == ["busy"]
    assert await Recording.objects.filter(pk=row.pk).aexists()


async def test_hygiene__without_retention_keeps_everything(fake, storage_dir) -> None:
    await stored_row(storage_dir, "rec-1", days_old=3650)
    fetcher = RecordingFetcher(fake, worker_id="w1")
    assert (await retention.recording_hygiene(fetcher))["purged"] is None
    assert await Recording.objects.acount() == 1


# -- the command ------------------------------------------------------------------------


make_stored = async_to_sync(stored_row)


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("purge_recordings", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def command_adapter(fake, monkeypatch) -> FakeRecordingsAdapter:
    monkeypatch.setattr(purge_recordings, "make_adapter", lambda: fake)
    return fake


def test_purge__dry_run_lists_and_deletes_nothing(command_adapter, storage_dir) -> None:
    old = make_stored(storage_dir, "rec-old", days_old=10)
    make_stored(storage_dir, "rec-new", days_old=1)
    command_adapter.add("rec-old", "x")
    out, _ = run("--dry-run", "--older-than", "7d")
    assert f"would delete  {old.pk}" in out and "rec-new" not in out
    assert "Dry run: 1 recording(s)" in out
    assert Recording.objects.count() == 2 and command_adapter.deletes == []
    assert len(stored_files(storage_dir)) == 2


def test_purge__deletes_and_exits_zero(command_adapter, storage_dir) -> None:
    make_stored(storage_dir, "rec-old", days_old=10)
    keep = make_stored(storage_dir, "rec-new", days_old=1)
    command_adapter.add("rec-old", "x")
    out, _ = run("--older-than", "1w")
    assert "deleted 1, skipped 0, failed 0" in out
    assert command_adapter.deletes == ["rec-old"]
    assert [r.pk for r in Recording.objects.all()] == [keep.pk]
    assert stored_files(storage_dir) == [storage_dir / keep.storage_name]


def test_purge__storage_error_exits_one_with_a_line_per_failure(
    command_adapter, storage_dir, monkeypatch
) -> None:
    rows = [
        make_stored(storage_dir, f"rec-{i}", days_old=10, remote_deleted_at=timezone.now())
        for i in range(2)
    ]
    monkeypatch.setattr(retention, "_delete_file", lambda name: 1 / 0)
    err = StringIO()
    with pytest.raises(CommandError) as info:
        call_command("purge_recordings", "--older-than", "1d", stdout=StringIO(), stderr=err)
    assert info.value.returncode == 1
    lines = [line for line in err.getvalue().splitlines() if line.startswith("FAILED")]
    assert len(lines) == 2 and all("ZeroDivisionError" in line for line in lines)
    assert Recording.objects.count() == 2
    assert sorted(stored_files(storage_dir)) == sorted(storage_dir / r.storage_name for r in rows)


def test_purge__without_api_key_fails_rows_with_a_remote_copy(
    storage_dir, settings, monkeypatch
) -> None:
    settings.TELNYX_API_KEY = ""
    make_stored(storage_dir, "rec-1", days_old=10)
    with pytest.raises(CommandError) as info:
        call_command("purge_recordings", "--older-than", "1d", stdout=StringIO(), stderr=StringIO())
    assert info.value.returncode == 1 and Recording.objects.count() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [(("--older-than", "soon"), "--older-than"), ((), "TELEPHONY_RECORDING_RETENTION_DAYS")],
)
def test_purge__bad_usage_exits_two(args, message, storage_dir) -> None:
    with pytest.raises(CommandError) as info:
        run(*args)
    assert info.value.returncode == 2 and message in str(info.value)
