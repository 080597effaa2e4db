"""The request log: request ids, deadlines and whether each request was executed."""

from __future__ import annotations

import time

import httpx
import pytest

from devserver.sandbox.control import SandboxProcess

pytestmark = pytest.mark.timeout(30)

KEYS = {
    "ts", "method", "path", "operation", "status", "request_id", "deadline",
    "latency_ms", "duration_ms", "fault", "executed", "executed_at", "call_control_id",
    "client_state",
}  # fmt: skip


def test_log__records_headers_status_and_execution(
    api: httpx.Client, sandbox: SandboxProcess
) -> None:
    deadline = int(time.time() * 1000) + 5000
    body = {
        "connection_id": sandbox.call_connection_id,
        "to": "+15551112222",
        "from": sandbox.from_number,
    }
    ok = api.post(
        "/calls",
        json=body | {"client_state": "YQ=="},
        headers={"X-Request-Id": "req-1", "X-Request-Deadline": str(deadline)},
    )
    assert ok.status_code == 200
    bad = api.post("/calls", json={**body, "to": "x"}, headers={"X-Request-Id": "req-2"})
    assert bad.status_code == 422
    sandbox.set_fault("DialCall", status=503)
    failed = api.post(
        "/calls", json=body, headers={"X-Request-Id": "req-3", "X-Request-Deadline": "soon"}
    )
    assert failed.status_code == 503

    entries = sandbox.log()
    assert [set(e) for e in entries] == [KEYS] * 3
    first, second, third = entries
    assert first["request_id"] == "req-1" and first["deadline"] == deadline
    assert (first["method"], first["path"], first["operation"]) == ("POST", "/v2/calls", "DialCall")
    assert (first["status"], first["executed"], first["fault"]) == (200, True, None)
    assert first["ts"] <= first["executed_at"] <= deadline
    assert first["call_control_id"] == ok.json()["data"]["call_control_id"]
    assert first["client_state"] == "YQ=="
    assert (second["request_id"], second["status"], second["executed"]) == ("req-2", 422, False)
    assert second["executed_at"] is None and second["deadline"] is None
    assert (third["request_id"], third["deadline"], third["fault"]) == ("req-3", None, "status=503")
    assert third["executed"] is False
    assert second["call_control_id"] is None and third["call_control_id"] is None


def test_log__reads_are_executed_and_unknown_routes_are_not(
    api: httpx.Client, sandbox: SandboxProcess
) -> None:
    api.get("/credential_connections", headers={"X-Request-Id": "r"})
    api.get("/nowhere")
    entries = sandbox.log()
    assert [(e["operation"], e["status"], e["executed"]) for e in entries] == [
        ("ListCredentialConnections", 200, True),
        (None, 404, False),
    ]


def test_log__control_requests_are_not_logged_and_reset_clears(
    sandbox: SandboxProcess, api: httpx.Client
) -> None:
    sandbox.info()
    sandbox.webhooks()
    assert sandbox.log() == []
    api.get("/credential_connections")
    sandbox.reset(keep_state=True)
    assert sandbox.log() == []


def test_reset__keep_state_keeps_credentials(api: httpx.Client, sandbox: SandboxProcess) -> None:
    api.post("/telephony_credentials", json={"connection_id": sandbox.connection_id})
    sandbox.set_fault("*", latency_ms=10)
    sandbox.reset(keep_state=True)
    assert httpx.get(f"{sandbox.control_url}/faults").json() == []
    assert len(api.get("/telephony_credentials").json()["data"]) == 1
    sandbox.reset()
    assert api.get("/telephony_credentials").json()["data"] == []
    # The seeded connection comes back with the same id.
    assert [c["id"] for c in api.get("/credential_connections").json()["data"]] == [
        sandbox.connection_id
    ]


@pytest.mark.parametrize("payload", [b"not json", b"[]"])
def test_reset__tolerates_odd_bodies(sandbox: SandboxProcess, payload: bytes) -> None:
    resp = httpx.post(f"{sandbox.control_url}/reset", content=payload)
    assert resp.status_code in (200, 400)
