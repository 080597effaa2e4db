"""The adapter's recording operations: ``GET``/``DELETE /v2/recordings/{id}`` and the list.

A mixin of :class:`telephony.worker.adapter.TelnyxAdapter`, kept apart so the adapter's
call and credential operations stay readable. It does not import the SDK: it uses the
adapter's client and its deadline-bounded, breaker-guarded attempt loop (``_call``).
Download links are secrets: nothing here logs them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from telephony import exceptions as exc
from telephony.worker.provider import RecordingInfo, RequestContext

T = TypeVar("T")


class RecordingOperations:
    """Retrieve (fresh download links), list by call leg, and delete Telnyx's recordings."""

    _client: Any

    if TYPE_CHECKING:

        async def _call(
            self,
            ctx: RequestContext,
            op: str,
            fn: Callable[[float], Awaitable[T]],
            *,
            idempotent: bool,
        ) -> T: ...

        async def _delete(self, ctx: RequestContext, op: str, go: Any) -> bool: ...

    async def get_recording(self, ctx: RequestContext, recording_id: str) -> RecordingInfo:
        """One recording with fresh ``download_urls``; ``ProviderRejected`` with reason
        ``provider_not_found`` when Telnyx no longer has it."""

        async def go(timeout: float) -> Any:
            return await self._client.recordings.with_raw_response.retrieve(
                recording_id, extra_headers=ctx.headers(), timeout=timeout
            )

        raw = await self._call(ctx, "recording.get", go, idempotent=True)
        data = json.loads(raw.http_response.content).get("data")
        return recording_info(data)

    async def list_recordings(
        self, ctx: RequestContext, *, call_leg_id: str = "", call_session_id: str = ""
    ) -> list[RecordingInfo]:
        """The first page (up to 250) of the recordings of one call leg or session."""
        pairs = (("call_leg_id", call_leg_id), ("call_session_id", call_session_id))
        flt = {k: v for k, v in pairs if v}
        if not flt:
            raise exc.InvalidRequest("list_recordings needs call_leg_id or call_session_id.")

        async def go(timeout: float) -> Any:
            return await self._client.recordings.with_raw_response.list(
                filter=flt, page_size=250, extra_headers=ctx.headers(), timeout=timeout
            )

        raw = await self._call(ctx, "recording.list", go, idempotent=True)
        body = json.loads(raw.http_response.content)
        return [recording_info(item) for item in body.get("data") or []]

    async def delete_recording(self, ctx: RequestContext, recording_id: str) -> bool:
        """Delete Telnyx's copy; True if deleted now, False if it was already gone."""

        async def go(timeout: float) -> Any:
            return await self._client.recordings.with_raw_response.delete(
                recording_id, extra_headers=ctx.headers(), timeout=timeout
            )

        return await self._delete(ctx, "recording.delete", go)


def recording_info(data: Any) -> RecordingInfo:
    """A :class:`RecordingInfo` from the spec's ``RecordingResponseData`` (a JSON object)."""
    from telephony.worker.adapter import _parse_dt, _require  # a cycle at import time

    if not isinstance(data, dict):
        raise exc.ProviderUnavailable("Telnyx answer lacks data.", reason="malformed_response")
    urls = data.get("download_urls") or {}
    millis = data.get("duration_millis")
    return RecordingInfo(
        id=_require(data.get("id"), "recording id"),
        call_leg_id=str(data.get("call_leg_id") or ""),
        call_session_id=str(data.get("call_session_id") or ""),
        channels=str(data.get("channels") or ""),
        started_at=_parse_dt(data.get("recording_started_at")),
        ended_at=_parse_dt(data.get("recording_ended_at")),
        duration_millis=int(millis) if isinstance(millis, int | float) else None,
        download_urls={k: v for k, v in urls.items() if isinstance(v, str) and v}
        if isinstance(urls, dict)
        else {},
    )
