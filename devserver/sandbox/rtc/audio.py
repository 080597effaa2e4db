"""The sandbox's audio: ringback, the simulated customer, and what the customer hears.

Pure numpy, no network: :class:`Conversation` is fed 20 ms frames of the agent's
microphone (as the sandbox's WebRTC peer decodes them) and produces the frames the agent
hears. Before the customer answers that is a US ringback (440 + 480 Hz, 2 s on, 4 s off);
once the customer leg is bridged it is the customer's test tone mixed with the agent's own
voice echoed ``echo_delay`` seconds later, so a person trying ``make run`` hears themselves
and a test can still find the tone (the tone is louder than a quiet echo). On hold both
directions are silent. :class:`Meter` keeps the last second of a signal and reports its
dominant frequency (FFT) and RMS level, which the control API exposes.
"""

from __future__ import annotations

import collections
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

RATE = 48000
FRAME = 960  # 20 ms at 48 kHz
FULL_SCALE = 32767
Samples = npt.NDArray[np.int16]


@dataclass
class AudioSettings:
    """What the simulated customer plays; changeable via ``POST /_sandbox/rtc``."""

    tone_hz: float = 1000.0
    tone_level: float = 0.25  # peak, fraction of full scale
    echo_delay: float = 1.0  # seconds
    echo_gain: float = 0.5
    ringback: bool = True
    ringback_level: float = 0.1

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)

    def updated(self, data: dict[str, Any]) -> AudioSettings:
        """A copy with control-endpoint changes applied. Raises ValueError."""
        current = self.as_dict()
        for key, value in data.items():
            if key not in current:
                raise ValueError(f"unknown key {key!r}")
            if key == "ringback":
                if not isinstance(value, bool):
                    raise ValueError("ringback must be a boolean")
            elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"invalid value for {key}: {value!r}")
            elif key.endswith("_level") and value > 1:
                raise ValueError(f"{key} must be between 0 and 1")
            elif key == "tone_hz" and not 20 <= value <= RATE / 2:
                raise ValueError("tone_hz must be between 20 and 24000")
            current[key] = value
        return AudioSettings(**current)


class Meter:
    """The last second of a signal: dominant frequency, RMS, and how much arrived."""

    def __init__(self, seconds: float = 1.0) -> None:
        self._size = int(RATE * seconds)
        self._buf = np.zeros(self._size, dtype=np.int16)
        self._filled = 0
        self.frames = 0

    def add(self, samples: Samples) -> None:
        """Append samples (the oldest fall out)."""
        n = len(samples)
        if n >= self._size:
            self._buf[:] = samples[-self._size :]
        else:
            self._buf = np.roll(self._buf, -n)
            self._buf[-n:] = samples
        self._filled = min(self._size, self._filled + n)
        self.frames += 1

    def report(self) -> dict[str, Any]:
        """``{"dominant_hz", "rms", "rms_dbfs", "frames", "seconds"}`` over the window."""
        data = self._buf[self._size - self._filled :].astype(np.float64) / FULL_SCALE
        out: dict[str, Any] = {"frames": self.frames, "seconds": round(self._filled / RATE, 3)}
        rms = float(np.sqrt(np.mean(data**2))) if len(data) else 0.0
        out["rms"] = round(rms, 5)
        out["rms_dbfs"] = round(float(20 * np.log10(rms)), 1) if rms > 0 else None
        out["dominant_hz"] = dominant_hz(data) if rms > 1e-4 else None
        return out


def dominant_hz(data: npt.NDArray[np.float64]) -> float | None:
    """The strongest frequency above 50 Hz (Hann window, parabolic peak interpolation)."""
    if len(data) < 256:
        return None
    spectrum = np.abs(np.fft.rfft(data * np.hanning(len(data))))
    resolution = RATE / len(data)
    low = int(50 / resolution) + 1
    peak = low + int(np.argmax(spectrum[low:-1]))
    a, b, c = spectrum[peak - 1], spectrum[peak], spectrum[peak + 1]
    denom = a - 2 * b + c
    shift = 0.5 * (a - c) / denom if denom else 0.0
    return round(float((peak + shift) * resolution), 1)


