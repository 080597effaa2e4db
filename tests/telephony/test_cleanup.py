"""Credential lifecycle: ``cleanup_credentials``, the workers' hygiene pass and the
account-limit path, against the real sandbox, real worker and command subprocesses."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from devserver.sandbox.control import SandboxProcess
from telephony import exceptions as exc
from telephony.connections import get_redis
from telephony.keys import Keys
from telephony.models import Credential, ServiceEvent
from telephony.procutil import wait_for
from telephony.web.client import get_telephony_service
from telephony.worker.credentials import Deletion, select_deletable, select_for_room
from telephony.worker.hygiene import parse_duration

TAG = "django-telephony"
service = get_telephony_service()


# -- helpers ----------------------------------------------------------------------------


def make_remote(
    sandbox: SandboxProcess, *, tag: str | None = TAG, expires_in: float | None = 3600
) -> dict[str, Any]:
    """Create a credential at the sandbox directly (as another app or a lost worker would)."""
    body: dict[str, Any] = {"connection_id": sandbox.connection_id, "name": "test"}
    if tag:
        body["tag"] = tag
    if expires_in is not None:
        body["expires_at"] = (datetime.now(UTC) + timedelta(seconds=expires_in)).isoformat()
    resp = httpx.post(
        f"{sandbox.base_url}/telephony_credentials",
        json=body,
        headers={"Authorization": f"Bearer {sandbox.api_key}"},
        timeout=10,
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["data"]


def remote_ids(sandbox: SandboxProcess) -> set[str]:
    resp = httpx.get(
        f"{sandbox.base_url}/telephony_credentials",
        params={"page[size]": 250},
        headers={"Authorization": f"Bearer {sandbox.api_key}"},
        timeout=10,
    )
    return {c["id"] for c in resp.json()["data"]}


def record(
    remote: dict[str, Any], user: Any, *, token_in: float | None = None, deleted: bool = False
) -> Credential:
    """Our row for a remote credential; ``token_in`` seconds until its token expires."""
    now = timezone.now()
    return Credential.objects.create(
        user=user,
        telnyx_id=remote["id"],
        sip_username=remote["sip_username"],
        tag=TAG,
        expires_at=datetime.fromisoformat(remote["expires_at"].replace("Z", "+00:00")),
        token_expires_at=None if token_in is None else now + timedelta(seconds=token_in),
        deleted_at=now if deleted else None,
        deleted_reason="test" if deleted else "",
    )


@dataclass
class Account:
    """One of each kind of credential, at the sandbox and in our database."""

    old_in_use: dict[str, Any]
    expired: dict[str, Any]
    orphan_missing: dict[str, Any]
    orphan_deleted: dict[str, Any]
    untagged: dict[str, Any]
    in_use: dict[str, Any]
    idle: dict[str, Any]

    def ids(self, *names: str) -> set[str]:
        return {getattr(self, n)["id"] for n in names}

    def secrets(self) -> list[str]:
        return [c["sip_password"] for c in vars(self).values()]


@pytest.fixture
def user() -> Any:
    return get_user_model().objects.create_user("agent")


@pytest.fixture
def command_settings(settings: Any, telnyx: SandboxProcess) -> Any:
    settings.TELNYX_API_KEY = telnyx.api_key
    settings.TELNYX_BASE_URL = telnyx.base_url
    settings.TELEPHONY_CREDENTIAL_ORPHAN_GRACE = 0
    return settings


@pytest.fixture
def account(
    request: pytest.FixtureRequest, telnyx: SandboxProcess, user: Any, command_settings: Any
) -> Account:
    aged = getattr(request, "param", "") == "aged"
    if aged:  # the first one two hours old, so that --older-than 1h selects exactly it
        telnyx.set_clock(-7200)
    old_in_use = make_remote(telnyx)
    telnyx.set_clock(0)
    record(old_in_use, user, token_in=3600)
    acc = Account(
        old_in_use=old_in_use,
        expired=make_remote(telnyx, expires_in=-60),
        orphan_missing=make_remote(telnyx),
        orphan_deleted=make_remote(telnyx),
        untagged=make_remote(telnyx, tag=None, expires_in=None),
        in_use=make_remote(telnyx),
        idle=make_remote(telnyx),
    )
    record(acc.expired, user, token_in=-3600)
    record(acc.orphan_deleted, user, deleted=True)
    record(acc.in_use, user, token_in=3600)
    record(acc.idle, user, token_in=-60)
    return acc


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("cleanup_credentials", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


# -- the selection rule (pure) --------------------------------------------------------------


@dataclass(frozen=True)
class R:
    id: str
    tag: str = TAG
    expires_at: datetime | None = None
    created_at: datetime | None = None
    expired: bool = False


@dataclass(frozen=True)
class L:
    deleted_at: datetime | None = None
    token_expires_at: datetime | None = None


def test_select__in_use_kept_unless_older_than_and_fresh_orphans_kept() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    hour = timedelta(hours=1)
    remote = [
        R("in_use", created_at=now - 3 * hour),
        R("fresh_orphan", created_at=now - timedelta(seconds=5)),
        R("orphan", created_at=now - 2 * hour),
        R("deleted_but_token_valid", created_at=now - hour),
    ]
    local = {
        "in_use": L(token_expires_at=now + hour),
        "deleted_but_token_valid": L(deleted_at=now, token_expires_at=now + hour),
    }
    got = select_deletable(remote, local, tag=TAG, now=now, orphan_grace=timedelta(minutes=5))
    assert got == [Deletion("orphan", "orphaned")]
    got = select_deletable(
        remote, local, tag=TAG, now=now, older_than=2 * hour, orphan_grace=timedelta(minutes=5)
    )
    assert got == [Deletion("in_use", "older_than"), Deletion("orphan", "older_than")]


def test_select__room_treats_tag_filtered_listing_as_ours() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    # Telnyx does not return the tag: the worker's listing comes back with tag "".
    remote = [
        R("busy", tag="", created_at=now - timedelta(hours=3)),
        R("idle", tag="", created_at=now - timedelta(hours=2)),
    ]
    local = {"busy": L(token_expires_at=now + timedelta(hours=1)), "idle": L()}
    assert select_for_room(remote, local, tag=TAG, now=now) == [Deletion("idle", "room")]
    expired = [*remote, R("gone", tag="", expired=True, created_at=now)]
    assert select_for_room(expired, local, tag=TAG, now=now) == [Deletion("gone", "expired")]
    assert select_for_room(remote[:1], local, tag=TAG, now=now) == []


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("12h", 43200), ("7d", 604800), ("1w", 604800), ("1d12h", 129600)],
)
def test_parse_duration__units(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5", "m", "1x", "-1h", "0m", "1.5h", "h1"])
def test_parse_duration__rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


# -- cleanup_credentials ----------------------------------------------------------------------

pytestmark = [pytest.mark.timeout(90)]
db = pytest.mark.django_db(transaction=True)


@db
def test_cleanup__dry_run_shows_the_table_and_deletes_nothing(telnyx, account) -> None:
    before = remote_ids(telnyx)
    out = run("--dry-run")
    assert "ID" in out and "SIP USERNAME" in out and "REASON" in out
    for name, reason in (
        ("expired", "expired"),
        ("orphan_missing", "orphaned"),
        ("orphan_deleted", "orphaned"),
    ):
        line = next(ln for ln in out.splitlines() if getattr(account, name)["id"] in ln)
        assert line.rstrip().endswith(reason) and getattr(account, name)["sip_username"] in line
    for name in ("in_use", "idle", "untagged", "old_in_use"):
        assert getattr(account, name)["id"] not in out
    assert "Dry run: 3 of 6 listed credentials" in out
    assert remote_ids(telnyx) == before
    assert not [e for e in telnyx.log() if e["operation"] == "DeleteTelephonyCredential"]
    assert not any(secret in out for secret in account.secrets())


@db
def test_cleanup__deletes_what_may_go_records_it_and_second_run_finds_nothing(
    telnyx, account
) -> None:
    out = run()
    assert (
        "Listed 6 (tag django-telephony), selected 3, deleted 3, already gone 0, failed 0." in out
    )
    assert remote_ids(telnyx) == account.ids("old_in_use", "untagged", "in_use", "idle")
    rows = {c.telnyx_id: c for c in Credential.objects.all()}
    assert rows[account.expired["id"]].deleted_reason == "expired"
    assert rows[account.expired["id"]].deleted_at is not None
    assert rows[account.orphan_deleted["id"]].deleted_reason == "test"  # conditional: kept
    assert rows[account.in_use["id"]].deleted_at is None
    assert not any(secret in out for secret in account.secrets())

    again = run()
    assert "Listed 3 (tag django-telephony), selected 0, deleted 0" in again


@db
@pytest.mark.parametrize("account", ["aged"], indirect=True)
def test_cleanup__older_than_and_include_untagged_widen_the_selection(telnyx, account) -> None:
    report = json.loads(run("--older-than", "1h", "--json"))
    assert report["older_than_seconds"] == 3600.0 and report["dry_run"] is False
    reasons = {i["id"]: i["reason"] for i in report["items"]}
    assert reasons[account.old_in_use["id"]] == "older_than"  # in use, but selected by age
    assert account.in_use["id"] not in reasons and account.untagged["id"] not in reasons
    assert report["counts"] == {
        "listed": 6, "selected": 4, "deleted": 4, "already_gone": 0, "failed": 0,
    }  # fmt: skip
    item = report["items"][0]
    assert set(item) == {
        "id", "sip_username", "tag", "created_at", "expires_at", "reason", "outcome", "error",
    }  # fmt: skip

    report = json.loads(run("--include-untagged", "--json"))
    assert [(i["id"], i["reason"], i["tag"]) for i in report["items"]] == [
        (account.untagged["id"], "untagged", "")
    ]
    assert remote_ids(telnyx) == account.ids("in_use", "idle")


@db
@pytest.mark.parametrize("bad", ["soon", "10", "0h", "-3d"])
def test_cleanup__bad_duration_fails_before_touching_anything(
    telnyx, user, command_settings, bad
) -> None:
    expired = make_remote(telnyx, expires_in=-60)
    with pytest.raises(CommandError, match="--older-than") as err:
        run(f"--older-than={bad}")
    assert err.value.returncode == 2
    assert [e["operation"] for e in telnyx.log()] == ["CreateTelephonyCredential"]
    assert expired["id"] in remote_ids(telnyx)


@db
def test_cleanup__failed_deletes_exit_non_zero_and_keep_rows(telnyx, account) -> None:
    telnyx.set_fault("DeleteTelephonyCredential", status=500)
    out = io.StringIO()
    with pytest.raises(CommandError, match="3 deletion") as err:
        call_command("cleanup_credentials", stdout=out, stderr=io.StringIO())
    assert err.value.returncode == 1
    assert "failed 3" in out.getvalue() and "FAILED" in out.getvalue()
    assert Credential.objects.get(telnyx_id=account.expired["id"]).deleted_at is None
    assert account.ids("expired", "orphan_missing") <= remote_ids(telnyx)


@db
def test_cleanup__delete_executed_then_errored_is_already_gone_on_retry(telnyx, account) -> None:
    telnyx.set_fault("DeleteTelephonyCredential", status=503, execute=True, count=1)
    report = json.loads(run("--json"))
    assert report["counts"]["failed"] == 0
    assert report["counts"]["deleted"] + report["counts"]["already_gone"] == 3
    assert report["counts"]["already_gone"] == 1


@db
def test_cleanup__listing_failure_deletes_nothing(telnyx, account) -> None:
    telnyx.set_fault("FindTelephonyCredentials", status=503)
    with pytest.raises(CommandError, match="Could not list") as err:
        run()
    assert err.value.returncode == 1
    assert not [e for e in telnyx.log() if e["operation"] == "DeleteTelephonyCredential"]


@db
def test_cleanup__two_concurrent_runs_delete_the_right_set_once(
    telnyx, user, procs, subprocess_env
) -> None:
    expired = [make_remote(telnyx, expires_in=-60) for _ in range(24)]
    orphaned = [make_remote(telnyx) for _ in range(6)]
    keep = [make_remote(telnyx) for _ in range(5)]
    for cred in expired:
        record(cred, user)
    for cred in orphaned:
        record(cred, user, deleted=True)
    for cred in keep:
        record(cred, user, token_in=3600)
    env = {
        **subprocess_env,
        "TELNYX_API_KEY": telnyx.api_key,
        "TELNYX_BASE_URL": telnyx.base_url,
    }
    runs = [
        procs.manage(
            "cleanup_credentials", "--json", env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=60) for p in runs]
    assert [p.returncode for p in runs] == [0, 0], [err.decode()[-2000:] for _, err in results]
    reports = [json.loads(out) for out, _ in results]
    should_go = {c["id"] for c in expired + orphaned}
    deleted = [{i["id"] for i in r["items"] if i["outcome"] == "deleted"} for r in reports]
    assert deleted[0] | deleted[1] == should_go
    assert not deleted[0] & deleted[1]  # each credential deleted by exactly one run
    for r in reports:
        assert r["counts"]["failed"] == 0
        assert {i["outcome"] for i in r["items"]} <= {"deleted", "already_gone"}
    assert remote_ids(telnyx) == {c["id"] for c in keep}
    assert Credential.objects.filter(deleted_at__isnull=True).count() == len(keep)
    for out, err in results:
        assert not any(c["sip_password"].encode() in out + err for c in expired + keep)


# -- the workers' hygiene pass ---------------------------------------------------------------


@db
async def test_hygiene__worker_deletes_expired_once_per_interval(
    telnyx, user, sandbox_workers, settings
) -> None:
    expired = make_remote(telnyx, expires_in=-60)
    await Credential.objects.acreate(
        user=user, telnyx_id=expired["id"], sip_username=expired["sip_username"], tag=TAG,
        expires_at=timezone.now() - timedelta(minutes=1),
    )  # fmt: skip
    in_use = make_remote(telnyx)
    untagged_expired = make_remote(telnyx, tag=None, expires_in=-60)
    settings.TELEPHONY_RECONCILE_INTERVAL = 0.2
    await sandbox_workers.start()  # in this process: the pass is the worker's, not its process's

    gone = await asyncio.to_thread(
        wait_for, lambda: expired["id"] not in remote_ids(telnyx), timeout=10
    )
    assert gone
    assert {in_use["id"], untagged_expired["id"]} <= remote_ids(telnyx)
    row = await Credential.objects.aget(telnyx_id=expired["id"])
    assert row.deleted_reason == "expired" and row.deleted_at is not None
    # The pass writes its event after the deletions: wait for it, not just for the deletion.
    events = ServiceEvent.objects.filter(kind="credentials_cleaned")
    assert await asyncio.to_thread(wait_for, events.exists, timeout=10)
    event = await events.afirst()
    assert event is not None and event.data["deleted"] == [expired["id"]]
    ttl = get_redis().pttl(Keys.hygiene_due())
    assert 3_500_000 < ttl <= 3_600_000  # the next pass is an hour away

    later = make_remote(telnyx, expires_in=-60)
    await asyncio.sleep(1.0)  # five reconcile rounds: none may run the pass again
    assert later["id"] in remote_ids(telnyx)


# -- the account limit -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_account() -> Iterator[SandboxProcess]:
    """A sandbox whose account holds at most 3 credentials (stopped by pid at the end)."""
    sandbox = SandboxProcess.start(args=["--credential-limit", "3"], stderr=subprocess.DEVNULL)
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
async def limited(small_account, in_process_workers, settings) -> SandboxProcess:
    """The small account, served by a worker in this process (what is tested is the
    worker's choice of what to delete, not its process)."""
    small_account.reset()
    settings.TELNYX_API_KEY = small_account.api_key
    settings.TELNYX_BASE_URL = small_account.base_url
    settings.TELNYX_CONNECTION_ID = small_account.connection_id
    await in_process_workers.start()
    return small_account


def _full_account(sandbox: SandboxProcess, user: Any, tokens: list[float]) -> list[dict[str, Any]]:
    creds = []
    for token_in in tokens:
        cred = make_remote(sandbox, expires_in=-60 if token_in == -1 else 3600)
        record(cred, user, token_in=None if token_in == -1 else token_in)
        creds.append(cred)
    return creds


@db
async def test_limit__expired_credential_makes_room_in_use_ones_stay(limited, user) -> None:
    other = await get_user_model().objects.acreate_user("other")
    expired, busy_a, busy_b = await asyncio.to_thread(
        _full_account, limited, other, [-1, 3600, 3600]
    )
    credential = await service.agenerate_credential(user)
    assert credential["token"].count(".") == 2
    assert remote_ids(limited) - {expired["id"]} == {busy_a["id"], busy_b["id"]} | {
        (await Credential.objects.aget(user=user)).telnyx_id
    }
    row = await Credential.objects.aget(telnyx_id=expired["id"])
    assert row.deleted_reason == "expired"


@db
async def test_limit__idle_credential_makes_room(limited, user) -> None:
    other = await get_user_model().objects.acreate_user("other")
    idle, busy_a, busy_b = await asyncio.to_thread(_full_account, limited, other, [-60, 3600, 3600])
    await service.agenerate_credential(user)
    assert idle["id"] not in remote_ids(limited)
    assert {busy_a["id"], busy_b["id"]} <= remote_ids(limited)
    assert (await Credential.objects.aget(telnyx_id=idle["id"])).deleted_reason == "room"


@db
async def test_limit__nothing_deletable_is_credential_limit_reached(limited, user) -> None:
    other = await get_user_model().objects.acreate_user("other")
    creds = await asyncio.to_thread(_full_account, limited, other, [3600, 3600, 3600])
    with pytest.raises(exc.CredentialLimitReached) as err:
        await service.agenerate_credential(user)
    assert (err.value.status, err.value.code, err.value.reason) == (
        502, "provider_error", "credential_limit",
    )  # fmt: skip
    assert remote_ids(limited) == {c["id"] for c in creds}
    assert not await Credential.objects.filter(deleted_at__isnull=False).aexists()
