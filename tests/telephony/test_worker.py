"""The worker and the service client: real Redis, real worker subprocesses, the sandbox."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections import Counter

import pytest
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model

from telephony import exceptions as exc
from telephony.models import Call, CallStatus, Credential
from telephony.procutil import wait_for
from telephony.protocol import CHANNEL, new_request
from telephony.web.client import get_telephony_service
from tests.telephony.conftest import worker_beat

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]

service = get_telephony_service()


@pytest.fixture
def user():
    return get_user_model().objects.create_user("agent", password="x")


def _executed(log, op=None):
    return [e for e in log if e.get("executed") and (op is None or e["operation"] == op)]


async def test_worker__credential_is_created_then_reused(start_worker, telnyx, user) -> None:
    start_worker()
    first = await service.agenerate_credential(user)
    second = await service.agenerate_credential(user)
    assert first["sip_username"] == second["sip_username"]
    assert first["token"].count(".") == 2 and second["token"] != ""
    creds = [c async for c in Credential.objects.filter(user=user)]
    assert len(creds) == 1 and creds[0].tag == "django-telephony" and creds[0].token_expires_at
    ops = Counter(e["operation"] for e in _executed(telnyx.log()))
    assert ops["CreateTelephonyCredential"] == 1
    assert ops["CreateTelephonyCredentialToken"] == 2


async def test_worker__dial_status_and_hangup(start_worker, telnyx, user) -> None:
    telnyx.set_webhooks(answer_after=30, talk_time=60)  # the agent leg rings until hung up
    start_worker()
    await service.agenerate_credential(user)  # the agent leg rings this login
    call = await service.amake_call(user, "+12025550143")
    assert call["status"] == CallStatus.DIALING and call["to"] == "+12025550143"
    row = await Call.objects.aget(pk=call["id"])
    assert row.agent_call_control_id and row.request_id and not row.call_control_id
    dial = _executed(telnyx.log(), "DialCall")
    assert [e["request_id"] for e in dial] == [str(row.request_id)]
    status = await service.acall_status(user, call["id"])
    assert status["id"] == call["id"]
    ended = await service.ahangup(user, call["id"])
    # Hung up before anyone answered: cancelled by the agent.
    assert (ended["status"], ended["hangup_side"]) == (CallStatus.CANCELED, "agent")
    assert len(_executed(telnyx.log(), "HangupCall")) == 1


async def test_worker__dial_without_a_login_is_no_credential(start_worker, telnyx, user) -> None:
    start_worker()
    with pytest.raises(exc.NoCredential):
        await service.amake_call(user, "+12025550143")
    row = await Call.objects.aget()
    assert (row.status, row.error_code) == (CallStatus.FAILED, "no_credential")
    assert _executed(telnyx.log(), "DialCall") == []


async def test_worker__request_past_its_deadline_is_never_executed(
    start_worker, telnyx, user, settings
) -> None:
    layer = get_channel_layer()
    late = new_request(
        "credential.create", reply_to="nobody!", timeout=0.2, payload={"user_id": user.pk}
    )
    await layer.send(CHANNEL, late)
    await asyncio.sleep(0.5)  # the deadline passes while no worker runs
    proc = start_worker()
    fresh = await service.agenerate_credential(user)  # proves the worker is serving
    assert fresh["token"]
    assert late["request_id"] not in {e["request_id"] for e in telnyx.log()}
    # The next heartbeat reports the drop.
    assert await asyncio.to_thread(
        wait_for, lambda: (worker_beat(proc.pid) or {}).get("dropped_late") == 1, timeout=3
    )


async def test_worker__two_workers_500_requests_each_executed_once(start_worker, telnyx) -> None:
    users = [await get_user_model().objects.acreate_user(f"u{i}", password="x") for i in range(10)]
    start_worker()
    start_worker()
    results = await asyncio.gather(
        *(service.agenerate_credential(users[i % 10]) for i in range(500)), return_exceptions=True
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    tokens = _executed(telnyx.log(), "CreateTelephonyCredentialToken")
    per_request = Counter(e["request_id"] for e in tokens)
    assert len(per_request) == 500
    assert set(per_request.values()) == {1}
    assert len(_executed(telnyx.log(), "CreateTelephonyCredential")) == 10


async def test_worker__handles_requests_concurrently(start_worker, telnyx) -> None:
    users = [await get_user_model().objects.acreate_user(f"c{i}", password="x") for i in range(50)]
    start_worker()
    await asyncio.gather(*(service.agenerate_credential(u) for u in users))  # credentials exist
    telnyx.reset(keep_state=True)
    telnyx.set_fault("CreateTelephonyCredentialToken", latency_ms=200)
    started = time.monotonic()
    await asyncio.gather(*(service.agenerate_credential(u) for u in users))
    elapsed = time.monotonic() - started
    # Serially this is 50 x 200 ms = 10 s; the sandbox must have seen them overlap.
    assert elapsed < 10 / 3, f"50 requests at 200 ms took {elapsed:.1f} s"
    entries = sorted(
        _executed(telnyx.log(), "CreateTelephonyCredentialToken"), key=lambda e: e["ts"]
    )
    first_done = entries[0]["ts"] + entries[0]["latency_ms"]
    overlapping = [e for e in entries if e["ts"] < first_done]
    assert len(overlapping) >= 10


async def test_worker__no_worker_means_unavailable_at_once(telnyx, user, settings) -> None:
    settings.TELEPHONY_STATE_CACHE_TTL = 0
    with pytest.raises(exc.ServiceUnavailable) as err:
        await service.amake_call(user, "+12025550143")
    assert err.value.reason == "no_worker"
    assert await Call.objects.acount() == 0  # refused before anything was written or sent
    layer = get_channel_layer()
    assert not await layer.connection(0).exists(layer.prefix + CHANNEL)  # nothing queued


async def test_worker__invalid_numbers_never_reach_the_layer(telnyx, user) -> None:
    for number, error in (
        ("12025550143", exc.InvalidNumber),
        ("+19005550123", exc.DestinationNotAllowed),
    ):
        with pytest.raises(error):
            await service.amake_call(user, number)
    assert await Call.objects.acount() == 0


@pytest.mark.slow
async def test_worker__idle_for_25_seconds_still_answers(start_worker, telnyx, user) -> None:
    start_worker()
    await asyncio.sleep(25)
    assert (await service.agenerate_credential(user))["token"]


async def test_worker__sigkill_mid_request_gives_timeout_and_a_settled_row(
    start_worker, telnyx, user, settings
) -> None:
    settings.TELEPHONY_REQUEST_TIMEOUT = 2.0
    telnyx.set_fault("DialCall", latency_ms=5000)
    proc = start_worker(env={"TELEPHONY_RECONCILE_INTERVAL": "0.3"})
    await service.agenerate_credential(user)
    task = asyncio.create_task(service.amake_call(user, "+12025550143"))
    assert await asyncio.to_thread(
        wait_for, lambda: (worker_beat(proc.pid) or {}).get("in_flight") == 1, timeout=5
    )
    os.kill(proc.pid, signal.SIGKILL)
    started = time.monotonic()
    with pytest.raises(exc.WorkerTimeout):
        await task
    assert time.monotonic() - started < 5.0  # at the deadline (2 s), not hung
    row = await Call.objects.aget()
    assert (row.status, row.error_code) == (CallStatus.UNKNOWN, "worker_timeout")
    telnyx.clear_faults()
    start_worker(env={"TELEPHONY_RECONCILE_INTERVAL": "0.3"})

    async def settled() -> bool:
        await row.arefresh_from_db()
        return row.status == CallStatus.FAILED

    for _ in range(300):  # reconciler: deadline + 5 s grace, then its next pass
        if await settled():
            break
        await asyncio.sleep(0.1)
    assert (row.status, row.error_code) == (CallStatus.FAILED, "worker_timeout")


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ({"error_rate": 1.0, "status": 500}, "http_500"),
        ({"error_rate": 1.0, "status": 503}, "http_503"),
        ({"error_rate": 1.0, "status": 429}, "provider_rate_limited"),
        ({"malformed": True}, "malformed_response"),
    ],
)
async def test_worker__provider_faults_map_to_errors_and_call_rows(
    start_worker, telnyx, user, fault, reason
) -> None:
    telnyx.set_fault("DialCall", **fault)
    start_worker()
    await service.agenerate_credential(user)
    with pytest.raises(exc.ProviderError) as err:
        await service.amake_call(user, "+12025550143")
    assert err.value.reason == reason and err.value.status == 502
    row = await Call.objects.aget()
    assert (row.status, row.error_code) == (CallStatus.FAILED, reason)
    # A dial is never retried: retrying could ring someone twice.
    assert len([e for e in telnyx.log() if e["operation"] == "DialCall"]) == 1


async def test_worker__hanging_provider_times_out_before_the_deadline(
    start_worker, telnyx, user, settings
) -> None:
    settings.TELEPHONY_REQUEST_TIMEOUT = 1.5
    telnyx.set_fault("DialCall", hang=True)
    start_worker()
    await service.agenerate_credential(user)
    with pytest.raises((exc.ProviderTimeout, exc.WorkerTimeout)):
        await service.amake_call(user, "+12025550143")
    row = await Call.objects.aget()
    assert row.status in (CallStatus.FAILED, CallStatus.UNKNOWN)
    assert row.error_code in ("provider_timeout", "worker_timeout")


async def test_worker__idempotent_reads_are_retried(start_worker, telnyx, user) -> None:
    start_worker()
    await service.agenerate_credential(user)
    telnyx.reset(keep_state=True)
    telnyx.set_fault("CreateTelephonyCredentialToken", error_rate=1.0, status=503)
    with pytest.raises(exc.ProviderUnavailable):
        await service.agenerate_credential(user)
    attempts = [e for e in telnyx.log() if e["operation"] == "CreateTelephonyCredentialToken"]
    assert len(attempts) == 3 and len({e["request_id"] for e in attempts}) == 1


async def test_worker__connection_refused_is_provider_unavailable(
    start_worker, telnyx, user
) -> None:
    start_worker(env={"TELNYX_BASE_URL": "http://127.0.0.1:9/v2"})
    with pytest.raises(exc.ProviderUnavailable) as err:
        await service.agenerate_credential(user)
    assert err.value.reason == "connection_failed"


async def test_worker__breaker_opens_then_closes(start_worker, telnyx, user, settings) -> None:
    proc = start_worker(
        env={
            "TELEPHONY_BREAKER_MIN_CALLS": "4",
            "TELEPHONY_BREAKER_WINDOW": "4",
            "TELEPHONY_BREAKER_OPEN_SECONDS": "1",
            "TELEPHONY_BREAKER_HALF_OPEN_PROBES": "1",
        }
    )
    await service.agenerate_credential(user)
    telnyx.set_fault("CreateTelephonyCredentialToken", error_rate=1.0, status=500)
    with pytest.raises(exc.CircuitOpen):
        # Two failed attempts make 2 of the last 4 calls: the breaker opens and the
        # third attempt is refused without reaching Telnyx.
        await service.agenerate_credential(user)
    assert (
        len(
            [
                e
                for e in telnyx.log()
                if e["operation"] == "CreateTelephonyCredentialToken" and e["status"] == 500
            ]
        )
        == 2
    )
    assert wait_for(lambda: worker_beat(proc.pid)["breaker"] == "open", timeout=3)
    assert (await service.astatus()).status == "unavailable"
    with pytest.raises(exc.ServiceUnavailable):
        await service.agenerate_credential(user)
    telnyx.clear_faults()
    assert await asyncio.to_thread(
        wait_for, lambda: worker_beat(proc.pid)["breaker"] == "half_open", timeout=5
    )
    assert (await service.astatus()).status == "degraded"
    assert (await service.agenerate_credential(user))["token"]  # the probe succeeds
    assert await asyncio.to_thread(
        wait_for, lambda: worker_beat(proc.pid)["breaker"] == "closed", timeout=3
    )


async def test_worker__hangup_of_another_users_call_is_not_found(
    start_worker, telnyx, user
) -> None:
    other = await get_user_model().objects.acreate_user("other", password="x")
    start_worker()
    await service.agenerate_credential(user)
    call = await service.amake_call(user, "+12025550143")
    with pytest.raises(exc.NotFound):
        await service.ahangup(other, call["id"])
    with pytest.raises(exc.NotFound):
        await service.acall_status(other, str(uuid.uuid4()))


async def test_worker__a_spare_takes_nothing_until_sigusr1(start_worker) -> None:
    proc = start_worker("--spare")
    assert worker_beat(proc.pid)["spare"] is True
    with pytest.raises(exc.ServiceUnavailable):  # a spare does not make the service available
        await service.aping(timeout=2)
    # Nor does it take a request off the channel while it waits.
    layer = get_channel_layer()
    reply_to = await layer.new_channel()
    waiting = new_request("health.ping", reply_to=reply_to, timeout=30, payload={})
    await layer.send(CHANNEL, waiting)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(reply_to), 1.0)

    os.kill(proc.pid, signal.SIGUSR1)
    reply = await asyncio.wait_for(layer.receive(reply_to), 10)
    assert reply["ok"] and reply["request_id"] == waiting["request_id"]
    assert await asyncio.to_thread(
        wait_for, lambda: (worker_beat(proc.pid) or {}).get("spare") is False, timeout=5
    )
    assert (await service.aping(timeout=5))["worker_id"].endswith(f":{proc.pid}")
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(proc.wait, 30) == 0


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_worker__stopping_under_load_loses_no_request(start_worker) -> None:
    """SIGTERM while requests stream in: intake ends between pops, never inside one.

    Cancelling a receive while Redis serves its BZPOPMIN loses the message being handed
    over; this stops three workers in turn under 8 callers, and every request succeeds.
    """
    procs = [start_worker()]
    answered, failed = 0, []
    stop = asyncio.Event()

    async def caller() -> None:
        nonlocal answered
        while not stop.is_set():
            try:
                await service.aping(timeout=10)
                answered += 1
            except Exception as e:
                failed.append(repr(e))

    callers = [asyncio.create_task(caller()) for _ in range(8)]
    try:
        for _ in range(3):
            procs.append(await asyncio.to_thread(start_worker))
            await asyncio.sleep(1.0)
            old = procs.pop(0)
            old.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(old.wait, 30) == 0
    finally:
        stop.set()
        await asyncio.gather(*callers)
    assert not failed, failed[:5]
    assert answered > 100
