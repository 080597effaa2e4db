"""A worker's cache of each user's active credential, and what invalidates it
(``telephony.credential_cache``): real Redis, the session sandbox, two workers'
operations in this process.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from devserver.sandbox.control import SandboxProcess
from telephony.connections import get_async_redis
from telephony.credential_cache import MAX_AGE, ActiveCredentials, acredential_mark_deleted
from telephony.keys import Keys
from telephony.models import Credential
from telephony.worker.adapter import TelnyxAdapter
from telephony.worker.breaker import CircuitBreaker
from telephony.worker.operations import Operations
from telephony.worker.provider import RequestContext

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


class Reads:
    """Counts the database reads of the active credential, per Operations."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.n = 0
        original = Operations._active_credential

        async def counted(ops: Operations, user_id: int) -> Credential | None:
            self.n += 1
            return await original(ops, user_id)

        monkeypatch.setattr(Operations, "_active_credential", counted)


@pytest.fixture
async def two_workers(telnyx: SandboxProcess, settings: Any) -> AsyncIterator[list[Operations]]:
    settings.TELNYX_CONNECTION_ID = telnyx.connection_id
    settings.TELEPHONY_ACCOUNT_CREDENTIAL_LIMIT = 1000
    made = [
        Operations(
            TelnyxAdapter(
                api_key=telnyx.api_key, base_url=telnyx.base_url, breaker=CircuitBreaker()
            ),
            worker_id=f"test:{n}",
        )
        for n in (1, 2)
    ]
    try:
        yield made
    finally:
        for ops in made:
            await ops.adapter.aclose()


async def login(ops: Operations, user: Any) -> dict[str, Any]:
    ctx = RequestContext(str(uuid.uuid4()), time.time() + 10)
    return await ops.credential_create(ctx, {"user_id": user.pk})


async def test_credential_cache__second_login_skips_the_database(
    two_workers: list[Operations], monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = Reads(monkeypatch)
    ops, _ = two_workers
    user = await get_user_model().objects.acreate_user("cached")
    first = await login(ops, user)
    assert reads.n == 2  # none yet: read, then read again under the lock, then created
    second = await login(ops, user)  # the creation bumped the version: read once more
    assert reads.n == 3
    for _ in range(3):
        third = await login(ops, user)
    assert reads.n == 3
    assert first["sip_username"] == second["sip_username"] == third["sip_username"]


async def test_credential_cache__a_deletion_by_another_worker_invalidates_it(
    two_workers: list[Operations], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = two_workers
    user = await get_user_model().objects.acreate_user("moved")
    first = await login(a, user)
    cred = await Credential.objects.aget(user=user, deleted_at__isnull=True)
    # Another worker frees the seat (what seats.release and hygiene do).
    await b.adapter.delete_credential(RequestContext("x", time.time() + 10), cred.telnyx_id)
    assert await acredential_mark_deleted(pk=cred.pk, reason="idle") == 1
    reads = Reads(monkeypatch)
    again = await login(a, user)
    assert reads.n >= 1, "the cached, deleted credential was used"
    assert again["sip_username"] != first["sip_username"]
    assert (await Credential.objects.aget(pk=cred.pk)).deleted_reason == "idle"


async def test_credential_cache__a_row_saved_or_deleted_anywhere_bumps_the_version(
    two_workers: list[Operations],
) -> None:
    ops, _ = two_workers
    user = await get_user_model().objects.acreate_user("admin-edit")
    await login(ops, user)
    r = get_async_redis()
    before = int(await r.get(Keys.credentials_version()) or 0)
    cred = await Credential.objects.aget(user=user)
    cred.expires_at = timezone.now() + timedelta(hours=1)
    await cred.asave()  # the admin, a shell
    saved = int(await r.get(Keys.credentials_version()) or 0)
    await Credential.objects.filter(pk=cred.pk).adelete()
    deleted = int(await r.get(Keys.credentials_version()) or 0)
    assert before < saved < deleted


def test_active_credentials__version_age_and_validity(settings: Any) -> None:
    now = [100.0]
    cache = ActiveCredentials(clock=lambda: now[0])
    soon = timezone.now()
    cred = Credential(user_id=1, telnyx_id="t", expires_at=soon + timedelta(hours=1))
    cache.put(1, "3", cred)
    assert cache.get(1, "3", valid_after=soon) is cred
    assert cache.get(1, "4", valid_after=soon) is None  # changed meanwhile: gone for good
    assert cache.get(1, "3", valid_after=soon) is None
    cache.put(1, "3", cred)
    assert cache.get(1, "3", valid_after=soon + timedelta(hours=2)) is None  # expiring
    cache.put(1, "3", cred)
    now[0] += MAX_AGE + 1
    assert cache.get(1, "3", valid_after=soon) is None  # too old, whatever the version
