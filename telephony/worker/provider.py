"""What the service knows of the provider, free of the SDK: request context and results.

The adapter turns SDK responses into these plain dataclasses, so nothing else ever
imports ``telnyx``, and the worker, reconciler and cleanup can be typed against them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class RequestContext:
    """What every provider call needs to know about the request it serves."""

    request_id: str
    deadline: float  # epoch seconds

    def remaining(self, clock: Callable[[], float] = time.time) -> float:
        return self.deadline - clock()

    def headers(self) -> dict[str, str]:
        # Telnyx ignores these; the sandbox logs them, which is how tests prove
        # at-most-once and never-after-deadline execution.
        return {
            "X-Request-Id": self.request_id,
            "X-Request-Deadline": str(int(self.deadline * 1000)),
        }


@dataclass(frozen=True)
class CredentialInfo:
    id: str
    sip_username: str
    name: str
    tag: str
    expires_at: datetime | None
    created_at: datetime | None
    expired: bool


@dataclass(frozen=True)
class DialResult:
    call_control_id: str
    call_session_id: str
    call_leg_id: str


@dataclass(frozen=True)
class CallInfo:
    call_control_id: str
    is_alive: bool
    call_duration: int | None


@dataclass(frozen=True)
class RecordingInfo:
    """A recording as ``GET /v2/recordings/{id}`` describes it; ``download_urls`` are
    fresh, short-lived links by format (secrets: never logged)."""

    id: str
    call_leg_id: str
    call_session_id: str
    channels: str
    started_at: datetime | None
    ended_at: datetime | None
    duration_millis: int | None
    download_urls: dict[str, str]


class RecordingsApi(Protocol):
    """What the recording pipeline needs of Telnyx (the adapter; a fake in tests)."""

    async def get_recording(self, ctx: RequestContext, recording_id: str) -> RecordingInfo: ...

    async def list_recordings(
        self, ctx: RequestContext, *, call_leg_id: str = "", call_session_id: str = ""
    ) -> list[RecordingInfo]: ...

    async def delete_recording(self, ctx: RequestContext, recording_id: str) -> bool: ...
