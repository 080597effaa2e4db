"""Which credential a user holds, remembered by each worker between their logins.

``credential.create`` runs at every page load of every agent; reading the user's active
credential from the database each time cost an ORM trip through a thread. A worker keeps
the answer in :class:`ActiveCredentials`, stamped with the credentials *version*: a Redis
counter (``Keys.credentials_version``) that every change to a credential's life bumps,
from any process:

- :func:`acredential_mark_deleted`, the one way the service records a deletion (a seat
  freed, hygiene, cleanup, room made at the account limit, gone at the provider);
- a saved or deleted ``Credential`` row (creation, the admin), by signal.

The worker reads the version in the same pipeline as the user's presence touch, so a
cache hit costs no round trip of its own. A version read before the row is cached may
only make the entry stale sooner, never serve a deleted row. If the bump itself fails
(Redis down), the entry still ages out after ``MAX_AGE``, and a token minted on a
credential deleted meanwhile fails at Telnyx with ``provider_not_found``, which
``credential.create`` already recovers from.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import redis
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from telephony.connections import get_async_redis, get_redis
from telephony.keys import Keys
from telephony.models import Credential

logger = logging.getLogger(__name__)

MAX_AGE = 60.0  # seconds an entry is trusted at most, whatever the version says
MAX_ENTRIES = 10_000


class ActiveCredentials:
    """user_id -> the active credential, as read at one credentials version."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._entries: dict[int, tuple[str | None, float, Credential]] = {}

    def get(self, user_id: int, version: str | None, *, valid_after: datetime) -> Credential | None:
        """The cached credential, if read at ``version``, young enough, and valid past
        ``valid_after`` (the same rule the database query applies)."""
        entry = self._entries.get(user_id)
        if entry is None:
            return None
        seen, at, cred = entry
        if seen != version or self.clock() - at > MAX_AGE or cred.expires_at <= valid_after:
            del self._entries[user_id]
            return None
        return cred

    def put(self, user_id: int, version: str | None, cred: Credential) -> None:
        if len(self._entries) >= MAX_ENTRIES and user_id not in self._entries:
            self._entries.pop(next(iter(self._entries)))  # the oldest insertion goes
        self._entries[user_id] = (version, self.clock(), cred)

    def forget(self, user_id: int) -> None:
        self._entries.pop(user_id, None)


async def acredential_mark_deleted(*, reason: str, **lookup: Any) -> int:
    """Record credentials matching ``lookup`` as deleted (only those not yet so) and tell
    every worker's cache. The number of rows marked."""
    marked = await Credential.objects.filter(deleted_at__isnull=True, **lookup).aupdate(
        deleted_at=timezone.now(), deleted_reason=reason
    )
    if marked:
        await anote_credentials_changed()
    return int(marked)


async def anote_credentials_changed() -> None:
    try:
        await get_async_redis().incr(Keys.credentials_version())
    except (redis.RedisError, OSError) as e:
        logger.warning("[Telephony Credentials] version not bumped: %s", type(e).__name__)


def note_credentials_changed() -> None:
    try:
        get_redis().incr(Keys.credentials_version())
    except (redis.RedisError, OSError) as e:
        logger.warning("[Telephony Credentials] version not bumped: %s", type(e).__name__)


@receiver(post_save, sender=Credential, dispatch_uid="telephony.credential_saved")
@receiver(post_delete, sender=Credential, dispatch_uid="telephony.credential_deleted")
def _credential_row_changed(**kwargs: Any) -> None:
    note_credentials_changed()
