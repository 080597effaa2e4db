"""Every message that crosses a process boundary, each a dataclass with one
``encode()`` and one ``decode()``.

- over the channel layer: :class:`Request` (web -> worker) and :class:`Reply`;
- in Redis: :class:`Heartbeat` (worker), :class:`SupervisorRecord` (supervisor) and
  :class:`ControlCommand` (operator -> supervisor).

``decode`` checks types and raises ``InvalidRequest`` (reason ``malformed_<shape>``) on a
malformed message; it ignores fields it does not know and defaults the ones that are
missing, so processes of two versions can talk during a rolling deploy. Field names are
the JSON names on the wire. Redis keys are built in :mod:`telephony.keys`.
"""

from __future__ import annotations

from telephony.protocol.commands import COMMANDS, RESET, RESTART, SCALE, ControlCommand
from telephony.protocol.messages import (
    CHANNEL,
    FIRE_AND_FORGET,
    NO_REPLY,
    OPERATIONS,
    REPLY_TYPE,
    Reply,
    Request,
)
from telephony.protocol.records import (
    FAILED,
    LOST,
    RUNNING,
    RUNNING_STATES,
    STARTING,
    STOPPED,
    STOPPING,
    BreakerDetail,
    Heartbeat,
    LastEvent,
    LatencySummary,
    SupervisorRecord,
    WorkerSummary,
)

# Upper bounds of the request-latency histogram a worker publishes (heartbeat and metrics).
LATENCY_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)

__all__ = [
    "CHANNEL",
    "COMMANDS",
    "FAILED",
    "FIRE_AND_FORGET",
    "LATENCY_BUCKETS_MS",
    "LOST",
    "NO_REPLY",
    "OPERATIONS",
    "REPLY_TYPE",
    "RESET",
    "RESTART",
    "RUNNING",
    "RUNNING_STATES",
    "SCALE",
    "STARTING",
    "STOPPED",
    "STOPPING",
    "BreakerDetail",
    "ControlCommand",
    "Heartbeat",
    "LastEvent",
    "LatencySummary",
    "Reply",
    "Request",
    "SupervisorRecord",
    "WorkerSummary",
]
