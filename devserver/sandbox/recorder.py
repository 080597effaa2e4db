"""Capture of a call's two audio streams into a real file: WAV (stdlib ``wave``) or MP3.

The agent's microphone (as the sandbox's WebRTC peer decodes it) and what the simulated
customer sends reach a :class:`Recorder` as 48 kHz mono int16 frames, each at its own
pace. The recorder writes on a wall clock: every :meth:`Recorder.flush` appends the
samples due since the last one, ``latency`` behind real time so late frames still fit,
taking each channel's buffered samples and padding a channel that has none with
silence. So the file is exactly as long as the recording ran (pauses left out) and a
call without media still gets a valid, silent file. Nothing is held beyond a couple of
seconds of audio: it streams to disk.

Channels, as the spec says of ``dual`` ("the first leg on channel A, and the rest on
channel B"): channel 1 (left) is the agent, the WebRTC leg dialled first; channel 2
(right) is the customer. ``single`` mixes both into one channel; ``recording_track``
``inbound`` keeps only the agent, ``outbound`` only the customer (mono, as the spec says).

WAV is 48 kHz. MP3 is encoded by PyAV's ``libmp3lame`` (PyAV comes with aiortc; its
wheels carry LAME) at 16 kHz, wideband telephone audio: at 48 kHz LAME ran at only ~6x
real time on the shared test machine, at 16 kHz ~17x.
"""

from __future__ import annotations

import time
import wave
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from devserver.sandbox.rtc.audio import FULL_SCALE, RATE, Samples

KEEP = 2 * RATE  # at most this many samples wait in a channel's buffer
MP3_RATE = 16000  # wideband telephony; LAME at 48 kHz costs a sixth of a core per call here


class _Buffer:
    """One channel's samples waiting to be written (the oldest dropped past ``KEEP``)."""

    def __init__(self) -> None:
        self._parts: deque[Samples] = deque()
        self._len = 0

    def push(self, samples: Samples) -> None:
        self._parts.append(samples)
        self._len += len(samples)
        while self._len > KEEP:
            self._len -= len(self._parts.popleft())

    def take(self, n: int) -> Samples:
        """``n`` samples, silence where the buffer runs short."""
        out = np.zeros(n, dtype=np.int16)
        got = 0
        while got < n and self._parts:
            head = self._parts[0]
            k = min(n - got, len(head))
            out[got : got + k] = head[:k]
            got += k
            if k == len(head):
                self._parts.popleft()
            else:
                self._parts[0] = head[k:]
            self._len -= k
        return out

    def clear(self) -> None:
        self._parts.clear()
        self._len = 0


class _Writer(Protocol):
    def write(self, block: np.ndarray) -> None: ...  # (samples, channels) int16

    def close(self) -> None: ...


class _Wav:
    def __init__(self, path: Path, channels: int) -> None:
        self._file = wave.open(str(path), "wb")
        self._file.setnchannels(channels)
        self._file.setsampwidth(2)
        self._file.setframerate(RATE)

    def write(self, block: np.ndarray) -> None:
        self._file.writeframes(np.ascontiguousarray(block, dtype="<i2").tobytes())

    def close(self) -> None:
        self._file.close()


class _Mp3:
    def __init__(self, path: Path, channels: int) -> None:
        import av

        self._layout = "stereo" if channels == 2 else "mono"
        self._container = av.open(str(path), "w", format="mp3")
        # PyAV resamples the 48 kHz frames to the encoder's rate
        self._stream = self._container.add_stream("libmp3lame", rate=MP3_RATE, layout=self._layout)
        self._pts = 0

    def write(self, block: np.ndarray) -> None:
        import av

        planar = np.ascontiguousarray(block.T, dtype=np.int16)
        frame = av.AudioFrame.from_ndarray(planar, format="s16p", layout=self._layout)
        frame.sample_rate, frame.pts = RATE, self._pts
        self._pts += block.shape[0]
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()


class Recorder:
    """Writes one recording; fed by a :class:`~.rtc.audio.Conversation` as its tap."""

    def __init__(
        self,
        path: Path,
        *,
        fmt: str,
        channels: str = "dual",
        track: str = "both",
        clock: Callable[[], float] = time.monotonic,
        latency: float = 0.2,
        max_seconds: float = 0,
    ) -> None:
        self.track = track
        self.max_samples = round(max_seconds * RATE) if max_seconds > 0 else None
        self.nchannels = 2 if channels == "dual" and track == "both" else 1
        self.latency = latency
        self._clock = clock
        self._t0 = clock()
        self._paused_at: float | None = None
        self._paused_total = 0.0
        self._written = 0
        self._agent, self._customer = _Buffer(), _Buffer()
        writer: type[_Wav] | type[_Mp3] = _Mp3 if fmt == "mp3" else _Wav
        self._writer: _Writer | None = writer(path, self.nchannels)

    @property
    def seconds(self) -> float:
        """Audio written so far, in seconds."""
        return self._written / RATE

    @property
    def full(self) -> bool:
        """True once ``max_seconds`` of audio are due (the recording must end)."""
        if self.max_samples is None:
            return False
        now = self._paused_at if self._paused_at is not None else self._clock()
        return (now - self._t0 - self._paused_total) * RATE >= self.max_samples

    def agent(self, samples: Samples) -> None:
        """A frame of the agent's microphone."""
        if self._paused_at is None and self._writer is not None:
            self._agent.push(samples)

    def customer(self, samples: Samples) -> None:
        """A frame of what the customer sends (what the agent hears)."""
        if self._paused_at is None and self._writer is not None:
            self._customer.push(samples)

    def flush(self, latency: float | None = None) -> None:
        """Append every sample due up to ``latency`` seconds ago (1 s blocks at most)."""
        if self._writer is None:
            return
        now = self._paused_at if self._paused_at is not None else self._clock()
        lag = self.latency if latency is None else latency
        due = round((now - self._t0 - self._paused_total - lag) * RATE) - self._written
        if self.max_samples is not None:
            due = min(due, self.max_samples - self._written)
        while due > 0:
            n = min(due, RATE)
            self._writer.write(self._block(self._agent.take(n), self._customer.take(n)))
            self._written += n
            due -= n

    def _block(self, agent: Samples, customer: Samples) -> np.ndarray:
        if self.track == "inbound":
            return agent.reshape(-1, 1)
        if self.track == "outbound":
            return customer.reshape(-1, 1)
        if self.nchannels == 2:
            return np.stack([agent, customer], axis=1)
        mixed = agent.astype(np.int32) + customer.astype(np.int32)
        return np.clip(mixed, -FULL_SCALE, FULL_SCALE).astype(np.int16).reshape(-1, 1)

    def pause(self) -> None:
        """Stop capturing; the time until :meth:`resume` is left out of the file."""
        if self._paused_at is None:
            self.flush(latency=0)
            self._paused_at = self._clock()
            self._agent.clear()
            self._customer.clear()

    def resume(self) -> None:
        """Capture again."""
        if self._paused_at is not None:
            self._paused_total += self._clock() - self._paused_at
            self._paused_at = None

    def close(self) -> float:
        """Write what is due, finish the file; returns its duration in seconds (idempotent)."""
        if self._writer is not None:
            self.flush(latency=0)
            writer, self._writer = self._writer, None
            writer.close()
        return self.seconds
