"""Injected latency, errors, hangs and garbled answers, set through the control endpoint."""

from __future__ import annotations

import json
import time

import httpx
import pytest
import telnyx

from devserver.sandbox.control import SandboxError, SandboxProcess
from devserver.sandbox.faults import FaultRule, FaultTable

from .helpers import assert_error

pytestmark = pytest.mark.timeout(30)


def wait_log(sandbox: SandboxProcess, count: int, timeout: float = 5.0) -> list[dict]:
    end = time.monotonic() + timeout
    while (entries := sandbox.log()) and len(entries) < count and time.monotonic() < end:
        time.sleep(0.05)
    return entries


def test_faults__latency_delays_the_answer(sdk: telnyx.Telnyx, sandbox: SandboxProcess) -> None:
    sandbox.set_fault("ListCredentialConnections", latency_ms=300)
    started = time.monotonic()
    sdk.credential_connections.list()
    assert time.monotonic() - started >= 0.3
    entry = sandbox.log()[-1]
    assert entry["latency_ms"] == 300 and entry["duration_ms"] >= 300
    assert entry["executed"] is True and entry["fault"] is None


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [(500, telnyx.InternalServerError, "10007"), (503, telnyx.InternalServerError, "10007")],
)
def test_faults__error_rate_one_always_fails(
    sdk: telnyx.Telnyx, sandbox: SandboxProcess, status: int, error: type[Exception], code: str
) -> None:
    sandbox.set_fault("CreateTelephonyCredential", error_rate=1.0, status=status)
    for _ in range(3):
        with pytest.raises(error) as err:
            sdk.telephony_credentials.create(connection_id=sandbox.connection_id)
        assert err.value.status_code == status  # type: ignore[attr-defined]
        assert_error(err.value.body, code=code)  # type: ignore[attr-defined]
    assert [e["fault"] for e in sandbox.log()] == [f"status={status}"] * 3
    assert not any(e["executed"] for e in sandbox.log())
    sandbox.clear_faults()
    assert list(sdk.telephony_credentials.list()) == []


def test_faults__429_carries_retry_after(api: httpx.Client, sandbox: SandboxProcess) -> None:
    sandbox.set_fault("*", status=429, retry_after=7)
    resp = api.get("/credential_connections")
    assert resp.status_code == 429
    assert resp.headers["Retry-After"] == "7"
    assert assert_error(resp.json(), code="10011")["title"] == "Too many requests"


def test_faults__error_rate_zero_never_fails(api: httpx.Client, sandbox: SandboxProcess) -> None:
    sandbox.set_fault("*", error_rate=0.0, status=503)
    assert all(api.get("/credential_connections").status_code == 200 for _ in range(20))


def test_faults__hang_holds_until_the_client_gives_up(
    api: httpx.Client, sandbox: SandboxProcess
) -> None:
    sandbox.set_fault("GetTelephonyCredential", hang=True)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        api.get("/telephony_credentials/abc", timeout=0.5)
    assert time.monotonic() - started >= 0.5
    entry = wait_log(sandbox, 1)[-1]
    assert (entry["fault"], entry["status"], entry["executed"]) == ("hang", None, False)
    # The server is still fine for everyone else.
    assert api.get("/credential_connections").status_code == 200


def test_faults__malformed_body_is_not_json(
    sdk: telnyx.Telnyx, api: httpx.Client, sandbox: SandboxProcess
) -> None:
    sandbox.set_fault("ListCredentialConnections", malformed=True)
    resp = api.get("/credential_connections")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(resp.content)
    with pytest.raises(Exception):  # noqa: B017 - the SDK's own decode error, whichever it is
        sdk.credential_connections.list()


def test_faults__execute_runs_the_operation_then_fails(
    sdk: telnyx.Telnyx, sandbox: SandboxProcess
) -> None:
    sandbox.set_fault("CreateTelephonyCredential", status=503, execute=True)
    with pytest.raises(telnyx.InternalServerError):
        sdk.telephony_credentials.create(connection_id=sandbox.connection_id)
    entry = sandbox.log()[-1]
    assert (entry["status"], entry["executed"], entry["fault"]) == (503, True, "status=503")
    sandbox.clear_faults()
    assert len(list(sdk.telephony_credentials.list())) == 1


def test_faults__count_limits_a_rule_to_n_requests(
    api: httpx.Client, sandbox: SandboxProcess
) -> None:
    sandbox.set_fault("ListCredentialConnections", status=500, count=2)
    codes = [api.get("/credential_connections").status_code for _ in range(3)]
    assert codes == [500, 500, 200]
    assert sandbox.set_fault("DialCall", latency_ms=1) == [
        {"operation": "DialCall", "latency_ms": 1}
    ]


def test_faults__operation_rule_overrides_wildcard_key_by_key(
    api: httpx.Client, sandbox: SandboxProcess
) -> None:
    sandbox.set_fault("*", latency_ms=150)
    sandbox.set_fault("ListCredentialConnections", status=503)
    started = time.monotonic()
    assert api.get("/credential_connections").status_code == 503
    assert time.monotonic() - started >= 0.15
    assert api.get("/telephony_credentials").status_code == 200


def test_faults__control_endpoint_rejects_bad_rules(sandbox: SandboxProcess) -> None:
    for bad in (
        {"operation": "Nope"},
        {"error_rate": 2},
        {"status": 200},
        {"hang": "maybe"},
        {"colour": 1},
    ):
        with pytest.raises(SandboxError):
            sandbox.set_fault(**bad)
    resp = httpx.post(f"{sandbox.control_url}/faults", content=b"[1]")
    assert resp.status_code == 400 and "error" in resp.json()


def test_fault_rule__command_line_syntax() -> None:
    rule = FaultRule.parse("DialCall:status=503,rate=0.5")
    assert rule.as_dict() == {"operation": "DialCall", "status": 503, "error_rate": 0.5}
    assert FaultRule.parse("*:latency=200").as_dict() == {"operation": "*", "latency_ms": 200}
    assert FaultRule.parse("latency_ms=20").operation == "*"
    assert FaultRule.parse("CreateTelephonyCredentialToken:hang").hang is True
    assert FaultRule.parse("HangupCall:malformed=0,execute,count=2").as_dict() == {
        "operation": "HangupCall",
        "malformed": False,
        "execute": True,
        "count": 2,
    }
    assert FaultRule.parse("DialCall:status=429").error_rate == 1.0
    for bad in ("Dial:status=503", "DialCall:rate=x", "DialCall:status=200", "DialCall:colour=red"):
        with pytest.raises(ValueError):
            FaultRule.parse(bad)


def test_fault_table__seeded_rate_is_reproducible() -> None:
    def outcomes() -> list[int | None]:
        table = FaultTable(seed=7)
        table.set(FaultRule.parse("DialCall:rate=0.5"))
        return [table.decide("DialCall").status for _ in range(40)]

    first = outcomes()
    assert first == outcomes()
    assert set(first) == {None, 503}