def tone(freqs: tuple[float, ...], start: int, n: int, level: float) -> Samples:
    """``n`` samples of a sum of sines from sample index ``start`` (phase-continuous)."""
    t = (np.arange(start, start + n, dtype=np.float64)) / RATE
    wave = sum(np.sin(2 * np.pi * f * t) for f in freqs) / max(len(freqs), 1)
    return np.asarray(np.clip(wave * level, -1, 1) * FULL_SCALE, dtype=np.int16)


class Tap(Protocol):
    """Who else gets the leg's audio as it flows (a call recording)."""

    def agent(self, samples: Samples) -> None:
        """A frame of the agent's microphone."""

    def customer(self, samples: Samples) -> None:
        """A frame of what the customer sends to the agent."""


class Conversation:
    """One agent leg's audio: what the agent hears, and what the customer hears."""

    def __init__(self, settings: AudioSettings) -> None:
        self.settings = settings
        self._bridged = False
        self.was_bridged = False  # after an unbridge the agent hears silence, not ringback
        self.held = False
        self.stopped = False  # fault: no more RTP towards the agent
        self.dtmf = ""
        self.from_agent = Meter()  # the agent's microphone as received
        self.customer_hears = Meter()  # what is passed on to the customer
        self._clock = 0  # samples sent to the agent
        self._echo: collections.deque[Samples] = collections.deque()
        self._echo_len = 0
        self.taps: list[Tap] = []  # recordings of this leg

    @property
    def bridged(self) -> bool:
        """True while the customer leg is bridged to this agent leg."""
        return self._bridged

    @bridged.setter
    def bridged(self, value: bool) -> None:
        self._bridged = value
        self.was_bridged = self.was_bridged or value

    @property
    def source(self) -> str:
        """What the agent currently hears."""
        if self.stopped:
            return "stopped"
        if self.held:
            return "held"
        if self.bridged:
            return "customer"
        return "ringback" if self.settings.ringback and not self.was_bridged else "silence"

    def agent_frame(self, samples: Samples) -> None:
        """A frame of the agent's microphone (48 kHz mono) arrived."""
        self.from_agent.add(samples)
        for tap in self.taps:
            tap.agent(samples)
        passed = self.bridged and not self.held
        heard = samples if passed else np.zeros(len(samples), dtype=np.int16)
        self.customer_hears.add(heard)
        if passed:
            self._echo.append(samples)
            self._echo_len += len(samples)
            limit = int(RATE * (self.settings.echo_delay + 0.5))
            while self._echo_len > limit:
                self._echo_len -= len(self._echo.popleft())

    def _echoed(self, n: int) -> Samples:
        delay = int(RATE * self.settings.echo_delay)
        if self._echo_len < delay + n:
            return np.zeros(n, dtype=np.int16)
        parts, got = [], 0
        while got < n:
            head = self._echo[0]
            take = min(n - got, len(head))
            parts.append(head[:take])
            got += take
            if take == len(head):
                self._echo.popleft()
            else:
                self._echo[0] = head[take:]
            self._echo_len -= take
        return np.concatenate(parts)

    def next_frame(self, n: int = FRAME) -> Samples | None:
        """The next ``n`` samples for the agent; None while media is stopped."""
        if self.stopped:
            return None
        frame = self._next(n)
        for tap in self.taps:
            tap.customer(frame)
        return frame

    def _next(self, n: int) -> Samples:
        start, self._clock = self._clock, self._clock + n
        s = self.settings
        if self.held:
            return np.zeros(n, dtype=np.int16)
        if self.bridged:
            mixed = tone((s.tone_hz,), start, n, s.tone_level).astype(np.int32)
            mixed += (self._echoed(n).astype(np.float64) * s.echo_gain).astype(np.int32)
            return np.asarray(np.clip(mixed, -FULL_SCALE, FULL_SCALE), dtype=np.int16)
        if s.ringback and not self.was_bridged and (start % (6 * RATE)) < 2 * RATE:
            return tone((440.0, 480.0), start, n, s.ringback_level)
        return np.zeros(n, dtype=np.int16)

    def report(self) -> dict[str, Any]:
        """Per-call media state for the control API."""
        return {
            "source": self.source,
            "bridged": self.bridged,
            "held": self.held,
            "media_stopped": self.stopped,
            "dtmf": self.dtmf,
            "sent_seconds": round(self._clock / RATE, 2),
            "from_agent": self.from_agent.report(),
            "customer_hears": self.customer_hears.report(),
        }
