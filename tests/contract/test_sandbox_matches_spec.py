"""The sandbox answers the way Telnyx's own OpenAPI document says Telnyx answers.

Every operation is driven at the spec's path (under ``/v2``) and every answer is checked
for a declared status, a declared content type and a body valid against the schema for
that status, errors included; webhook deliveries are checked against the spec's
``webhooks``. Where the spec describes no body for an error (the telephony credential
operations declare 401/404/422 without content), the body is checked against the spec's
generic ``ErrorResponse``. Statuses the sandbox answers but the spec does not declare are
written out in ``SPEC_GAPS`` with the reason; everything else that differs fails.
"""

from __future__ import annotations

import base64
import json as jsonlib  # `json` is the request body below, as in httpx
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from devserver.sandbox.control import SandboxProcess
from tests.contract.conftest import ERROR_RESPONSE, Problem, Spec, report
from tests.helpers import WebhookReceiver as Receiver

pytestmark = pytest.mark.contract

CALL_OPERATIONS = ("DialCall", "RetrieveCallStatus", "HangupCall")
RECORD_OPERATIONS = (
    "StartCallRecord",
    "StopCallRecording",
    "PauseCallRecording",
    "ResumeCallRecording",
)
RECORDINGS_OPERATIONS = ("GetRecordings", "GetRecording", "DeleteRecording", "DeleteRecordings")
OTHER_OPERATIONS = (
    "FindTelephonyCredentials",
    "CreateTelephonyCredential",
    "GetTelephonyCredential",
    "UpdateTelephonyCredential",
    "DeleteTelephonyCredential",
    "CreateTelephonyCredentialToken",
    "ListCredentialConnections",
    "CreateCredentialConnection",
    "RetrieveCredentialConnection",
    "DeleteCredentialConnection",
)
FAULT_STATUSES = (429, 500, 503)
UNKNOWN = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
PATH_PARAMS = {"id": UNKNOWN, "call_control_id": "v3:unknown", "recording_id": UNKNOWN}
ALL_OPERATIONS = CALL_OPERATIONS + RECORD_OPERATIONS + RECORDINGS_OPERATIONS + OTHER_OPERATIONS
WEBHOOKS = {
    "call.initiated": "callInitiated",
    "call.answered": "callAnswered",
    "call.bridged": "callBridged",
    "call.hangup": "callHangup",
    "call.recording.saved": "callRecordingSaved",
    "call.recording.error": "callRecordingError",
}

# Statuses the sandbox answers although the operation does not declare them. Bodies are
# still checked against ErrorResponse; test_spec_gaps__are_still_undeclared keeps the
# list honest when the spec changes.
SPEC_GAPS: dict[tuple[str, int], str] = {
    ("CreateTelephonyCredential", 401): "a missing key; the operation declares only 201, 422",
    ("CreateTelephonyCredentialToken", 401): "a missing key; the operation declares 201, 404",
    ("CreateTelephonyCredential", 403): (
        "the credential limit (error 10039, documented by Telnyx as HTTP 403); "
        "the operation declares only 201, 422"
    ),
    ("CreateTelephonyCredentialToken", 422): (
        "a token for an expired credential; the operation declares only 201, 404"
    ),
    **{
        (op, status): "an injected fault; the spec declares 429/500/503 only for call control"
        for op in OTHER_OPERATIONS
        for status in FAULT_STATUSES
    },
}


