"""The supervisor's event log and state pushes, written from a thread of their own.

The supervision loop must notice a dead worker within a tick whatever the database or the
channel layer are doing, so it only puts events on a queue. This thread writes them as
``ServiceEvent`` rows and, when asked, re-reads the aggregated service state and records
and pushes ``state_changed`` when the status moved.

With several supervisors on one Redis, each sees the same aggregated change; the one
whose ``SET ... GET`` on the last-status key swaps the value records it, so a change is
logged once. When Redis is unreachable each supervisor falls back to its own memory.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Any

import redis
from channels.layers import get_channel_layer
from django.db import close_old_connections, connections

from telephony.connections import get_redis
from telephony.events import push_state
from telephony.keys import Keys
from telephony.services import service_event
from telephony.state import read_state

logger = logging.getLogger(__name__)

PUSH_TIMEOUT = 5.0


@dataclass
class _Event:
    kind: str
    message: str
    state: str
    data: dict[str, Any] = field(default_factory=dict)


_CHECK_STATE = object()
_STOP = object()


class EventSink:
    """Queue in front of ``service_event`` and ``push_state``; never blocks the caller."""

    def __init__(self, supervisor_id: str) -> None:
        self.supervisor_id = supervisor_id
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="supervisor-events", daemon=True)
        self._ready = threading.Event()
        self._check_pending = threading.Event()
        self._last_status: str | None = None
        self._offline_change = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Start the thread and wait until its imports are done.

        Workers are forked with a ``preexec_fn``; forking while another thread holds the
        import or dynamic-loader lock can deadlock the child, so the thread loads what it
        needs before the first worker is spawned.
        """
        self._thread.start()
        self._ready.wait(timeout=10.0)

    def emit(self, kind: str, message: str = "", *, state: str = "", **data: Any) -> None:
        """Record one transition (as a ServiceEvent row, written by the thread)."""
        self._queue.put(_Event(kind=kind, message=message, state=state, data=data))

    def check_state(self) -> None:
        """Ask for a re-read of the aggregated state (coalesced: at most one queued)."""
        if not self._check_pending.is_set():
            self._check_pending.set()
            self._queue.put(_CHECK_STATE)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (within ``timeout``) and stop the thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout=timeout)
        if self._thread.is_alive():
            logger.warning("[Telephony Supervisor] event writer did not finish in time")

    # -- the thread ---------------------------------------------------------------------

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._warm_up()
            self._ready.set()
            while True:
                item = self._queue.get()
                if item is _STOP:
                    break
                try:
                    if item is _CHECK_STATE:
                        self._check_pending.clear()
                        self._state_check()
                    else:
                        self._write(item)
                except Exception:
                    logger.exception("[Telephony Supervisor] event writer failed; continuing")
        finally:
            self._ready.set()
            self._shutdown_loop()
            connections.close_all()

    def _warm_up(self) -> None:
        try:
            get_channel_layer()
            connections["default"].ensure_connection()
        except Exception as e:
            logger.warning("[Telephony Supervisor] event writer warm-up: %s", type(e).__name__)

    def _write(self, event: _Event) -> None:
        close_old_connections()
        service_event(
            kind=event.kind,
            message=event.message,
            state=event.state,
            supervisor_id=self.supervisor_id,
            **event.data,
        )

    def _state_check(self) -> None:
        state = read_state()
        status, local = state.status, self._last_status
        self._last_status = status
        try:
            shared: Any = get_redis().set(Keys.last_status(), status, get=True, ex=86_400)
        except (redis.RedisError, OSError):
            if local == status:
                return
            self._offline_change = True
            previous = local
        else:
            if self._offline_change:  # what we logged while cut off is what we compare to
                self._offline_change = False
                previous = local
            else:
                previous = shared
            if previous == status:
                return
        message = f"{previous or 'none'} -> {status}" + (
            f" ({state.reason})" if state.reason else ""
        )
        logger.info("[Telephony Supervisor] Service state %s", message)
        self._write(
            _Event(
                kind="state_changed",
                message=message,
                state=status,
                data={"previous": previous, "reason": state.reason, **state.public()},
            )
        )
        assert self._loop is not None
        try:
            self._loop.run_until_complete(
                asyncio.wait_for(push_state(state.public()), timeout=PUSH_TIMEOUT)
            )
        except Exception as e:  # a lost push only delays the page until its next poll
            logger.warning("[Telephony Supervisor] state push failed: %s", type(e).__name__)

    def _shutdown_loop(self) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            layer = get_channel_layer()
            close = getattr(layer, "close_pools", None)
            if close is not None:
                loop.run_until_complete(asyncio.wait_for(close(), timeout=2.0))
        except Exception as e:
            logger.debug("[Telephony Supervisor] closing channel layer pools: %s", e)
        finally:
            loop.close()
