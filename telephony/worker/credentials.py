"""Which Telnyx credentials may go: one rule for the worker's limit handling, the hygiene
pass and ``cleanup_credentials``, so they can never disagree.

A credential is ours when it carries our tag. Telnyx does not return the tag in a
credential record, so "ours" means "listed by ``filter[tag]=<our tag>``"; callers pass
such listings through :func:`tagged` (``select_for_room`` does it itself, because the
worker hands it exactly that listing).

It may be deleted when

- it has expired (no token minted for it can work any more);
- ``older_than`` says so (the operator's explicit choice: this overrides everything);
- it is orphaned: not in our database (and older than ``orphan_grace``, so a credential
  another worker created a moment ago and is about to record is left alone), or marked
  deleted there;
- only to make room at the account limit: when no unexpired token depends on it.

A credential whose latest token is still valid (``token_expires_at > now``) is never
deleted for any reason but expiry or ``older_than``: a user would be logged out mid-shift.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from django.conf import settings


class RemoteCredential(Protocol):
    """A credential as Telnyx lists it (``adapter.CredentialInfo``)."""

    @property
    def id(self) -> str: ...
    @property
    def tag(self) -> str: ...
    @property
    def expires_at(self) -> datetime | None: ...
    @property
    def created_at(self) -> datetime | None: ...
    @property
    def expired(self) -> bool: ...


class LocalCredential(Protocol):
    """Our row for it (``models.Credential``)."""

    @property
    def deleted_at(self) -> datetime | None: ...
    @property
    def token_expires_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class Deletion:
    telnyx_id: str
    reason: str  # expired | orphaned | older_than | untagged | room


@dataclass(frozen=True)
class _Tagged:
    """A remote credential seen through a tag-filtered listing."""

    id: str
    tag: str
    expires_at: datetime | None
    created_at: datetime | None
    expired: bool


def tagged(remote: Iterable[RemoteCredential], tag: str) -> list[RemoteCredential]:
    """Mark credentials that came from a ``filter[tag]=tag`` listing as carrying ``tag``."""
    out: list[RemoteCredential] = []
    for cred in remote:
        if cred.tag == tag:
            out.append(cred)
        else:
            out.append(_Tagged(cred.id, tag, cred.expires_at, cred.created_at, cred.expired))
    return out


def orphan_grace_setting() -> timedelta:
    """``TELEPHONY_CREDENTIAL_ORPHAN_GRACE`` (seconds), read when used."""
    return timedelta(seconds=float(settings.TELEPHONY_CREDENTIAL_ORPHAN_GRACE))


def is_expired(cred: RemoteCredential, now: datetime) -> bool:
    """Expired at Telnyx, or past its ``expires_at``."""
    return cred.expired or (cred.expires_at is not None and cred.expires_at <= now)


def in_use(row: LocalCredential | None, now: datetime) -> bool:
    """A user holds a token minted for it that has not expired yet."""
    return row is not None and row.token_expires_at is not None and row.token_expires_at > now


def select_deletable(
    remote: Sequence[RemoteCredential],
    local: Mapping[str, LocalCredential],
    *,
    tag: str,
    now: datetime,
    older_than: timedelta | None = None,
    include_untagged: bool = False,
    orphan_grace: timedelta | None = None,
) -> list[Deletion]:
    """The credentials that may be deleted now, with the reason for each (oldest first)."""
    grace = orphan_grace_setting() if orphan_grace is None else orphan_grace
    out: list[Deletion] = []
    for cred in sorted(remote, key=lambda c: c.created_at or now):
        ours = cred.tag == tag
        if not ours and not include_untagged:
            continue
        row = local.get(cred.id)
        if is_expired(cred, now):
            out.append(Deletion(cred.id, "expired"))
        elif older_than is not None and cred.created_at and now - cred.created_at >= older_than:
            out.append(Deletion(cred.id, "older_than"))
        elif in_use(row, now):
            continue
        elif ours and row is not None and row.deleted_at is not None:
            out.append(Deletion(cred.id, "orphaned"))
        elif row is None and (cred.created_at is None or now - cred.created_at >= grace):
            out.append(Deletion(cred.id, "orphaned" if ours else "untagged"))
    return out


def select_for_room(
    remote: Sequence[RemoteCredential],
    local: Mapping[str, LocalCredential],
    *,
    tag: str,
    now: datetime,
) -> list[Deletion]:
    """What to delete at the account limit: the deletable ones, else the oldest idle one.

    ``remote`` is the ``filter[tag]`` listing of our credentials (see the module doc).
    """
    ours = tagged(remote, tag)
    found = select_deletable(ours, local, tag=tag, now=now)
    if found:
        return found
    for cred in sorted(ours, key=lambda c: c.created_at or now):
        row = local.get(cred.id)
        if row is None or in_use(row, now):
            continue
        return [Deletion(cred.id, "room")]
    return []
