"""One call recording: what was asked for, where its file is, and how it renders.

A recording is started by ``record_start`` or by Dial's ``record: record-from-answer``
(then it waits for the answer), captures the bridged media until ``record_stop`` or the
call's end, and then is ``completed``: listed by ``GET /recordings`` and downloadable
through signed URLs until deleted. Its shapes are the spec's ``RecordingResponseData``
and the ``call.recording.saved`` / ``call.recording.error`` webhook bodies.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devserver.sandbox.events import iso_us
from devserver.sandbox.store import Call, iso

if TYPE_CHECKING:
    from devserver.sandbox.recorder import Recorder

FORMATS = ("mp3", "wav")


@dataclass
class Recording:
    """A recording of one call.

    ``status``: pending (waiting for the answer) -> recording <-> paused -> completed, or
    failed (the ``recording_error`` fault), or canceled (never answered).
    """

    id: str
    call: Call
    format: str
    channels: str  # single | dual
    track: str  # both | inbound | outbound
    initiated_by: str  # StartCallRecordingAPI | OutboundAPI (record on Dial)
    created_at: datetime
    client_state: str | None = None
    max_length: int = 0  # seconds, 0: no limit
    status: str = "pending"
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_millis: int = 0
    path: Path | None = None
    size: int = 0
    error: bool = False  # fault: ends in call.recording.error, no file
    urls_expired: bool = False  # fault: the saved webhook's URLs are already expired
    recorder: Recorder | None = None

    @classmethod
    def create(cls, call: Call, now: datetime, **kw: Any) -> Recording:
        """A new recording of ``call``, with a fresh uuid."""
        return cls(id=str(uuid.uuid4()), call=call, created_at=now, **kw)

    @property
    def active(self) -> bool:
        """True from start (or waiting for the answer) until stopped."""
        return self.status in ("pending", "recording", "paused")

    @property
    def updated_at(self) -> datetime:
        """When it last changed: its end once completed."""
        return self.ended_at or self.started_at or self.created_at

    @property
    def file_channels(self) -> int:
        """Channels in the file: 2 for a dual recording of both tracks, else 1."""
        return 2 if self.channels == "dual" and self.track == "both" else 1

    @property
    def content_type(self) -> str:
        """The file's media type."""
        return "audio/mpeg" if self.format == "mp3" else "audio/wav"

    def render(self, urls: dict[str, str]) -> dict[str, Any]:
        """The ``RecordingResponseData`` schema, with ``download_urls`` given."""
        call = self.call
        data: dict[str, Any] = {
            "id": self.id,
            "record_type": "recording",
            "call_control_id": call.call_control_id,
            "call_leg_id": call.call_leg_id,
            "call_session_id": call.call_session_id,
            "connection_id": call.connection_id,
            "channels": self.channels,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "download_urls": urls,
            "duration_millis": self.duration_millis,
            "from": call.from_,
            "to": call.to,
            "initiated_by": self.initiated_by,
            "source": "call",
            "status": "completed",
        }
        if self.started_at is not None:
            data["recording_started_at"] = iso(self.started_at)
        if self.ended_at is not None:
            data["recording_ended_at"] = iso(self.ended_at)
        return data

    def event_payload(self, urls: dict[str, str | None] | None) -> dict[str, Any]:
        """The payload of ``call.recording.saved`` (with ``urls``) or ``.error`` (None)."""
        call = self.call
        payload: dict[str, Any] = {
            "call_control_id": call.call_control_id,
            "call_leg_id": call.call_leg_id,
            "call_session_id": call.call_session_id,
            "connection_id": call.connection_id,
        }
        if self.client_state is not None:
            payload["client_state"] = self.client_state
        if urls is None:
            payload["reason"] = "Internal server error"
            return payload
        payload.update(
            channels=self.channels,
            recording_id=self.id,
            recording_urls=urls,
            public_recording_urls={},
            recording_started_at=iso_us(self.started_at or self.created_at),
            recording_ended_at=iso_us(self.ended_at or self.created_at),
        )
        return payload
