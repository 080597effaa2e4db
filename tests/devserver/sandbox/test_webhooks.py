"""Signed call webhooks: order, shape, signatures, early hangup, no answer, retries."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import telnyx
from nacl.signing import VerifyKey

from devserver.sandbox.control import SandboxProcess
from tests.helpers import Hook, WebhookReceiver

from .helpers import parse_time

pytestmark = pytest.mark.timeout(30)

PAYLOAD_KEYS = {
    "call_control_id",
    "call_leg_id",
    "call_session_id",
    "connection_id",
    "from",
    "to",
    "start_time",
}


def dial(api: httpx.Client, sandbox: SandboxProcess, **extra: Any) -> dict[str, Any]:
    body = {
        "connection_id": sandbox.call_connection_id,
        "to": "+15557654321",
        "from": sandbox.from_number,
    }
    resp = api.post("/calls", json={**body, **extra})
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


def events(hooks: list[Hook]) -> list[dict[str, Any]]:
    return [json.loads(h.body)["data"] for h in hooks]


def verify(sandbox: SandboxProcess, hook: Hook) -> None:
    """The Telnyx check: ed25519 over ``timestamp|body`` with the printed public key."""
    stamp = hook.headers["telnyx-timestamp"]
    assert abs(int(stamp) - time.time()) < 60
    signature = base64.b64decode(hook.headers["telnyx-signature-ed25519"])
    VerifyKey(base64.b64decode(sandbox.public_key)).verify(
        f"{stamp}|".encode() + hook.body, signature
    )


def test_webhooks__three_signed_events_in_order(
    api: httpx.Client, sandbox: SandboxProcess, receiver: WebhookReceiver
) -> None:
    url = receiver.url()
    call = dial(api, sandbox, webhook_url=url, client_state="c3RhdGU=")
    hooks = receiver.wait(url, 3)
    got = events(hooks)
    assert [e["event_type"] for e in got] == ["call.initiated", "call.answered", "call.hangup"]
    for hook, data in zip(hooks, got, strict=True):
        verify(sandbox, hook)
        assert hook.headers["content-type"] == "application/json"
        assert data["record_type"] == "event"
        assert len(data["id"]) == 36
        assert parse_time(data["occurred_at"]) <= datetime.now(UTC)
        payload = data["payload"]
        assert PAYLOAD_KEYS <= set(payload)
        assert payload["call_control_id"] == call["call_control_id"]
        assert payload["call_leg_id"] == call["call_leg_id"]
        assert payload["call_session_id"] == call["call_session_id"]
        assert payload["connection_id"] == sandbox.call_connection_id
        assert (payload["from"], payload["to"]) == (sandbox.from_number, "+15557654321")
        assert payload["client_state"] == "c3RhdGU="
    initiated, answered, hangup = (e["payload"] for e in got)
    assert (initiated["direction"], initiated["state"]) == ("outgoing", "bridging")
    assert answered["state"] == "answered"
    assert hangup["state"] == "hangup"
    assert (hangup["hangup_cause"], hangup["hangup_source"]) == ("normal_clearing", "callee")
    assert parse_time(hangup["end_time"]) - parse_time(hangup["start_time"]) >= timedelta(
        seconds=0.5
    )
    assert len({e["id"] for e in got}) == 3

    deliveries = sandbox.wait_webhooks(call["call_control_id"], 3)
    assert [(d["event_type"], d["status"], d["delivered"]) for d in deliveries] == [
        ("call.initiated", 200, True),
        ("call.answered", 200, True),
        ("call.hangup", 200, True),
    ]


def test_webhooks__sdk_unwrap_accepts_the_signature(
    api: httpx.Client, sandbox: SandboxProcess, receiver: WebhookReceiver
) -> None:
    url = receiver.url()
    dial(api, sandbox, webhook_url=url)
    hook = receiver.wait(url, 1)[0]
    with telnyx.Telnyx(
        api_key=sandbox.api_key, base_url=sandbox.base_url, public_key=sandbox.public_key
    ) as sdk:
        unwrapped = sdk.webhooks.unwrap(hook.body.decode(), headers=hook.headers)
        assert unwrapped.data is not None
        assert unwrapped.data.event_type == "call.initiated"
        with pytest.raises(ValueError, match="Signature"):
            sdk.webhooks.unwrap(
                hook.body.decode().replace("initiated", "answered"), headers=hook.headers
            )


def test_webhooks__api_hangup_before_answer_sends_no_answer(
    sdk: telnyx.Telnyx, sandbox: SandboxProcess, receiver: WebhookReceiver
) -> None:
    sandbox.set_webhooks(answer_after=1.0)
    url = receiver.url()
    dialled_at = time.monotonic()
    call = sdk.calls.dial(
        connection_id=sandbox.call_connection_id,
        to="+15557654321",
        from_="+15550001111",
        webhook_url=url,
    ).data
    assert call is not None
    receiver.wait(url, 1)
    sdk.calls.actions.hangup(call.call_control_id, client_state="Ynll")
    hooks = receiver.wait(url, 2)
    time.sleep(max(0.0, dialled_at + 1.3 - time.monotonic()))  # past the answer time
    got = events(receiver.received(url))
    assert [e["event_type"] for e in got] == ["call.initiated", "call.hangup"]
    hangup = got[1]["payload"]
    assert (hangup["hangup_cause"], hangup["hangup_source"]) == ("originator_cancel", "caller")
    assert hangup["client_state"] == "Ynll"
    verify(sandbox, hooks[1])


def test_webhooks__api_hangup_after_answer_ends_the_call_early(
    sdk: telnyx.Telnyx, sandbox: SandboxProcess, receiver: WebhookReceiver
) -> None:
    sandbox.set_webhooks(answer_after=0.05, talk_time=30)
    url = receiver.url()
    call = sdk.calls.dial(
        connection_id=sandbox.call_connection_id,
        to="+15557654321",
        from_="+15550001111",
        webhook_url=url,
    ).data
    assert call is not None
    receiver.wait(url, 2)
    started = time.monotonic()
    sdk.calls.actions.hangup(call.call_control_id)
    got = events(receiver.wait(url, 3))
    assert time.monotonic() - started < 5
    assert [e["event_type"] for e in got] == ["call.initiated", "call.answered", "call.hangup"]
    assert (got[2]["payload"]["hangup_cause"], got[2]["payload"]["hangup_source"]) == (
        "normal_clearing",
        "caller",
    )


def test_webhooks__unanswered_call_times_out(
    api: httpx.Client, sandbox: SandboxProcess, receiver: WebhookReceiver
) -> None:
    sandbox.set_webhooks(answer=False, talk_time=0.2)
    url = receiver.url()
    dial(api, sandbox, webhook_url=url)
    got = events(receiver.wait(url, 2))
    assert [e["event_type"] for e in got] == ["call.initiated", "call.hangup"]
    assert got[1]["payload"]["hangup_cause"] == "timeout"


def test_webhooks__default_url_and_per_event_urls(
    api: httpx.Client, sandbox: SandboxProcess, receiver: WebhookReceiver
) -> None:
    default, hangups = receiver.url(), receiver.url()
    sandbox.set_webhooks(webhook_url=default)
    dial(api, sandbox, webhook_urls={"call.hangup": hangups})
    assert [e["event_type"] for e in events(receiver.wait(default, 2))] == [
        "call.initiated",
        "call.answered",
    ]
    assert [e["event_type"] for e in events(receiver.wait(hangups, 1))] == ["call.hangup"]


def test_webhooks__no_url_means_nothing_is_sent(api: httpx.Client, sandbox: SandboxProcess) -> None:
    call = dial(api, sandbox)
    deliveries = sandbox.wait_webhooks(call["call_control_id"], 3)
    assert [(d["url"], d["attempts"], d["delivered"]) for d in deliveries] == [(None, 0, False)] * 3


def test_webhooks__failed_delivery_is_retried(
    api: httpx.Client, sandbox: SandboxProcess, receiver: WebhookReceiver
) -> None:
    url = receiver.url()
    receiver.fail[httpx.URL(url).path] = 1
    call = dial(api, sandbox, webhook_url=url)
    got = [e["event_type"] for e in events(receiver.wait(url, 3))]
    assert got == ["call.initiated", "call.answered", "call.hangup"]
    first = sandbox.wait_webhooks(call["call_control_id"], 1)[0]
    assert (first["attempts"], first["status"], first["delivered"]) == (2, 200, True)


def test_webhooks__unreachable_receiver_does_not_hurt_the_server(
    api: httpx.Client, sandbox: SandboxProcess
) -> None:
    sandbox.set_webhooks(retries=1, timeout=0.5)
    call = dial(api, sandbox, webhook_url="http://127.0.0.1:9/unreachable")
    first = sandbox.wait_webhooks(call["call_control_id"], 1)[0]
    assert (first["attempts"], first["delivered"]) == (2, False)
    assert first["error"]
    assert api.get("/credential_connections").status_code == 200


def test_webhooks__control_endpoint_validates(sandbox: SandboxProcess) -> None:
    for bad in ({"answer_after": -1}, {"answer": "yes"}, {"speed": 1}):
        resp = httpx.post(f"{sandbox.control_url}/webhooks", json=bad)
        assert resp.status_code == 400, bad
