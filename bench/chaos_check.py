"""The invariants a chaos run must keep, checked from what was recorded.

Each ``check_*`` function returns a list of violations (dicts with ``invariant`` and the
details needed to find the cause); :func:`check_all` runs them all. They are pure
functions of the records, the database rows and the sandbox's logs, so they can be read
(and tested) without running anything. docs/CHAOS.md states each one in words.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from bench.chaos_load import Record

# What each kind of request may answer. 429 is the product's own rate limit (raised very
# high for the run, but counted as expected); 502/503/504 are the documented answers to a
# failing provider, an unavailable service and a timed-out worker.
EXPECTED: dict[str, set[int]] = {
    "page": {200},
    "status": {200, 503},
    "credential": {201, 429, 502, 503, 504},
    "call": {201, 429, 502, 503, 504},
    "detail": {200},
    "hangup": {200, 502, 503, 504},
}
UNSETTLED = {"queued", "unknown"}
LIVE = {"dialing", "ringing", "answered"}  # a leg may still be up at the provider
TERMINAL = {"completed", "failed", "no_answer", "busy", "canceled"}  # telephony.models
# Answers that say a customer picked up can only end completed or canceled; these would
# mean the record contradicts the provider.
NOT_AFTER_ANSWER = {"failed", "no_answer", "busy"}
# Sandbox operations the adapter never retries: a second execution of one request_id
# would be a second call placed or a second credential created.
NOT_RETRIED = {"DialCall", "CreateTelephonyCredential"}


@dataclass
class Evidence:
    """Everything the checks look at."""

    records: list[Record]
    request_timeout: float
    margin: float
    daphne_pid: int
    daphne_alive_at_end: bool
    daphne_exit: int | None
    calls: dict[str, dict[str, Any]]  # call id -> row (status, user_id, both legs' ids, ...)
    users: dict[str, int]  # username -> user id
    sandbox_log: list[dict[str, Any]]
    webhooks: list[dict[str, Any]]
    live_calls: dict[str, bool]  # leg call_control_id -> is_alive at the sandbox, live rows
    leftovers: list[dict[str, Any]]
    recovered: bool
    recovery_detail: str = ""
    notes: dict[str, Any] = field(default_factory=dict)


def _v(invariant: str, **detail: Any) -> dict[str, Any]:
    return {"invariant": invariant, **detail}


def _req(r: Record) -> dict[str, Any]:
    return {
        "user": r.user,
        "request": f"{r.method} {r.path}",
        "started": round(r.started, 3),
        "elapsed_s": round(r.elapsed, 3),
        "status": r.status,
        "content_type": r.content_type,
        "code": r.code,
        "error": r.error,
    }


def check_web(ev: Evidence) -> list[dict[str, Any]]:
    """1. daphne kept its pid; JSON from /api/, HTML 200 for the page; no 500, no surprise."""
    out = []
    if not ev.daphne_alive_at_end:
        out.append(_v("1-web", problem="daphne exited during the run", exit=ev.daphne_exit))
    for r in ev.records:
        if r.status is None:
            continue  # no answer at all: invariant 2 reports it
        is_api = r.path.startswith("/api/")
        ctype = r.content_type.split(";")[0].strip()
        if is_api and ctype != "application/json":
            out.append(_v("1-web", problem="non-JSON answer from /api/", **_req(r)))
        elif not is_api and (r.status != 200 or ctype != "text/html"):
            out.append(_v("1-web", problem="the page did not render", **_req(r)))
        elif r.status >= 500 and r.status not in (502, 503, 504):
            out.append(_v("1-web", problem=f"{r.status} answer", **_req(r)))
        elif r.status not in EXPECTED[r.kind]:
            out.append(_v("1-web", problem="unexpected status for this request", **_req(r)))
    for d in ev.webhooks:
        if not d.get("delivered"):
            out.append(
                _v(
                    "1-web",
                    problem="a signed webhook was not accepted",
                    event=d.get("event_type"),
                    call_control_id=d.get("call_control_id"),
                    status=d.get("status"),
                    attempts=d.get("attempts"),
                    error=d.get("error"),
                )
            )
    return out


def check_latency(ev: Evidence) -> list[dict[str, Any]]:
    """2. Every request answered within TELEPHONY_REQUEST_TIMEOUT + margin."""
    bound = ev.request_timeout + ev.margin
    out = []
    for r in ev.records:
        if r.status is None:
            out.append(_v("2-deadline", problem="no answer", **_req(r)))
        elif r.elapsed > bound:
            out.append(_v("2-deadline", problem=f"answered after {bound:g} s", **_req(r)))
    return out


def check_rows(ev: Evidence) -> list[dict[str, Any]]:
    """3. Every call answered 201 has its row, owned by the user it was placed for."""
    out = []
    for r in ev.records:
        if r.kind != "call" or r.status != 201:
            continue
        row = ev.calls.get(r.call_id or "")
        if row is None:
            out.append(_v("3-record", problem="201 call without a row", call_id=r.call_id))
        elif row.get("user_id") != ev.users.get(r.user):
            out.append(_v("3-record", problem="row of another user", call_id=r.call_id))
    return out


def client_state(value: Any) -> tuple[str | None, str | None]:
    """(call id, leg) from a leg's ``client_state`` (telephony/legs.py's format, read
    here without Django): base64 of ``{"call", "leg"}``; (None, None) if not ours."""
    if not isinstance(value, str) or not value:
        return None, None
    try:
        doc = json.loads(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None, None
    if not isinstance(doc, dict):
        return None, None
    call, leg = doc.get("call"), doc.get("leg")
    return (str(call) if call else None), (str(leg) if leg else None)


def _dials(ev: Evidence) -> list[tuple[dict[str, Any], str | None, str | None]]:
    """Every Dial the sandbox executed, with the (call id, leg) of its client_state."""
    return [
        (e, *client_state(e.get("client_state")))
        for e in ev.sandbox_log
        if e.get("operation") == "DialCall" and e.get("executed")
    ]


def check_provider_agrees(ev: Evidence) -> list[dict[str, Any]]:
    """3. The record knows every leg the provider placed, and whether the customer answered.

    A Dial the sandbox executed names its row in ``client_state``: the row must exist and
    know that leg's call_control_id (the agent leg in ``agent_call_control_id``, the
    customer's in ``call_control_id``). A customer leg the sandbox answered (a
    ``call.answered`` webhook for the customer leg was sent) must not end ``failed``,
    ``no_answer`` or ``busy``: somebody talked. An agent leg's answer decides nothing:
    a customer dial refused by a failing provider after it is rightly ``failed``.
    """
    out = []
    fields = {"agent": "agent_call_control_id", "customer": "call_control_id"}
    for e, call_id, leg in _dials(ev):
        row = ev.calls.get(call_id or "")
        if row is None:
            out.append(
                _v(
                    "3-record",
                    problem="dialled, no row",
                    request_id=e.get("request_id"),
                    call_id=call_id,
                    leg=leg,
                    call_control_id=e.get("call_control_id"),
                )
            )
        elif leg in fields and row.get(fields[leg]) != e.get("call_control_id"):
            out.append(
                _v(
                    "3-record",
                    problem=f"dialled, row does not know its {leg} leg",
                    call_id=call_id,
                    request_id=e.get("request_id"),
                    dialled=e.get("call_control_id"),
                    recorded=row.get(fields[leg]),
                    status=row.get("status"),
                    error_code=row.get("error_code"),
                )
            )
    answered = {
        d.get("call_id")
        for d in ev.webhooks
        if d.get("event_type") == "call.answered" and d.get("leg") == "customer"
    }
    for call_id in sorted(str(a) for a in answered if a):
        row = ev.calls.get(call_id)
        if row is not None and row.get("status") in NOT_AFTER_ANSWER:
            out.append(
                _v(
                    "3-record",
                    problem=f"customer answered at the provider, recorded {row.get('status')}",
                    call_id=call_id,
                    error_code=row.get("error_code"),
                    answered_at=row.get("answered_at"),
                )
            )
    return out


def check_one_customer_dial(ev: Evidence) -> list[dict[str, Any]]:
    """5. No customer is dialled twice for one call row (customer-leg Dials per call)."""
    legs: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for e, call_id, leg in _dials(ev):
        if leg == "customer" and call_id:
            legs[call_id].append(e)
    return [
        _v(
            "5-at-most-once",
            problem=f"customer dialled {len(entries)} times",
            call_id=call_id,
            request_ids=[x.get("request_id") for x in entries],
            ts=[x["ts"] for x in entries],
        )
        for call_id, entries in sorted(legs.items())
        if len(entries) > 1
    ]


def check_settled(ev: Evidence) -> list[dict[str, Any]]:
    """4. After reconciliation every row is terminal; a live one only if Telnyx says a leg
    of it is still up."""
    out = []
    for call_id, row in ev.calls.items():
        status = row.get("status")
        if status in TERMINAL:
            continue
        legs = [row.get("agent_call_control_id"), row.get("call_control_id")]
        alive = {str(c): ev.live_calls.get(str(c), False) for c in legs if c}
        if status in LIVE and any(alive.values()):
            continue
        out.append(
            _v(
                "4-settled",
                problem=f"call left {status}",
                call_id=call_id,
                agent_call_control_id=row.get("agent_call_control_id"),
                call_control_id=row.get("call_control_id"),
                error_code=row.get("error_code"),
                created_at=row.get("created_at"),
                sandbox_alive=alive,
            )
        )
    return out


def check_sandbox(ev: Evidence) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """5. At most one execution per (operation, request_id); none started past its deadline.

    "Started" is when the sandbox received the request (``ts``): injected latency runs
    after that, so ``executed_at`` may pass the deadline of a request that arrived in
    time, exactly as a real provider may finish late. Repeats of operations the adapter
    retries on purpose (idempotent ones) are counted, not flagged.
    """
    out: list[dict[str, Any]] = []
    executions: defaultdict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    finished_late = sent_late = 0
    for e in ev.sandbox_log:
        rid, op, deadline = e.get("request_id"), e.get("operation"), e.get("deadline")
        if not rid:
            continue
        late = deadline is not None and e["ts"] > deadline
        if e.get("executed"):
            executions[(str(op), str(rid))].append(e)
            if late:
                out.append(
                    _v(
                        "5-at-most-once",
                        problem="executed, arrived after its deadline",
                        operation=op,
                        request_id=rid,
                        ts=e["ts"],
                        deadline=deadline,
                        late_ms=e["ts"] - deadline,
                    )
                )
            elif deadline is not None and (e.get("executed_at") or 0) > deadline:
                finished_late += 1
        elif late:
            sent_late += 1
    repeats: Counter[str] = Counter()
    for (op, rid), entries in executions.items():
        if len(entries) < 2:
            continue
        if op in NOT_RETRIED:
            out.append(
                _v(
                    "5-at-most-once",
                    problem=f"executed {len(entries)} times",
                    operation=op,
                    request_id=rid,
                    ts=[x["ts"] for x in entries],
                )
            )
        else:
            repeats[op] += len(entries) - 1
    stats = {
        "requests_with_id": sum(1 for e in ev.sandbox_log if e.get("request_id")),
        "executed": sum(len(v) for v in executions.values()),
        "by_operation": dict(Counter(str(e.get("operation")) for e in ev.sandbox_log)),
        "faulted": dict(Counter(str(e["fault"]) for e in ev.sandbox_log if e.get("fault"))),
        "executed_but_finished_after_deadline": finished_late,
        "not_executed_arrived_after_deadline": sent_late,
        "idempotent_repeats": dict(repeats),
    }
    return out, stats


def check_orphans(ev: Evidence) -> list[dict[str, Any]]:
    """6. Nothing we started, nor anything it started, outlives the shutdown."""
    return [_v("6-orphans", problem="process left running", **p) for p in ev.leftovers]


def check_recovery(ev: Evidence) -> list[dict[str, Any]]:
    """0. Once the faults are undone the service is available with all its workers."""
    if ev.recovered:
        return []
    return [_v("0-recovery", problem="service did not recover", detail=ev.recovery_detail)]


def check_all(ev: Evidence) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """All violations, and the sandbox statistics for the report."""
    sandbox_violations, sandbox_stats = check_sandbox(ev)
    violations = (
        check_recovery(ev)
        + check_web(ev)
        + check_latency(ev)
        + check_rows(ev)
        + check_provider_agrees(ev)
        + check_settled(ev)
        + sandbox_violations
        + check_one_customer_dial(ev)
        + check_orphans(ev)
    )
    return violations, sandbox_stats
