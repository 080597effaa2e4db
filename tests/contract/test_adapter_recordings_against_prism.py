"""The adapter's recording operations against Prism mocking Telnyx's OpenAPI document:
``GET``/``DELETE /recordings/{recording_id}`` and ``GET /recordings`` by call leg."""

from __future__ import annotations

import pytest

from telephony import exceptions as exc
from telephony.worker.adapter import TelnyxAdapter
from tests.contract import test_adapter_against_prism as base
from tests.contract.conftest import Spec
from tests.contract.test_adapter_against_prism import Recorder, ctx, when

pytestmark = base.pytestmark

adapter, recorder = base.adapter, base.recorder  # the same fixtures
RECORDING_ID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
LEG_ID = "428c31b6-7af4-4bcb-b7f5-5013ef9657c1"


async def test_adapter__get_recording__matches_spec(
    adapter: TelnyxAdapter, recorder: Recorder, spec: Spec
) -> None:
    info, ex = await recorder.call(spec, "GetRecording", adapter.get_recording(ctx(), RECORDING_ID))
    assert ex.status == 200 and ex.path.endswith(f"/recordings/{RECORDING_ID}")
    data = ex.json()["data"]
    assert info.id == data["id"] and info.call_leg_id == data["call_leg_id"]
    assert info.download_urls == {k: v for k, v in data["download_urls"].items() if v}
    assert info.duration_millis == data["duration_millis"]
    assert info.started_at == when(data["recording_started_at"])


async def test_adapter__list_recordings_by_leg__matches_spec(
    adapter: TelnyxAdapter, recorder: Recorder, spec: Spec
) -> None:
    found, ex = await recorder.call(
        spec, "GetRecordings", adapter.list_recordings(ctx(), call_leg_id=LEG_ID)
    )
    assert ex.status == 200
    assert ("filter[call_leg_id]", LEG_ID) in ex.query
    assert [r.id for r in found] == [item["id"] for item in ex.json()["data"]]


async def test_adapter__delete_recording__matches_spec(
    adapter: TelnyxAdapter, recorder: Recorder, spec: Spec
) -> None:
    deleted, ex = await recorder.call(
        spec, "DeleteRecording", adapter.delete_recording(ctx(), RECORDING_ID)
    )
    assert deleted is True and ex.status == 200


async def test_adapter__delete_recording__treats_the_specs_404_as_already_gone(
    adapter: TelnyxAdapter, recorder: Recorder, spec: Spec
) -> None:
    recorder.prefer_code = 404
    assert await adapter.delete_recording(ctx(), RECORDING_ID) is False
    assert recorder.only(spec, "DeleteRecording").status == 404


async def test_adapter__get_recording__404_is_provider_not_found(
    adapter: TelnyxAdapter, recorder: Recorder, spec: Spec
) -> None:
    recorder.prefer_code = 404
    with pytest.raises(exc.ProviderRejected) as info:
        await adapter.get_recording(ctx(), RECORDING_ID)
    assert info.value.reason == "provider_not_found"
    assert recorder.only(spec, "GetRecording").status == 404
