"""`make chaos-short` as a test: the whole product under load and faults keeps its promises.

Runs ``python -m bench.chaos --short`` as a subprocess (it starts and stops its own Redis,
sandbox, supervisor and daphne in a temporary directory) and reads its JSON report. The
invariants themselves are defined and documented in bench/chaos_check.py and
docs/CHAOS.md; this test only insists that none was violated, that every kind of fault
was really injected, and that nothing was left running. The two-leg checks are also
tested on hand-made evidence, without running anything.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from bench.chaos_check import (
    Evidence,
    check_one_customer_dial,
    check_provider_agrees,
    check_settled,
    check_web,
)
from bench.chaos_faults import KINDS
from bench.chaos_load import Record
from tests.helpers import run_bench


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.xdist_group("supervisors")
def test_chaos_short__no_invariant_violated(tmp_path: Path) -> None:
    run = run_bench("bench.chaos", ["--short"], tmp_path / "chaos.json", timeout=270)
    report, text = run.report, run.output
    assert report["violations"] == [], text
    assert run.returncode == 0, text
    assert report["faults"]["skipped"] == 0
    assert all(report["faults"]["by_kind"][kind] >= 1 for kind in KINDS), report["faults"]
    assert report["processes"]["leftovers"] == []
    assert report["requests"]["total"] > 200


def _state(call: str, leg: str) -> str:
    return base64.b64encode(json.dumps({"call": call, "leg": leg}).encode()).decode()


def _dial(call: str, leg: str, ccid: str) -> dict[str, Any]:
    return {"operation": "DialCall", "executed": True, "request_id": f"r-{ccid}", "ts": 1,
            "call_control_id": ccid, "client_state": _state(call, leg)}  # fmt: skip


def _evidence(calls: dict[str, dict[str, Any]], **kw: Any) -> Evidence:
    base: dict[str, Any] = dict(
        records=[], request_timeout=3, margin=1, daphne_pid=1, daphne_alive_at_end=True,
        daphne_exit=None, calls=calls, users={}, sandbox_log=[], webhooks=[], live_calls={},
        leftovers=[], recovered=True,
    )  # fmt: skip
    return Evidence(**(base | kw))


def _row(status: str, agent: str | None = "a1", customer: str | None = "c1") -> dict[str, Any]:
    return {"status": status, "agent_call_control_id": agent, "call_control_id": customer}


def test_check__two_leg_statuses_are_terminal_and_a_live_leg_excuses_a_live_row() -> None:
    calls = {f"k{i}": _row(s) for i, s in enumerate(("no_answer", "busy", "canceled"))}
    calls["live"] = _row("dialing", agent="a9", customer=None)
    calls["stuck"] = _row("ringing", agent="a8", customer="c8")
    ev = _evidence(calls, live_calls={"a9": True, "a8": False, "c8": False})
    assert [v["call_id"] for v in check_settled(ev)] == ["stuck"]


def test_check__each_dialled_leg_known_to_its_row() -> None:
    ev = _evidence(
        {"k1": _row("completed"), "k2": _row("failed", customer=None)},
        sandbox_log=[
            _dial("k1", "agent", "a1"), _dial("k1", "customer", "c1"),
            _dial("k2", "agent", "a1"), _dial("k2", "customer", "c2"),
            _dial("k3", "agent", "a3"),
        ],
    )  # fmt: skip
    problems = [(v.get("call_id"), v["problem"]) for v in check_provider_agrees(ev)]
    assert problems == [
        ("k2", "dialled, row does not know its customer leg"),
        ("k3", "dialled, no row"),
    ]


def test_check__only_a_customer_answer_forbids_failed() -> None:
    calls = {"k1": _row("failed"), "k2": _row("busy"), "k3": _row("canceled")}
    hooks = [{"event_type": "call.answered", "call_id": "k1", "leg": "agent"}] + [
        {"event_type": "call.answered", "call_id": k, "leg": "customer"} for k in ("k2", "k3")
    ]
    problems = [v["problem"] for v in check_provider_agrees(_evidence(calls, webhooks=hooks))]
    assert problems == ["customer answered at the provider, recorded busy"]


def test_check__a_customer_dialled_twice_for_one_call() -> None:
    log = [_dial("k1", "agent", "a1"), _dial("k1", "customer", "c1")]
    log += [_dial("k1", "customer", "c2"), _dial("k2", "customer", "c3")]
    [v] = check_one_customer_dial(_evidence({}, sandbox_log=log))
    assert (v["call_id"], v["problem"]) == ("k1", "customer dialled 2 times")


def test_check__a_409_is_not_an_expected_answer() -> None:
    record = Record("u", "call", "POST", "/api/webrtc/call", 0, 0.1, 409, "application/json",
                    "no_credential")  # fmt: skip
    [v] = check_web(_evidence({}, records=[record]))
    assert v["problem"] == "unexpected status for this request" and v["code"] == "no_credential"
