"""The fetch against the real sandbox (``devserver/sandbox``): its signed download links,
Range answers and faults, and its recordings REST API through the real adapter."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pytest

from telephony import exceptions as exc
from telephony.models import Recording, RecordingStatus
from telephony.worker.adapter import TelnyxAdapter
from telephony.worker.breaker import CircuitBreaker
from telephony.worker.provider import RequestContext
from telephony.worker.recordings import RecordingFetcher

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


def ctx() -> RequestContext:
    return RequestContext(f"test-{time.monotonic_ns()}", time.time() + 10)


async def test_sandbox__cut_download_resumes_with_range_then_telnyx_copy_is_deleted(
    telnyx: Any, storage_dir: Path, settings: Any
) -> None:
    settings.TELEPHONY_RECORDING_DELETE_REMOTE = True
    adapter = TelnyxAdapter(
        api_key=telnyx.api_key, base_url=telnyx.base_url, breaker=CircuitBreaker()
    )
    fetcher = RecordingFetcher(adapter, worker_id="sandbox-test")
    try:
        dial = await adapter.dial(
            ctx(),
            connection_id=telnyx.call_connection_id,
            to="+12025550143",
            from_=telnyx.from_number,
            client_state="eA==",
        )
        made = telnyx.make_recording(dial.call_control_id, seconds=3, format="mp3")
        data = Path(made["path"]).read_bytes()  # the sandbox's file (gone once deleted)
        info = await adapter.get_recording(ctx(), made["id"])
        row = await Recording.objects.acreate(
            telnyx_recording_id=made["id"], format="mp3", call_leg_id=info.call_leg_id
        )
        telnyx.set_fault("DownloadRecording", download_cut_after=5000, count=1)

        first = await fetcher.fetch(row.id, url=info.download_urls["mp3"])
        assert first["error"] == "connection_lost"
        await Recording.objects.filter(pk=row.pk).aupdate(lease_until=None)  # backoff over
        second = await fetcher.fetch(row.id)  # no link: fresh ones from GET /recordings/{id}

        assert second["status"] == RecordingStatus.STORED
        row = await Recording.objects.aget(pk=row.pk)
        assert (row.size_bytes, row.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        assert (storage_dir / row.storage_name).read_bytes() == data
        served = [(d["range"], d["status"]) for d in telnyx.downloads()]
        assert served == [(None, 200), ("bytes=5000-", 206)]
        assert row.remote_deleted_at is not None
        with pytest.raises(exc.ProviderRejected):
            await adapter.get_recording(ctx(), made["id"])
    finally:
        await fetcher.aclose()
        await adapter.aclose()
