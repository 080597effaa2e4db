"""Telnyx's record actions on a live call, part of :class:`~telephony.worker.adapter.TelnyxAdapter`.

Kept apart from the adapter module (which alone imports the SDK) to keep both short; the
methods run on the adapter's SDK client, through its deadline-bounded attempt loop and
circuit breaker, and map errors the same way. Both actions take a ``command_id``, which
Telnyx deduplicates per call, so they are retried safely.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from telephony.worker.provider import RequestContext


class RecordActions:
    """``record_start`` / ``record_stop`` (``/calls/{call_control_id}/actions/...``)."""

    _client: Any
    _call: Callable[..., Awaitable[Any]]

    async def start_recording(
        self,
        ctx: RequestContext,
        call_control_id: str,
        *,
        fmt: str,
        channels: str = "dual",
        play_beep: bool = False,
        command_id: str = "",
    ) -> None:
        """Start recording the call (and the leg bridged to it) in ``fmt`` (mp3 or wav)."""

        async def go(timeout: float) -> Any:
            return await self._client.calls.actions.start_recording(
                call_control_id,
                channels=channels,
                format=fmt,
                play_beep=play_beep,
                command_id=command_id or ctx.request_id,
                extra_headers=ctx.headers(),
                timeout=timeout,
            )

        await self._call(ctx, "call.record_start", go, idempotent=True)

    async def stop_recording(
        self, ctx: RequestContext, call_control_id: str, *, command_id: str = ""
    ) -> None:
        """Stop recording the call; Telnyx then sends ``call.recording.saved``."""

        async def go(timeout: float) -> Any:
            return await self._client.calls.actions.stop_recording(
                call_control_id,
                command_id=command_id or ctx.request_id,
                extra_headers=ctx.headers(),
                timeout=timeout,
            )

        await self._call(ctx, "call.record_stop", go, idempotent=True)
