"""The sandbox's end of an agent leg's WebRTC media, with aiortc.

Telnyx's media server makes the offer that goes into ``telnyx_rtc.invite``; so does
:class:`AgentPeer`: a real WebRTC endpoint (ICE, DTLS-SRTP, Opus/PCMU) with one
send-receive audio track. What it sends comes from :class:`~.audio.Conversation`
(ringback, then the simulated customer); what it receives is decoded, resampled to
48 kHz mono and handed to the same conversation, which measures it. No STUN or TURN
server is configured, so nothing leaves the machine: host candidates only.

Only the sandbox imports aiortc; the product's code never does.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time

import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from devserver.sandbox.rtc.audio import FRAME, RATE, Conversation

logger = logging.getLogger(__name__)


class ConversationTrack(MediaStreamTrack):
    """Audio towards the agent, paced in real time; silent (no RTP) while stopped."""

    kind = "audio"

    def __init__(self, conversation: Conversation) -> None:
        super().__init__()
        self.conversation = conversation
        self.resumed = asyncio.Event()
        self._start: float | None = None
        self._pts = 0

    async def recv(self) -> av.AudioFrame:
        """The next 20 ms frame (aiortc's sender calls this in a loop)."""
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += FRAME
            wait = self._start + self._pts / RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        samples = self.conversation.next_frame(FRAME)
        while samples is None:  # media stopped: hold the sender, send nothing
            self.resumed.clear()
            await self.resumed.wait()
            if self.readyState != "live":
                raise MediaStreamError
            self._start, self._pts = time.monotonic(), self._pts + FRAME
            self._start -= self._pts / RATE
            samples = self.conversation.next_frame(FRAME)
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME)
        frame.planes[0].update(samples.tobytes())
        frame.pts = self._pts
        frame.sample_rate = RATE
        frame.time_base = fractions.Fraction(1, RATE)
        return frame

    def stop(self) -> None:
        """End the track (wakes a sender held by a media stop)."""
        super().stop()
        self.resumed.set()


class AgentPeer:
    """One WebRTC peer facing the agent's browser for the life of an agent leg."""

    def __init__(self, conversation: Conversation, *, label: str) -> None:
        self.conversation = conversation
        self.label = label
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.track = ConversationTrack(conversation)
        self._readers: set[asyncio.Task[None]] = set()
        self.pc.addTrack(self.track)
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)

    async def offer(self) -> str:
        """The complete offer SDP (aiortc gathers every candidate before it returns)."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def answer(self, sdp: str) -> None:
        """Apply the browser's answer; media starts once ICE and DTLS complete."""
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    def set_stopped(self, stopped: bool) -> None:
        """Fault: stop (or resume) sending RTP to the agent."""
        self.conversation.stopped = stopped
        if not stopped:
            self.track.resumed.set()

    async def close(self) -> None:
        """Tear the peer down (idempotent)."""
        self.track.stop()
        for task in list(self._readers):
            task.cancel()
        await self.pc.close()
        await asyncio.gather(*self._readers, return_exceptions=True)

    def _on_state(self) -> None:
        logger.info("[Telnyx Sandbox] Media call=%s state=%s", self.label, self.pc.connectionState)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind != "audio":
            return
        task = asyncio.get_running_loop().create_task(self._read(track))
        self._readers.add(task)
        task.add_done_callback(self._readers.discard)

    async def _read(self, track: MediaStreamTrack) -> None:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        try:
            while True:
                frame = await track.recv()
                if not isinstance(frame, av.AudioFrame):
                    continue
                for out in resampler.resample(frame):
                    samples = out.to_ndarray().reshape(-1).astype(np.int16)
                    self.conversation.agent_frame(samples)
        except MediaStreamError:
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("[Telnyx Sandbox] Media reader failed call=%s", self.label)
