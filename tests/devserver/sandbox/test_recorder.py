"""The recorder writes real files: the agent on the left, the customer on the right.

Driven with a fake clock and synthetic tones (the agent 600 Hz, the customer 1000 Hz),
then read back (``wave``; PyAV for MP3) and checked by frequency with ``dominant_hz``.
"""

from __future__ import annotations

import wave
from pathlib import Path

import av
import numpy as np
import pytest

from devserver.sandbox.recorder import MP3_RATE, Recorder
from devserver.sandbox.rtc.audio import FRAME, RATE, AudioSettings, Conversation, dominant_hz, tone

AGENT_HZ, CUSTOMER_HZ = 600.0, 1000.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def feed(rec: Recorder, clock: FakeClock, seconds: float, *, agent: bool = True) -> None:
    """``seconds`` of both tones in 20 ms frames, the clock moving with them."""
    for i in range(int(seconds * RATE / FRAME)):
        if agent:
            rec.agent(tone((AGENT_HZ,), i * FRAME, FRAME, 0.3))
        rec.customer(tone((CUSTOMER_HZ,), i * FRAME, FRAME, 0.3))
        clock.now += FRAME / RATE
        if i % 5 == 0:
            rec.flush()


def read(path: Path) -> np.ndarray:
    """(channels, samples) as floats in -1..1, from a WAV or MP3 file."""
    if path.suffix == ".wav":
        with wave.open(str(path)) as w:
            assert (w.getframerate(), w.getsampwidth()) == (RATE, 2)
            raw = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
            return raw.reshape(-1, w.getnchannels()).T / 32767
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert (container.format.name, stream.sample_rate) == ("mp3", MP3_RATE)
        layout = stream.layout.name
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=RATE)  # back to 48 kHz
        frames = [
            out.to_ndarray() for f in container.decode(audio=0) for out in resampler.resample(f)
        ]
    return np.concatenate(frames, axis=1).astype(np.float64)


def hz(channel: np.ndarray) -> float | None:
    return dominant_hz(channel[RATE // 4 : RATE // 4 + RATE // 2])


@pytest.mark.parametrize("fmt", ["wav", "mp3"])
def test_recorder__dual_channel_agent_left_customer_right(tmp_path: Path, fmt: str) -> None:
    clock = FakeClock()
    path = tmp_path / f"r.{fmt}"
    rec = Recorder(path, fmt=fmt, channels="dual", clock=clock, latency=0.1)
    feed(rec, clock, 1.0)
    assert rec.close() == pytest.approx(1.0, abs=0.001)
    left, right = read(path)
    assert abs((hz(left) or 0) - AGENT_HZ) < 5
    assert abs((hz(right) or 0) - CUSTOMER_HZ) < 5
    if fmt == "wav":
        assert len(left) == RATE
    else:  # the encoder pads to whole MP3 frames (and its delay)
        assert RATE - 960 <= len(left) < RATE + 3 * 1152 * 3


def test_recorder__single_mixes_inbound_and_outbound_keep_one(tmp_path: Path) -> None:
    found = {}
    for channels, track in (("single", "both"), ("dual", "inbound"), ("dual", "outbound")):
        clock = FakeClock()
        path = tmp_path / f"{channels}-{track}.wav"
        rec = Recorder(path, fmt="wav", channels=channels, track=track, clock=clock, latency=0)
        feed(rec, clock, 0.5)
        rec.close()
        data = read(path)
        assert data.shape[0] == 1
        spectrum = np.abs(np.fft.rfft(data[0]))
        found[track] = {f: spectrum[int(f * len(data[0]) / RATE)] for f in (600, 1000)}
    assert min(found["both"].values()) > 0.3 * max(found["both"].values())  # both heard
    assert found["inbound"][600] > 10 * found["inbound"][1000]
    assert found["outbound"][1000] > 10 * found["outbound"][600]


def test_recorder__no_media_is_silence_of_the_recorded_length(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "silent.wav"
    rec = Recorder(path, fmt="wav", clock=clock)
    clock.now += 2.5
    rec.flush()
    assert rec.close() == pytest.approx(2.5, abs=0.001)
    data = read(path)
    assert data.shape == (2, int(2.5 * RATE))
    assert not data.any()


def test_recorder__pause_leaves_the_stretch_out_and_a_missing_agent_is_silent(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    path = tmp_path / "paused.wav"
    rec = Recorder(path, fmt="wav", clock=clock, latency=0)
    feed(rec, clock, 0.5)
    rec.pause()
    feed(rec, clock, 3.0)  # not recorded
    rec.resume()
    feed(rec, clock, 0.5, agent=False)
    assert rec.close() == pytest.approx(1.0, abs=0.001)
    left, right = read(path)
    assert abs((hz(right) or 0) - CUSTOMER_HZ) < 5
    assert np.abs(left[: RATE // 2]).max() > 0.2  # the agent before the pause
    assert not left[RATE // 2 + FRAME :].any()  # then no agent media: silence


def test_conversation__feeds_its_taps(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "tap.wav"
    rec = Recorder(path, fmt="wav", clock=clock, latency=0)
    conversation = Conversation(AudioSettings(tone_hz=CUSTOMER_HZ, echo_gain=0))
    conversation.bridged = True
    conversation.taps.append(rec)
    for i in range(RATE // FRAME):
        conversation.agent_frame(tone((AGENT_HZ,), i * FRAME, FRAME, 0.3))
        conversation.next_frame(FRAME)
        clock.now += FRAME / RATE
    rec.close()
    left, right = read(path)
    assert abs((hz(left) or 0) - AGENT_HZ) < 5
    assert abs((hz(right) or 0) - CUSTOMER_HZ) < 5
