"""The worker and the service client: real Redis, the sandbox; in-process workers with the real
adapter, real worker processes only for signals (SIGKILL mid-request, SIGUSR1 to a spare)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid

import pytest
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model

from telephony import exceptions as exc
from telephony.connections import Keys, get_async_redis
from telephony.models import Call, CallStatus
from telephony.procutil import wait_for
from telephony.protocol import CHANNEL, new_request
from telephony.web.client import get_telephony_service
from tests.helpers import await_until
from tests.telephony.conftest import worker_beat

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]

service = get_telephony_service()


@pytest.fixture
def user():
    return get_user_model().objects.create_user("agent", password="x")


def _executed(log, op=None):
    return [e for e in log if e.get("executed") and (op is None or e["operation"] == op)]


async def test_worker__dial_status_and_hangup(sandbox_workers, telnyx, user) -> None:
    telnyx.set_webhooks(answer_after=30, talk_time=60)  # stays ringing until we hang up
    await sandbox_workers.start()
    call = await service.amake_call(user, "+12025550143")
    assert call["status"] == CallStatus.DIALING and call["to"] == "+12025550143"
    row = await Call.objects.aget(pk=call["id"])
    assert row.call_control_id and row.request_id
    dial = _executed(telnyx.log(), "DialCall")
    assert [e["request_id"] for e in dial] == [str(row.request_id)]
    status = await service.acall_status(user, call["id"])
    assert status["id"] == call["id"]
    ended = await service.ahangup(user, call["id"])
    assert ended["status"] == CallStatus.COMPLETED
    assert _executed(telnyx.log(), "HangupCall")


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


async def test_worker__sigkill_mid_request_gives_timeout_and_a_settled_row(
    start_worker, sandbox_workers, telnyx, user, settings
) -> None:
    settings.TELEPHONY_REQUEST_TIMEOUT = 2.0
    telnyx.set_fault("DialCall", latency_ms=5000)
    proc = start_worker()
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
    settings.TELEPHONY_RECONCILE_INTERVAL = 0.3
    await sandbox_workers.start()  # its reconciler settles what the killed one left

    async def settled() -> bool:
        await row.arefresh_from_db()
        return row.status == CallStatus.FAILED

    # The reconciler: deadline + 5 s grace, then its next pass.
    await await_until(settled, timeout=30, interval=0.1)
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
    sandbox_workers, telnyx, user, fault, reason
) -> None:
    telnyx.set_fault("DialCall", **fault)
    await sandbox_workers.start()
    with pytest.raises(exc.ProviderError) as err:
        await service.amake_call(user, "+12025550143")
    assert err.value.reason == reason and err.value.status == 502
    row = await Call.objects.aget()
    assert (row.status, row.error_code) == (CallStatus.FAILED, reason)
    # A dial is never retried: retrying could ring someone twice.
    assert len([e for e in telnyx.log() if e["operation"] == "DialCall"]) == 1


async def test_worker__hanging_provider_times_out_before_the_deadline(
    sandbox_workers, telnyx, user, settings
) -> None:
    settings.TELEPHONY_REQUEST_TIMEOUT = 1.5
    telnyx.set_fault("DialCall", hang=True)
    await sandbox_workers.start()
    with pytest.raises((exc.ProviderTimeout, exc.WorkerTimeout)):
        await service.amake_call(user, "+12025550143")
    row = await Call.objects.aget()
    assert row.status in (CallStatus.FAILED, CallStatus.UNKNOWN)
    assert row.error_code in ("provider_timeout", "worker_timeout")


async def test_worker__idempotent_reads_are_retried(sandbox_workers, telnyx, user) -> None:
    await sandbox_workers.start()
    await service.agenerate_credential(user)
    telnyx.reset(keep_state=True)
    telnyx.set_fault("CreateTelephonyCredentialToken", error_rate=1.0, status=503)
    with pytest.raises(exc.ProviderUnavailable):
        await service.agenerate_credential(user)
    attempts = [e for e in telnyx.log() if e["operation"] == "CreateTelephonyCredentialToken"]
    assert len(attempts) == 3 and len({e["request_id"] for e in attempts}) == 1


async def test_worker__connection_refused_is_provider_unavailable(
    sandbox_workers, user, settings
) -> None:
    settings.TELNYX_BASE_URL = "http://127.0.0.1:9/v2"
    await sandbox_workers.start()
    with pytest.raises(exc.ProviderUnavailable) as err:
        await service.agenerate_credential(user)
    assert err.value.reason == "connection_failed"


async def test_worker__breaker_opens_then_closes(sandbox_workers, telnyx, user, settings) -> None:
    settings.TELEPHONY_BREAKER_MIN_CALLS = 4
    settings.TELEPHONY_BREAKER_WINDOW = 4
    settings.TELEPHONY_BREAKER_OPEN_SECONDS = 1
    settings.TELEPHONY_BREAKER_HALF_OPEN_PROBES = 1
    worker = await sandbox_workers.start()

    async def breaker(state: str) -> bool:
        raw = await get_async_redis().get(Keys.worker(worker.worker_id))
        return bool(raw) and json.loads(raw)["breaker"] == state

    await service.agenerate_credential(user)
    telnyx.set_fault("CreateTelephonyCredentialToken", error_rate=1.0, status=500)
    with pytest.raises(exc.CircuitOpen):
        # Two failed attempts make 2 of the last 4 calls: the breaker opens and the
        # third attempt is refused without reaching Telnyx.
        await service.agenerate_credential(user)
    failed = [
        e
        for e in telnyx.log()
        if e["operation"] == "CreateTelephonyCredentialToken" and e["status"] == 500
    ]
    assert len(failed) == 2
    await await_until(lambda: breaker("open"), timeout=3)
    assert (await service.astatus()).status == "unavailable"
    with pytest.raises(exc.ServiceUnavailable):
        await service.agenerate_credential(user)
    telnyx.clear_faults()
    await await_until(lambda: breaker("half_open"), timeout=5)
    assert (await service.astatus()).status == "degraded"
    assert (await service.agenerate_credential(user))["token"]  # the probe succeeds
    await await_until(lambda: breaker("closed"), timeout=3)


async def test_worker__hangup_of_another_users_call_is_not_found(
    sandbox_workers, telnyx, user
) -> None:
    other = await get_user_model().objects.acreate_user("other", password="x")
    await sandbox_workers.start()
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


async def test_worker__stopping_under_load_loses_no_request(sandbox_workers) -> None:
    """A stop while requests stream in: intake ends between pops, never inside one.

    Cancelling a receive while Redis serves its BZPOPMIN loses the message being handed
    over; this stops three workers in turn under 8 callers, and every request succeeds.
    """
    workers = [await sandbox_workers.start()]
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
            workers.append(await sandbox_workers.start())
            new = workers[-1]
            await await_until(lambda new=new: new.stats.handled >= 20, timeout=10)
            await sandbox_workers.stop(workers.pop(0))
    finally:
        stop.set()
        await asyncio.gather(*callers)
    assert not failed, failed[:5]
    assert answered > 60
