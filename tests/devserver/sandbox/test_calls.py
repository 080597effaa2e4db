"""Dial, call status and hangup through the official SDK, and how bad input is refused."""

from __future__ import annotations

import time

import httpx
import pytest
import telnyx

from devserver.sandbox.control import SandboxProcess

from .helpers import assert_error

pytestmark = pytest.mark.timeout(30)


async def test_calls__dial_status_hangup(sandbox: SandboxProcess) -> None:
    sandbox.set_webhooks(talk_time=60)  # the call must still be up when we hang up
    async with telnyx.AsyncTelnyx(
        api_key=sandbox.api_key, base_url=sandbox.base_url, max_retries=0
    ) as sdk:
        dialled = (
            await sdk.calls.dial(
                connection_id=sandbox.call_connection_id,
                to="+15551230000",
                from_=sandbox.from_number,
                client_state="aGVsbG8=",
            )
        ).data
        assert dialled is not None
        assert dialled.call_control_id.startswith("v3:")
        assert dialled.call_leg_id and dialled.call_session_id
        assert dialled.is_alive is False  # the spec: always false for Dial
        assert dialled.record_type == "call"
        assert dialled.client_state == "aGVsbG8="

        status = (await sdk.calls.retrieve_status(dialled.call_control_id)).data
        assert status is not None
        assert status.is_alive is True
        assert status.call_leg_id == dialled.call_leg_id
        assert status.start_time and status.end_time is None
        assert status.call_duration is not None and status.call_duration >= 0

        result = (await sdk.calls.actions.hangup(dialled.call_control_id)).data
        assert result is not None and result.result == "ok"

        ended = (await sdk.calls.retrieve_status(dialled.call_control_id)).data
        assert ended is not None
        assert ended.is_alive is False
        assert ended.end_time is not None

        with pytest.raises(telnyx.UnprocessableEntityError) as err:
            await sdk.calls.actions.hangup(dialled.call_control_id)
        assert_error(err.value.body, code="90018")


def test_calls__unknown_call_is_404(sdk: telnyx.Telnyx) -> None:
    for action in (sdk.calls.retrieve_status, sdk.calls.actions.hangup):
        with pytest.raises(telnyx.NotFoundError) as err:
            action("v3:does-not-exist")
        assert_error(err.value.body, code="10005")


def test_calls__call_ends_by_itself_after_talk_time(
    sdk: telnyx.Telnyx, sandbox: SandboxProcess
) -> None:
    sandbox.set_webhooks(answer_after=0.05, talk_time=0.1)
    call = sdk.calls.dial(
        connection_id=sandbox.call_connection_id, to="+15551230001", from_="+15550009999"
    )
    assert call.data is not None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        status = sdk.calls.retrieve_status(call.data.call_control_id).data
        assert status is not None
        if not status.is_alive:
            break
        time.sleep(0.05)
    assert status.is_alive is False


def test_calls__repeated_command_id_is_ignored(api: httpx.Client, sandbox: SandboxProcess) -> None:
    body = {
        "connection_id": sandbox.call_connection_id,
        "to": "+15551230002",
        "from": sandbox.from_number,
        "command_id": "dial-1",
    }
    first = api.post("/calls", json=body).json()["data"]
    again = api.post("/calls", json=body).json()["data"]
    assert again["call_control_id"] == first["call_control_id"]
    executed = [e["executed"] for e in sandbox.log() if e["operation"] == "DialCall"]
    assert executed == [True, False]


def test_calls__dial_accepts_sip_uris_and_dtmf_suffix(
    api: httpx.Client, sandbox: SandboxProcess
) -> None:
    for to in ("sip:agent@sip.telnyx.com", "+18004247767,200", ["+15551230003", "+15551230004"]):
        body = {"connection_id": sandbox.call_connection_id, "to": to, "from": sandbox.from_number}
        assert api.post("/calls", json=body).status_code == 200, to


def test_calls__dial_validation(api: httpx.Client, sandbox: SandboxProcess) -> None:
    good = {
        "connection_id": sandbox.call_connection_id,
        "to": "+15551230005",
        "from": sandbox.from_number,
    }
    cases = [
        ({k: v for k, v in good.items() if k != "to"}, "10004", "/to"),
        ({**good, "from": ""}, "10004", "/from"),
        ({**good, "to": "5551230005"}, "10016", "/to"),
        ({**good, "from": "+0123"}, "10016", "/from"),
        ({**good, "connection_id": sandbox.connection_id}, "10015", "/connection_id"),
        ({**good, "answering_machine_detection": "maybe"}, "10032", "/answering_machine_detection"),
        ({**good, "time_limit_secs": 5}, "10033", "/time_limit_secs"),
        ({**good, "timeout_secs": "thirty"}, "10015", "/timeout_secs"),
        ({**good, "to": 15551230005}, "10015", "/to"),
        ({**good, "client_state": "not base64!"}, "10015", "/client_state"),
        ({**good, "webhook_url": "ftp://example.com/x"}, "10003", "/webhook_url"),
        ({**good, "billing_group_id": "nope"}, "10015", "/billing_group_id"),
        (
            {**good, "custom_headers": [{"name": 1, "value": "v"}]},
            "10015",
            "/custom_headers/0/name",
        ),
    ]
    for body, code, pointer in cases:
        resp = api.post("/calls", json=body)
        assert resp.status_code == 422, (body, resp.text)
        assert_error(resp.json(), code=code, pointer=pointer)

    bad_json = api.post("/calls", content=b'{"to": ', headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400
    assert "position 7" in assert_error(bad_json.json(), code="10028")["detail"]
    assert all(not e["executed"] for e in sandbox.log())
