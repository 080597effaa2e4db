"""Call recording: the record actions, record-from-answer on Dial, and each recording's life.

``record_start`` (or Dial's ``record: record-from-answer``, on answer) starts capturing
the media the sandbox carries for the call into a file (:mod:`.recorder`);
``record_pause``/``record_resume`` cut a stretch out; ``record_stop``, ``max_length`` or
the call's hangup end it. Then ``call.recording.saved`` goes out (after the call's own
events) with signed, expiring URLs (:mod:`.downloads`), or ``call.recording.error`` when
a fault says so. The REST side (list, retrieve, delete) is in :mod:`.recordings_api`.

Which audio: the agent leg's :class:`~.rtc.audio.Conversation`, found from either leg
(the agent leg itself, or a customer leg linked or bridged to it). A call with no media
(an agent answered by a client without audio, or auto-answered) still gets a file: silence.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from devserver.sandbox import errors
from devserver.sandbox.api import body, client_state, reply
from devserver.sandbox.downloads import UrlSigner
from devserver.sandbox.events import iso_us
from devserver.sandbox.faults import DECISION, Decision
from devserver.sandbox.recorder import Recorder
from devserver.sandbox.recording import Recording
from devserver.sandbox.rtc.audio import Conversation
from devserver.sandbox.store import Call, Store
from devserver.sandbox.webhooks import Webhooks

logger = logging.getLogger(__name__)

FindConversation = Callable[[str], Conversation | None]
TICK = 0.1  # seconds between writes of captured audio to disk


class Recordings:
    """Every recording of one sandbox, and the record action handlers."""

    def __init__(
        self,
        store: Store,
        webhooks: Webhooks,
        signer: UrlSigner,
        *,
        directory: Path | None = None,
        find_conversation: FindConversation = lambda _id: None,
    ) -> None:
        self.store, self.webhooks, self.signer = store, webhooks, signer
        self._directory = directory
        self._temp: Path | None = None  # made at the first recording, removed at close
        self.find_conversation = find_conversation
        self.items: dict[str, Recording] = {}
        self._commands: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        webhooks.observers.append(self.on_event)

    @property
    def directory(self) -> Path:
        """Where files go: the configured directory, else a temporary one made when needed."""
        if self._directory is None:
            self._temp = self._directory = Path(tempfile.mkdtemp(prefix="sandbox-recordings-"))
        return self._directory

    # ------------------------------------------------------------------ lifecycle

    def from_dial(self, call: Call, data: dict[str, Any], decision: Decision) -> Recording | None:
        """Dial's ``record: record-from-answer``: a recording that starts on answer."""
        if data.get("record") != "record-from-answer":
            return None
        return self._new(
            call,
            decision,
            format=data.get("record_format", "mp3"),
            channels=data.get("record_channels", "dual"),
            track=data.get("record_track", "both"),
            initiated_by="OutboundAPI",
            max_length=data.get("record_max_length", 0),
        )

    def _new(self, call: Call, decision: Decision, **kw: Any) -> Recording:
        """A new recording of ``call``, with the recording faults the request drew."""
        rec = Recording.create(
            call,
            self.store.clock(),
            client_state=call.client_state,
            error=decision.recording_error,
            urls_expired=decision.recording_urls_expired,
            **kw,
        )
        self.items[rec.id] = rec
        return rec

    def on_event(self, call: Call, kind: str) -> None:
        """Start record-from-answer recordings on answer; end a call's recordings on hangup."""
        for rec in [r for r in self.items.values() if r.call is call and r.active]:
            if kind == "call.answered" and rec.status == "pending":
                self._start(rec)
            elif kind == "call.hangup":
                self.finish(rec)

    def _start(self, rec: Recording) -> None:
        rec.status, rec.started_at = "recording", self.store.clock()
        rec.path = self.directory / f"{rec.id}.{rec.format}"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            rec.recorder = Recorder(
                rec.path,
                fmt=rec.format,
                channels=rec.channels,
                track=rec.track,
                max_seconds=rec.max_length,
            )
        except Exception:  # the file cannot be written: call.recording.error at the end
            logger.exception("[Telnyx Sandbox] Recording file failed id=%s", rec.id)
            rec.error, rec.path = True, None
            return
        conversation = self.find_conversation(rec.call.call_control_id)
        if conversation is not None:
            conversation.taps.append(rec.recorder)
        task = asyncio.get_running_loop().create_task(self._pump(rec))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        logger.info(
            "[Telnyx Sandbox] Recording started id=%s call=%s", rec.id, rec.call.call_leg_id
        )

    async def _pump(self, rec: Recording) -> None:
        """Write captured audio to disk as it comes; stop at ``max_length``."""
        try:
            while rec.active and rec.recorder is not None:
                await asyncio.sleep(TICK)
                if rec.status == "recording":
                    rec.recorder.flush()
                    if rec.recorder.full:
                        self.finish(rec)
        except Exception:
            logger.exception("[Telnyx Sandbox] Recording failed id=%s", rec.id)
            rec.error = True
            self.finish(rec)

    def finish(self, rec: Recording) -> None:
        """Stop capturing, close the file and send the saved (or error) webhook."""
        if not rec.active:
            return
        if rec.status == "pending":  # record-from-answer on a call never answered
            rec.status = "canceled"
            return
        rec.ended_at = self.store.clock()
        recorder, rec.recorder = rec.recorder, None
        if recorder is not None:
            conversation = self.find_conversation(rec.call.call_control_id)
            if conversation is not None and recorder in conversation.taps:
                conversation.taps.remove(recorder)
            try:
                rec.duration_millis = int(recorder.close() * 1000)
                rec.size = rec.path.stat().st_size if rec.path else 0
            except Exception:
                logger.exception("[Telnyx Sandbox] Recording file failed id=%s", rec.id)
                rec.error = True
        if rec.error:
            rec.status = "failed"
            self._remove_file(rec)
            self._send(rec, "call.recording.error", None)
            return
        rec.status = "completed"
        urls = self.signer.urls(rec, expired=rec.urls_expired)
        self._send(rec, "call.recording.saved", {"mp3": None, "wav": None} | urls)
        logger.info("[Telnyx Sandbox] Recording saved id=%s bytes=%s", rec.id, rec.size)

    def _send(self, rec: Recording, kind: str, urls: dict[str, str | None] | None) -> None:
        now = self.store.clock()
        data = {
            "event_type": kind,
            "id": str(uuid.uuid4()),
            "occurred_at": iso_us(now),
            "payload": dict(sorted(rec.event_payload(urls).items())),
            "record_type": "event",
        }
        self.webhooks.send(rec.call, {"data": data})

    @staticmethod
    def _remove_file(rec: Recording) -> None:
        if rec.path is not None:
            try:
                rec.path.unlink(missing_ok=True)
            except OSError as e:
                logger.warning("[Telnyx Sandbox] Recording file not removed id=%s: %s", rec.id, e)

    def delete(self, rec: Recording) -> None:
        """Forget a recording and remove its file (DELETE /recordings/...)."""
        self._remove_file(rec)
        self.items.pop(rec.id, None)

    async def close(self) -> None:
        """Stop every capture, forget every recording and remove their files (reset)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for rec in list(self.items.values()):
            if rec.recorder is not None:
                rec.recorder.close()
            self.delete(rec)
        self._commands.clear()

    async def shutdown(self) -> None:
        """:meth:`close`, and the temporary directory goes (the sandbox stops)."""
        await self.close()
        if self._temp is not None:
            shutil.rmtree(self._temp, ignore_errors=True)
            self._temp = self._directory = None

    # ------------------------------------------------------------- record actions

    def _live_call(self, request: web.Request) -> Call:
        call = self.store.calls.get(request.match_info["call_control_id"])
        if call is None:
            raise errors.not_found()
        if not call.is_alive:
            raise errors.call_ended()
        return call

    async def _command(
        self, request: web.Request, operation: str
    ) -> tuple[Call, dict[str, Any], bool]:
        """The live call, the checked body, and whether ``command_id`` repeats one."""
        call = self._live_call(request)
        data = await body(request, operation)
        state = client_state(data)
        command_id = data.get("command_id")
        key = (call.call_control_id, f"{operation}:{command_id}")
        if command_id and key in self._commands:
            return call, data, True
        if command_id:
            self._commands.add(key)
        if state is not None:
            call.client_state = state
        return call, data, False

    def _current(self, call: Call, data: dict[str, Any]) -> Recording:
        wanted = data.get("recording_id")
        for rec in self.items.values():
            if rec.call is call and rec.active and wanted in (None, rec.id):
                return rec
        detail = "There is no active recording on this call."
        if wanted:
            detail = "There is no active recording with this recording_id on this call."
        raise errors.invalid("/recording_id" if wanted else "/", detail)

    async def record_start(self, request: web.Request) -> web.Response:
        """StartCallRecord: the call must be answered and not recording already."""
        call, data, repeated = await self._command(request, "StartCallRecord")
        if repeated:
            return reply(request, {"result": "ok"})
        if call.state != "answered":
            raise errors.invalid("/", "The call must be answered before it can be recorded.")
        if any(r.call is call and r.active for r in self.items.values()):
            raise errors.invalid("/", "This call is already being recorded.")
        decision = request.get(DECISION) or Decision()
        rec = self._new(
            call,
            decision,
            format=data["format"],
            channels=data["channels"],
            track=data.get("recording_track", "both"),
            initiated_by="StartCallRecordingAPI",
            max_length=data.get("max_length", 0),
        )
        self._start(rec)
        return reply(request, {"result": "ok"})

    async def record_stop(self, request: web.Request) -> web.Response:
        """StopCallRecording: ends the active recording; the saved webhook follows."""
        call, data, repeated = await self._command(request, "StopCallRecording")
        if not repeated:
            self.finish(self._current(call, data))
        return reply(request, {"result": "ok"})

    async def record_pause(self, request: web.Request) -> web.Response:
        """PauseCallRecording: nothing is captured until resumed (idempotent)."""
        call, data, repeated = await self._command(request, "PauseCallRecording")
        rec = self._current(call, data)
        if not repeated and rec.status == "recording" and rec.recorder is not None:
            rec.recorder.pause()
            rec.status = "paused"
        return reply(request, {"result": "ok"})

    async def record_resume(self, request: web.Request) -> web.Response:
        """ResumeCallRecording: capture again, the paused stretch left out (idempotent)."""
        call, data, repeated = await self._command(request, "ResumeCallRecording")
        rec = self._current(call, data)
        if not repeated and rec.status == "paused" and rec.recorder is not None:
            rec.recorder.resume()
            rec.status = "recording"
        return reply(request, {"result": "ok"})
