"""Recordings made up on demand, for tests and benchmarks that need a big or long file.

A real recording takes as long as the call; a 100 MB WAV is nine minutes of stereo. The
control endpoint ``POST /_sandbox/recordings`` makes one at once instead, for an existing
call: ``seconds`` of the agent's test tone on channel 1 and the customer's on channel 2,
written through the same :class:`~.recorder.Recorder` (in a thread, on a clock of its
own), then finished like any recording: ``call.recording.saved`` (or the faults'
outcome), listed by ``GET /v2/recordings``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from devserver.sandbox.recorder import Recorder
from devserver.sandbox.recording import FORMATS, Recording
from devserver.sandbox.recordings import Recordings
from devserver.sandbox.rtc.audio import RATE, tone

MAX_SECONDS = 4 * 3600


@dataclass(frozen=True)
class SynthRequest:
    """What to make; ``from_dict`` checks control-endpoint JSON (ValueError)."""

    call_control_id: str
    seconds: float = 10.0
    format: str = "wav"
    channels: str = "dual"
    agent_hz: float = 600.0
    customer_hz: float = 1000.0

    @classmethod
    def from_dict(cls, data: Any) -> SynthRequest:
        """Build from JSON. Raises ValueError."""
        if not isinstance(data, dict) or not isinstance(data.get("call_control_id"), str):
            raise ValueError('expected {"call_control_id": str, ...}')
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
        req = cls(**data)
        if req.format not in FORMATS or req.channels not in ("single", "dual"):
            raise ValueError("format must be mp3 or wav, channels single or dual")
        for key in ("seconds", "agent_hz", "customer_hz"):
            value = getattr(req, key)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{key} must be a positive number")
        if req.seconds > MAX_SECONDS or max(req.agent_hz, req.customer_hz) >= RATE / 2:
            raise ValueError(f"seconds at most {MAX_SECONDS}, tones below {RATE // 2} Hz")
        return req


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _write(recorder: Recorder, clock: _Clock, req: SynthRequest) -> None:
    total, done = round(req.seconds * RATE), 0
    while done < total:
        n = min(RATE, total - done)
        recorder.agent(tone((req.agent_hz,), done, n, 0.3))
        recorder.customer(tone((req.customer_hz,), done, n, 0.3))
        done += n
        clock.now = done / RATE
        recorder.flush()


async def synthesize(recordings: Recordings, req: SynthRequest) -> Recording:
    """Make a completed recording of ``req.seconds`` for a known call. Raises KeyError."""
    call = recordings.store.calls[req.call_control_id]
    now = recordings.store.clock()
    rec = Recording.create(
        call,
        now - timedelta(seconds=req.seconds),
        format=req.format,
        channels=req.channels,
        track="both",
        initiated_by="StartCallRecordingAPI",
        client_state=call.client_state,
    )
    recordings.directory.mkdir(parents=True, exist_ok=True)
    rec.path = recordings.directory / f"{rec.id}.{rec.format}"
    clock = _Clock()
    recorder = Recorder(rec.path, fmt=req.format, channels=req.channels, clock=clock, latency=0)
    rec.status, rec.started_at, rec.recorder = "recording", rec.created_at, recorder
    await asyncio.to_thread(_write, recorder, clock, req)
    recordings.items[rec.id] = rec  # only now: the call's hangup must not finish it mid-write
    recordings.finish(rec)
    return rec
