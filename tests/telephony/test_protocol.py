"""The cross-process message shapes: round trips, rejected input, and the wire dicts
written before they were typed (a rolling deploy mixes old and new processes)."""

from __future__ import annotations

import json

import pytest

from telephony import exceptions as exc
from telephony.protocol import (
    BreakerDetail,
    ControlCommand,
    Heartbeat,
    LastEvent,
    LatencySummary,
    Reply,
    Request,
    SupervisorRecord,
    WorkerSummary,
)

# What the untyped writers put on the wire before this module existed, field for field.
OLD_HEARTBEAT = {
    "id": "h1:101", "host": "h1", "pid": 101, "supervisor_id": "h1:100",
    "started_at": 1_700_000_000_000, "beat_at": 1_700_000_060_000, "handled": 42, "failed": 1,
    "dropped_late": 0, "duplicates": 2, "in_flight": 3, "rss_mb": 117.4, "last_error": "timeout",
    "breaker": "half_open",
    "breaker_detail": {"state": "half_open", "forced": None, "failure_rate": 0.5,
                       "slow_rate": 0.0, "calls": 10, "opened_count": 1},
    "latency": {"window": 40, "p50_ms": 4.0, "p99_ms": 30.5, "errors": {"timeout": 1}},
    "concurrency": 50, "draining": False, "spare": True,
}  # fmt: skip
OLD_RECORD = {
    "id": "h1:100", "host": "h1", "pid": 100, "state": "running", "desired": 2, "alive": 2,
    "spares": 1, "restarts": 3, "restarts_in_window": 1,
    "workers": [{"pid": 101, "worker_id": "h1:101", "started_at": 1, "restarts": 0,
                 "role": "spare", "ready": True}],
    "last_event": {"kind": "worker_started", "message": "Worker started", "at": 5},
    "started_at": 1, "updated_at": 9,
}  # fmt: skip
OLD_COMMAND = {"id": "ab12", "cmd": "scale", "n": 3, "user_id": 7, "at": 1_700_000_000_000}


def test_heartbeat__round_trip_and_old_wire_dict() -> None:
    beat = Heartbeat.decode(json.dumps(OLD_HEARTBEAT))
    assert beat.breaker_detail == BreakerDetail(
        state="half_open", failure_rate=0.5, calls=10, opened_count=1
    )
    assert beat.latency == LatencySummary(window=40, p50_ms=4.0, p99_ms=30.5, errors={"timeout": 1})
    assert (beat.spare, beat.serving, beat.handled) == (True, False, 42)
    # Same meaning for old readers; newer fields are only added, with their defaults.
    assert json.loads(beat.encode()) == {**OLD_HEARTBEAT, "pss_mb": 0.0, "uss_mb": 0.0}
    assert Heartbeat.decode(beat.encode()) == beat
    assert Heartbeat.decode(beat.encode().encode()) == beat  # bytes, as a raw client returns


def test_heartbeat__missing_fields_default_and_unknown_ones_are_ignored() -> None:
    beat = Heartbeat.decode({"id": "h:1", "added_by_a_newer_worker": [1, 2]})
    assert beat == Heartbeat(id="h:1") and beat.serving and beat.breaker == "closed"


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        b"\xff\xfe",
        "[1, 2]",
        {"pid": 1},  # no id
        {"id": 7},
        {"id": "h:1", "handled": "many"},
        {"id": "h:1", "pid": True},  # a bool is not a pid
        {"id": "h:1", "draining": "no"},
        {"id": "h:1", "breaker_detail": "open"},
        {"id": "h:1", "latency": {"errors": {"timeout": "x"}}},
    ],
)
def test_heartbeat__malformed_input_is_rejected_with_a_code(raw) -> None:
    with pytest.raises(exc.InvalidRequest) as e:
        Heartbeat.decode(raw)
    assert e.value.reason == "malformed_heartbeat" and e.value.code == "invalid_request"


def test_supervisor_record__round_trip_and_old_wire_dict() -> None:
    rec = SupervisorRecord.decode(json.dumps(OLD_RECORD))
    assert rec.workers == (
        WorkerSummary(pid=101, worker_id="h1:101", started_at=1, role="spare", ready=True),
    )
    assert rec.last_event == LastEvent(kind="worker_started", message="Worker started", at=5)
    assert json.loads(rec.encode()) == {**OLD_RECORD, "template_pid": 0, "template_state": ""}
    assert SupervisorRecord.decode(rec.encode()) == rec
    assert rec.lost().state == "lost" and rec.lost().desired == 2


