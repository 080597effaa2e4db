"""The records processes leave in Redis for each other: worker heartbeats and
supervisor records.

A worker writes its :class:`Heartbeat` to ``Keys.worker(id)`` every heartbeat interval
(TTL: the heartbeat timeout); a supervisor writes its :class:`SupervisorRecord` to
``Keys.supervisor(sid)`` (TTL too) and to the ``Keys.supervisors_last()`` hash. The
state reader, the supervisor, the admin page, ``/metrics`` and ``telephony_status`` read
them only through :meth:`decode`, so a field is named in one place. The JSON on the wire
is unchanged from the untyped dicts written before, so old and new processes can run
side by side during a deploy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from telephony.protocol._codec import decode_fields, load_mapping, malformed, to_json

# A supervisor's own states, in its record (the service states are in telephony.state).
STARTING = "starting"  # no worker has beaten yet
RUNNING = "running"
FAILED = "failed"  # restart intensity exceeded: no more restarts until a reset
STOPPING = "stopping"
STOPPED = "stopped"
LOST = "lost"  # set by readers: the record expired without the supervisor saying it stopped
RUNNING_STATES = frozenset({STARTING, RUNNING, FAILED})


@dataclass(frozen=True)
class BreakerDetail:
    """A worker's provider circuit breaker, as its heartbeat publishes it."""

    state: str = "closed"
    forced: str | None = None
    failure_rate: float = 0.0
    slow_rate: float = 0.0
    calls: int = 0
    opened_count: int = 0


@dataclass(frozen=True)
class LatencySummary:
    """A worker's recent request latencies (its last requests, up to 500)."""

    window: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: dict[str, int] = field(default_factory=dict)


def _nested(cls: type[Any], data: Mapping[str, Any], name: str, shape: str) -> Any:
    value = data.get(name)
    if value is None:
        return cls()
    if not isinstance(value, Mapping):
        raise malformed(shape, f"{name} is not a mapping")
    return cls(**decode_fields(cls, value, shape))


@dataclass(frozen=True)
class Heartbeat:
    """One worker's heartbeat: it is alive, what it does, how it is doing."""

    id: str  # "<host>:<pid>"
    host: str = ""
    pid: int = 0
    supervisor_id: str = ""
    started_at: int = 0  # epoch ms
    beat_at: int = 0  # epoch ms
    handled: int = 0
    failed: int = 0
    dropped_late: int = 0
    duplicates: int = 0
    in_flight: int = 0
    rss_mb: float = 0.0
    pss_mb: float = 0.0  # shared pages split between their sharers (0: not measured)
    uss_mb: float = 0.0  # pages only this worker maps: what it frees by exiting
    last_error: str = ""
    breaker: str = "closed"
    breaker_detail: BreakerDetail = field(default_factory=BreakerDetail)
    latency: LatencySummary = field(default_factory=LatencySummary)
    concurrency: int = 0
    draining: bool = False
    spare: bool = False

    @property
    def serving(self) -> bool:
        """It takes requests: not draining, not an idle spare."""
        return not self.draining and not self.spare

    def as_dict(self) -> dict[str, Any]:
        """The wire form as a JSON-ready dict."""
        return asdict(self)

    def encode(self) -> str:
        return to_json(self.as_dict())

    @classmethod
    def decode(cls, raw: Any) -> Heartbeat:
        """A heartbeat from Redis (JSON) or a dict; ``InvalidRequest`` if malformed."""
        data = load_mapping(raw, "heartbeat")
        nested = ("breaker_detail", "latency")
        return cls(
            **decode_fields(cls, data, "heartbeat", skip=nested),
            breaker_detail=_nested(BreakerDetail, data, "breaker_detail", "heartbeat"),
            latency=_nested(LatencySummary, data, "latency", "heartbeat"),
        )


@dataclass(frozen=True)
class WorkerSummary:
    """One worker as its supervisor sees it (in the supervisor's record)."""

    pid: int
    worker_id: str
    started_at: int = 0
    restarts: int = 0
    role: str = "active"
    ready: bool = False


@dataclass(frozen=True)
class LastEvent:
    """The last thing a supervisor did, for people reading its record."""

    kind: str
    message: str = ""
    at: int = 0


@dataclass(frozen=True)
class SupervisorRecord:
    """One supervisor's record: its state, its share of workers, its recent history."""

    id: str  # "<host>:<pid>"
    state: str
    host: str = ""
    pid: int = 0
    desired: int = 0
    alive: int = 0
    spares: int = 0
    restarts: int = 0
    restarts_in_window: int = 0
    workers: tuple[WorkerSummary, ...] = ()
    last_event: LastEvent | None = None
    started_at: int = 0
    updated_at: int = 0
    template_pid: int = 0  # the preloaded worker template (0: none running)
    template_state: str = ""  # "" (no template: cold starts only), down, starting, ready

    def lost(self) -> SupervisorRecord:
        """This record as readers show it once it expired without a ``stopped``."""
        return replace(self, state=LOST)

    def as_dict(self) -> dict[str, Any]:
        """The wire form as a JSON-ready dict (no last event is ``{}``, as always)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["workers"] = [asdict(w) for w in self.workers]
        data["last_event"] = asdict(self.last_event) if self.last_event else {}
        return data

    def encode(self) -> str:
        return to_json(self.as_dict())

    @classmethod
    def decode(cls, raw: Any) -> SupervisorRecord:
        """A record from Redis (JSON) or a dict; ``InvalidRequest`` if malformed."""
        shape = "supervisor_record"
        data = load_mapping(raw, shape)
        workers = data.get("workers") or []
        if not isinstance(workers, list) or not all(isinstance(w, Mapping) for w in workers):
            raise malformed(shape, "workers is not a list of mappings")
        event = data.get("last_event") or None
        if event is not None and not isinstance(event, Mapping):
            raise malformed(shape, "last_event is not a mapping")
        return cls(
            **decode_fields(cls, data, shape, skip=("workers", "last_event")),
            workers=tuple(WorkerSummary(**decode_fields(WorkerSummary, w, shape)) for w in workers),
            last_event=LastEvent(**decode_fields(LastEvent, event, shape)) if event else None,
        )
