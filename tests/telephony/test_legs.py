"""client_state for two legs, and what each leg's hangup means: pure functions, no I/O."""

from __future__ import annotations

import base64
import uuid

import pytest

from telephony.legs import (
    Leg,
    Outcome,
    agent_sip_uri,
    decode_client_state,
    encode_client_state,
    hangup_outcome,
)

C, A = Leg.CUSTOMER, Leg.AGENT
CALL_ID = uuid.UUID("2f0d7f0e-8c1b-4d0e-9f4a-1b2c3d4e5f60")


@pytest.mark.parametrize("leg", list(Leg))
def test_legs__client_state_round_trips_as_base64(leg: Leg) -> None:
    state = encode_client_state(CALL_ID, leg)
    assert base64.b64decode(state, validate=True)  # what Telnyx requires
    assert decode_client_state(state) == (CALL_ID, leg)


def test_legs__single_leg_client_state_decodes_without_a_leg() -> None:
    assert decode_client_state(base64.b64encode(str(CALL_ID).encode()).decode()) == (CALL_ID, None)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        5,
        "!!not base64!!",
        base64.b64encode(b"\xff\xfe").decode(),
        base64.b64encode(b'{"call": "nope", "leg": "agent"}').decode(),
        base64.b64encode(f'{{"call": "{CALL_ID}", "leg": "boss"}}'.encode()).decode(),
        base64.b64encode(b"[1, 2]").decode(),
        "a" * 600,
    ],
)
def test_legs__anything_else_is_not_ours(value: object) -> None:
    assert decode_client_state(value) is None


def test_legs__agent_sip_uri() -> None:
    assert agent_sip_uri("gencred123") == "sip:gencred123@sip.telnyx.com"


@pytest.mark.parametrize(
    ("leg", "cause", "source", "answered", "dialed", "expected"),
    [
        (C, "normal_clearing", "callee", True, True, Outcome("completed", "", "customer")),
        (A, "normal_clearing", "callee", True, True, Outcome("completed", "", "agent")),
        (A, "normal_clearing", "caller", True, True, Outcome("completed", "", None)),
        (C, "user_busy", "callee", False, True, Outcome("busy", "", "customer")),
        (C, "timeout", "caller", False, True, Outcome("no_answer", "", "customer")),
        (C, "originator_cancel", "caller", False, True, Outcome("canceled")),
        (C, "not_found", "callee", False, True, Outcome("failed", "customer_leg_failed", "system")),
        (A, "timeout", "caller", False, False, Outcome("no_answer", "agent_no_answer", "system")),
        (A, "not_found", "callee", False, False, Outcome("failed", "agent_unreachable", "system")),
        (A, "call_rejected", "callee", False, False, Outcome("canceled", "", "agent")),
        (A, "normal_clearing", "callee", False, True, Outcome("canceled", "", "agent")),
        (A, "normal_clearing", "caller", False, True, Outcome(None)),
    ],
)  # fmt: skip
def test_legs__hangup_outcome(leg, cause, source, answered, dialed, expected) -> None:
    outcome = hangup_outcome(
        leg, cause=cause, source=source, answered=answered, customer_dialed=dialed
    )
    assert outcome == expected