def test_supervisor_record__no_last_event_is_written_as_before() -> None:
    rec = SupervisorRecord(id="h:1", state="starting")
    assert json.loads(rec.encode())["last_event"] == {}  # old readers did `or {}`
    assert SupervisorRecord.decode(rec.encode()) == rec


@pytest.mark.parametrize(
    "raw",
    [
        {"id": "h:1"},  # no state
        {"id": "h:1", "state": "running", "desired": "2"},
        {"id": "h:1", "state": "running", "workers": {"pid": 1}},
        {"id": "h:1", "state": "running", "workers": [{"pid": 1}]},  # no worker_id
        {"id": "h:1", "state": "running", "last_event": "started"},
    ],
)
def test_supervisor_record__malformed_input_is_rejected(raw) -> None:
    with pytest.raises(exc.InvalidRequest) as e:
        SupervisorRecord.decode(raw)
    assert e.value.reason == "malformed_supervisor_record"


def test_control_command__round_trip_and_old_wire_dict() -> None:
    cmd = ControlCommand.decode(json.dumps(OLD_COMMAND))
    assert (cmd.cmd, cmd.n, cmd.user_id, cmd.id) == ("scale", 3, 7, "ab12")
    assert json.loads(cmd.encode()) == OLD_COMMAND
    reset = ControlCommand.new("reset", user_id=None, at=1)
    assert "n" not in json.loads(reset.encode()) and ControlCommand.decode(reset.encode()) == reset


@pytest.mark.parametrize(
    "raw",
    [
        {"cmd": "reboot", "at": 1},
        {"cmd": "scale", "at": 1},  # scale without n
        {"cmd": "scale", "n": -1, "at": 1},
        {"cmd": "reset"},  # no timestamp
        {"cmd": "reset", "at": 1, "user_id": "admin"},
        "",
    ],
)
def test_control_command__malformed_input_is_rejected(raw) -> None:
    with pytest.raises(exc.InvalidRequest) as e:
        ControlCommand.decode(raw)
    assert e.value.reason == "malformed_control_command"


def test_request__round_trip_and_old_wire_dict() -> None:
    old = {
        "type": "call.dial",
        "request_id": "r-1",
        "reply_to": "telephony.reply.abc!def",
        "deadline": 1_700_000_003_000,
        "payload": {"call_id": "c-1"},
    }
    request = Request.decode(old)
    assert request.encode() == old and request.deadline_s == 1_700_000_003.0
    fresh = Request.new("health.ping", reply_to="x!", timeout=2.0, payload={})
    assert Request.decode(fresh.encode()) == fresh and fresh.request_id


@pytest.mark.parametrize(
    "message",
    [
        None,
        {"type": "call.explode", "request_id": "r", "reply_to": "x!", "deadline": 1},
        {"type": "call.dial", "reply_to": "x!", "deadline": 1},
        {"type": "call.dial", "request_id": "r", "deadline": 1},
        {"type": "call.dial", "request_id": "r", "reply_to": "x!", "deadline": True},
        {"type": "call.dial", "request_id": "r", "reply_to": "x!", "deadline": 1, "payload": []},
    ],
)
def test_request__malformed_input_is_rejected(message) -> None:
    with pytest.raises(exc.InvalidRequest):
        Request.decode(message)
    with pytest.raises(exc.InvalidRequest):
        Request.new("call.explode", reply_to="x!", timeout=1, payload={})


def test_reply__round_trips_results_and_errors() -> None:
    ok = {"type": "telephony.reply", "request_id": "r-1", "ok": True, "result": {"a": 1}}
    assert Reply.decode(ok).encode() == ok and Reply.decode(ok).unwrap() == {"a": 1}
    failed = Reply.failure("r-2", exc.WorkerTimeout("slow", reason="timeout"))
    decoded = Reply.decode(failed.encode())
    assert decoded == failed and failed.encode()["error"]["code"] == "worker_timeout"
    with pytest.raises(exc.WorkerTimeout) as e:
        decoded.unwrap()
    assert e.value.reason == "timeout"


@pytest.mark.parametrize(
    "message",
    [
        "ok",
        {"type": "telephony.abandoned"},
        {"type": "telephony.reply", "request_id": "r", "ok": "yes"},
        {"type": "telephony.reply", "request_id": "r", "ok": True, "result": [1]},
    ],
)
def test_reply__malformed_input_is_rejected(message) -> None:
    with pytest.raises(exc.InvalidRequest) as e:
        Reply.decode(message)
    assert e.value.reason == "malformed_reply"