@dataclass
class Api:
    """Drives the sandbox at the spec's paths and checks each answer against the spec."""

    sandbox: SandboxProcess
    spec: Spec
    http: httpx.Client

    def call(
        self,
        op_id: str,
        *,
        auth: bool = True,
        params: dict[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        **path: str,
    ) -> httpx.Response:
        method = self.spec.operations[op_id][0]
        url = self.sandbox.base_url + self.spec.path(op_id, **{**PATH_PARAMS, **path})
        headers = {"Authorization": f"Bearer {self.sandbox.api_key}"} if auth else {}
        if content is not None:
            headers["Content-Type"] = "application/json"
        return self.http.request(
            method, url, headers=headers, params=params, json=json, content=content
        )

    def check(self, op_id: str, resp: httpx.Response, expect: int) -> list[Problem]:
        """Problems with one answer: unexpected status, or anything the spec disagrees with."""
        status = resp.status_code
        problems = []
        if status != expect:
            detail = f"expected status {expect}, got {status}: {resp.text[:300]}"
            problems.append(Problem(f"{op_id} {status}", "", detail))
        known = (op_id, status) in SPEC_GAPS or self.spec.response(op_id, status) is not None
        fallback = ERROR_RESPONSE if status >= 400 and known else None
        content_type = resp.headers.get("content-type", "")
        problems += self.spec.check_response(
            op_id, status, content_type, resp.content, fallback=fallback
        )
        return problems

    def run(self, op_id: str, expect: int, problems: list[Problem], **kw: Any) -> Any:
        """Call, check, collect problems; the JSON body (or text) for the next step."""
        resp = self.call(op_id, **kw)
        problems += self.check(op_id, resp, expect)
        if resp.status_code != expect:  # the steps after this one depend on it
            pytest.fail(report(problems))
        if resp.headers.get("content-type", "").startswith("application/json"):
            return resp.json()
        return resp.text

    def credential(self, **fields: Any) -> str:
        """A new credential's id."""
        body = {"connection_id": self.sandbox.connection_id, **fields}
        resp = self.call("CreateTelephonyCredential", json=body)
        assert resp.status_code == 201, resp.text
        cred_id: str = resp.json()["data"]["id"]
        return cred_id

    def dial(self, **fields: Any) -> str:
        """A new call's call_control_id."""
        resp = self.call("DialCall", json=dial_body(self.sandbox, **fields))
        assert resp.status_code == 200, resp.text
        call_id: str = resp.json()["data"]["call_control_id"]
        return call_id


def dial_body(sandbox: SandboxProcess, **fields: Any) -> dict[str, Any]:
    """A valid Dial request body."""
    return {
        "connection_id": sandbox.call_connection_id,
        "to": "+15551230001",
        "from": sandbox.from_number,
        "client_state": base64.b64encode(b"contract").decode(),
        **fields,
    }


def in_hours(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


@pytest.fixture
def api(sandbox: SandboxProcess, spec: Spec) -> Iterator[Api]:
    with httpx.Client(timeout=10.0) as http:
        yield Api(sandbox, spec, http)


def test_spec_gaps__are_still_undeclared(spec: Spec) -> None:
    declared_now = [gap for gap in SPEC_GAPS if spec.response(*gap) is not None]
    assert not declared_now, (
        f"the spec declares these now; drop them from SPEC_GAPS: {declared_now}"
    )


def test_sandbox__credential_operations_match_spec(api: Api) -> None:
    problems: list[Problem] = []
    created = api.run(
        "CreateTelephonyCredential",
        201,
        problems,
        json={
            "connection_id": api.sandbox.connection_id,
            "name": "contract",
            "tag": "contract",
            "expires_at": in_hours(1),
        },
    )
    cred_id = created["data"]["id"]
    api.run(
        "CreateTelephonyCredential",
        201,
        problems,
        json={"connection_id": api.sandbox.connection_id},  # no name, tag or expiry
    )
    api.run("GetTelephonyCredential", 200, problems, id=cred_id)
    api.run("UpdateTelephonyCredential", 200, problems, id=cred_id, json={"name": "renamed"})
    api.run("FindTelephonyCredentials", 200, problems)
    api.run(
        "FindTelephonyCredentials",
        200,
        problems,
        params={"filter[tag]": "contract", "page[number]": "1", "page[size]": "1"},
    )
    api.run("CreateTelephonyCredentialToken", 201, problems, id=cred_id)
    api.run("DeleteTelephonyCredential", 200, problems, id=cred_id)
    assert not problems, report(problems)


def test_sandbox__connection_operations_match_spec(api: Api) -> None:
    problems: list[Problem] = []
    api.run("ListCredentialConnections", 200, problems)
    api.run(
        "ListCredentialConnections",
        200,
        problems,
        params={"sort": "connection_name", "page[number]": "1", "page[size]": "10"},
    )
    body = {
        "connection_name": "contract-connection",
        "user_name": f"contract{uuid.uuid4().hex[:8]}",
        "password": "contract-password-1",
    }
    created = api.run("CreateCredentialConnection", 201, problems, json=body)
    conn_id = created["data"]["id"]
    api.run("RetrieveCredentialConnection", 200, problems, id=conn_id)
    api.run("DeleteCredentialConnection", 200, problems, id=conn_id)
    assert not problems, report(problems)


def test_sandbox__call_operations_match_spec(api: Api, receiver: Receiver) -> None:
    problems: list[Problem] = []
    body = dial_body(api.sandbox, webhook_url=receiver.url(), command_id=str(uuid.uuid4()))
    dialled = api.run("DialCall", 200, problems, json=body)
    call_id = dialled["data"]["call_control_id"]
    api.run("RetrieveCallStatus", 200, problems, call_control_id=call_id)
    hangup = {"command_id": str(uuid.uuid4()), "client_state": body["client_state"]}
    api.run("HangupCall", 200, problems, call_control_id=call_id, json=hangup)
    api.run("RetrieveCallStatus", 200, problems, call_control_id=call_id)  # ended, end_time
    assert not problems, report(problems)


@pytest.mark.parametrize("op_id", ALL_OPERATIONS)
def test_sandbox__unauthenticated_answer_matches_spec(api: Api, op_id: str) -> None:
    problems = api.check(op_id, api.call(op_id, auth=False), 401)
    assert not problems, report(problems)


@pytest.mark.parametrize(
    ("op_id", "body"),
    [
        ("GetTelephonyCredential", None),
        ("UpdateTelephonyCredential", {"name": "x"}),
        ("DeleteTelephonyCredential", None),
        ("CreateTelephonyCredentialToken", None),
        ("RetrieveCredentialConnection", None),
        ("DeleteCredentialConnection", None),
        ("RetrieveCallStatus", None),
        ("HangupCall", {}),
        ("StartCallRecord", {"format": "wav", "channels": "dual"}),
        ("StopCallRecording", {}),
        ("PauseCallRecording", {}),
        ("ResumeCallRecording", {}),
        ("GetRecording", None),
        ("DeleteRecording", None),
        ("DeleteRecordings", {"ids": [UNKNOWN]}),
    ],
)
def test_sandbox__not_found_answer_matches_spec(api: Api, op_id: str, body: Any) -> None:
    problems = api.check(op_id, api.call(op_id, json=body), 404)
    assert not problems, report(problems)


def _token_for_expired(api: Api) -> httpx.Response:
    cred_id = api.credential(expires_at=in_hours(-1))
    return api.call("CreateTelephonyCredentialToken", id=cred_id)


def _update_with_bad_expiry(api: Api) -> httpx.Response:
    cred_id = api.credential()
    return api.call("UpdateTelephonyCredential", id=cred_id, json={"expires_at": 42})


def _hangup_ended_call(api: Api) -> httpx.Response:
    call_id = api.dial()
    first = api.call("HangupCall", call_control_id=call_id, json={})
    assert first.status_code == 200, first.text
    return api.call("HangupCall", call_control_id=call_id, json={"command_id": "again"})


INVALID: dict[str, tuple[str, int, Callable[[Api], httpx.Response]]] = {
    "credential-without-connection": (
        "CreateTelephonyCredential",
        422,
        lambda api: api.call("CreateTelephonyCredential", json={"name": "x"}),
    ),
    "credential-on-unknown-connection": (
        "CreateTelephonyCredential",
        422,
        lambda api: api.call("CreateTelephonyCredential", json={"connection_id": "1"}),
    ),
    "credential-update-bad-expiry": ("UpdateTelephonyCredential", 422, _update_with_bad_expiry),
    "credentials-page-size-zero": (
        "FindTelephonyCredentials",
        400,
        lambda api: api.call("FindTelephonyCredentials", params={"page[size]": "0"}),
    ),
    "token-for-expired-credential": ("CreateTelephonyCredentialToken", 422, _token_for_expired),
    "connection-without-password": (
        "CreateCredentialConnection",
        422,
        lambda api: api.call(
            "CreateCredentialConnection", json={"connection_name": "c", "user_name": "contract1"}
        ),
    ),
    "connections-bad-sort": (
        "ListCredentialConnections",
        400,
        lambda api: api.call("ListCredentialConnections", params={"sort": "bogus"}),
    ),
    "connections-short-name-filter": (
        "ListCredentialConnections",
        400,
        lambda api: api.call(
            "ListCredentialConnections", params={"filter[connection_name][contains]": "ab"}
        ),
    ),
    "dial-without-to": (
        "DialCall",
        422,
        lambda api: api.call(
            "DialCall", json={k: v for k, v in dial_body(api.sandbox).items() if k != "to"}
        ),
    ),
    "dial-bad-number": (
        "DialCall",
        422,
        lambda api: api.call("DialCall", json=dial_body(api.sandbox, to="555-1234")),
    ),
    "dial-bad-client-state": (
        "DialCall",
        422,
        lambda api: api.call("DialCall", json=dial_body(api.sandbox, client_state="not base64!")),
    ),
    "dial-not-json": ("DialCall", 400, lambda api: api.call("DialCall", content=b"{not json")),
    "hangup-ended-call": ("HangupCall", 422, _hangup_ended_call),
    "record-without-channels": (
        "StartCallRecord",
        422,
        lambda api: api.call("StartCallRecord", call_control_id=api.dial(), json={"format": "wav"}),
    ),
    "record-stop-without-recording": (
        "StopCallRecording",
        422,
        lambda api: api.call("StopCallRecording", call_control_id=api.dial(), json={}),
    ),
    "recordings-page-size-zero": (
        "GetRecordings",
        400,
        lambda api: api.call("GetRecordings", params={"page[size]": "0"}),
    ),
    "delete-recordings-without-ids": (
        "DeleteRecordings",
        422,
        lambda api: api.call("DeleteRecordings", json={}),
    ),
}


@pytest.mark.parametrize("case", INVALID)
def test_sandbox__invalid_request_answer_matches_spec(api: Api, case: str) -> None:
    op_id, expect, make = INVALID[case]
    problems = api.check(op_id, make(api), expect)
    assert not problems, report(problems)


def test_sandbox__credential_limit_answer_matches_spec(api: Api) -> None:
    for _ in range(3):  # SANDBOX_ARGS: --credential-limit 3
        api.credential()
    resp = api.call("CreateTelephonyCredential", json={"connection_id": api.sandbox.connection_id})
    problems = api.check("CreateTelephonyCredential", resp, 403)
    assert not problems, report(problems)
    # telephony/worker/adapter.py recognises the limit by this code (LIMIT_CODES)
    assert resp.json()["errors"][0]["code"] == "10039"


@pytest.mark.parametrize("status", FAULT_STATUSES)
@pytest.mark.parametrize("op_id", ALL_OPERATIONS)
def test_sandbox__injected_fault_answer_matches_spec(api: Api, op_id: str, status: int) -> None:
    api.sandbox.set_fault(op_id, status=status, count=1)
    body = {} if api.spec.operation(op_id)[0].get("requestBody") else None
    problems = api.check(op_id, api.call(op_id, json=body), status)
    assert not problems, report(problems)


def _answered_then_callee_hangs_up(api: Api, url: str, receiver: Receiver) -> None:
    api.dial(webhook_url=url)


def _hung_up_before_answer(api: Api, url: str, receiver: Receiver) -> None:
    call_id = api.dial(webhook_url=url)
    assert api.call("HangupCall", call_control_id=call_id, json={}).status_code == 200


def _hung_up_after_answer(api: Api, url: str, receiver: Receiver) -> None:
    call_id = api.dial(webhook_url=url)
    assert len(receiver.wait(url, 2)) == 2, "call.answered never arrived"
    assert api.call("HangupCall", call_control_id=call_id, json={}).status_code == 200


def _not_answered(api: Api, url: str, receiver: Receiver) -> None:
    api.sandbox.set_webhooks(answer=False)  # reset() restores it for the next test
    api.dial(webhook_url=url)


CALLS: dict[str, tuple[Callable[[Api, str, Receiver], None], list[str]]] = {
    "answered-then-callee-hangs-up": (
        _answered_then_callee_hangs_up,
        ["call.initiated", "call.answered", "call.hangup"],
    ),
    "hung-up-before-answer": (_hung_up_before_answer, ["call.initiated", "call.hangup"]),
    "hung-up-after-answer": (
        _hung_up_after_answer,
        ["call.initiated", "call.answered", "call.hangup"],
    ),
    "not-answered": (_not_answered, ["call.initiated", "call.hangup"]),
}


@pytest.mark.parametrize("case", CALLS)
def test_sandbox__webhooks_match_spec(api: Api, receiver: Receiver, case: str) -> None:
    play, expected = CALLS[case]
    url = receiver.url()
    play(api, url, receiver)
    deliveries = receiver.wait(url, len(expected))
    events = [_event_type(d.body) for d in deliveries]
    assert events == expected
    problems: list[Problem] = []
    for delivery, event_type in zip(deliveries, events, strict=True):
        problems += api.spec.check_webhook(WEBHOOKS[event_type], delivery.headers, delivery.body)
    assert not problems, report(problems)


def _event_type(body: bytes) -> str:
    event_type: str = jsonlib.loads(body)["data"]["event_type"]
    return event_type


def test_sandbox__recording_operations_and_webhooks_match_spec(
    api: Api, receiver: Receiver
) -> None:
    api.sandbox.set_webhooks(talk_time=30)  # reset() restores it for the next test
    problems: list[Problem] = []
    url = receiver.url()
    call_id = api.dial(webhook_url=url)
    assert len(receiver.wait(url, 2)) == 2, "call.answered never arrived"
    start = {"format": "mp3", "channels": "dual", "command_id": str(uuid.uuid4())}
    api.run("StartCallRecord", 200, problems, call_control_id=call_id, json=start)
    for op_id in ("PauseCallRecording", "ResumeCallRecording", "StopCallRecording"):
        api.run(op_id, 200, problems, call_control_id=call_id, json={"client_state": "YQ=="})
    recorded = api.dial(webhook_url=url, record="record-from-answer", record_format="wav")
    api.sandbox.wait_recording(recorded, status="recording")
    api.run("HangupCall", 200, problems, call_control_id=recorded, json={})
    api.sandbox.set_fault("StartCallRecord", recording_error=True, count=1)
    api.run(
        "StartCallRecord", 200, problems, call_control_id=call_id, json=start | {"command_id": "2"}
    )
    api.run("HangupCall", 200, problems, call_control_id=call_id, json={})
    # initiated, answered and hangup twice, saved twice, one error
    deliveries = receiver.wait(url, 9)
    for delivery in deliveries:
        event_type = _event_type(delivery.body)
        problems += api.spec.check_webhook(WEBHOOKS[event_type], delivery.headers, delivery.body)
    events = sorted(_event_type(d.body) for d in deliveries)
    assert events.count("call.recording.saved") == 2, events
    assert events.count("call.recording.error") == 1, events

    listed = api.run("GetRecordings", 200, problems, params={"filter[call_control_id]": call_id})
    recording_id = listed["data"][0]["id"]
    api.run("GetRecordings", 200, problems, params={"page[number]": "1", "page[size]": "1"})
    api.run("GetRecording", 200, problems, recording_id=recording_id)
    api.run("DeleteRecording", 200, problems, recording_id=recording_id)
    other = api.run("GetRecordings", 200, problems)["data"][0]["id"]
    api.run("DeleteRecordings", 200, problems, json={"ids": [other]})
    assert not problems, report(problems)
