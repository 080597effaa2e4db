"""The admin pages for the telephony record: they render, filter, search, stay read-only
and never show a secret."""

from __future__ import annotations

from datetime import timedelta
from http import HTTPStatus
from typing import Any

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from telephony.models import Call, CallStatus, Credential, ServiceEvent, WebhookEvent

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def secrets_and_data(telnyx: Any) -> dict[str, Any]:
    """Real records, built from a real sandbox credential and a token minted for it."""
    auth = {"Authorization": f"Bearer {telnyx.api_key}"}
    remote = httpx.post(
        f"{telnyx.base_url}/telephony_credentials",
        json={"connection_id": telnyx.connection_id, "tag": "django-telephony"},
        headers=auth,
        timeout=10,
    ).json()["data"]
    token = httpx.post(
        f"{telnyx.base_url}/telephony_credentials/{remote['id']}/token", headers=auth, timeout=10
    ).text
    alice = get_user_model().objects.create_user("alice", password="pw-alice-secret")
    bob = get_user_model().objects.create_user("bob", password="pw-bob-secret")
    now = timezone.now()
    live = Credential.objects.create(
        user=alice,
        telnyx_id=remote["id"],
        sip_username=remote["sip_username"],
        tag="django-telephony",
        expires_at=now + timedelta(hours=20),
        token_expires_at=now + timedelta(hours=20),
    )
    gone = Credential.objects.create(
        user=bob,
        telnyx_id="cred-gone",
        sip_username="gencredGONE",
        tag="django-telephony",
        expires_at=now - timedelta(hours=1),
        deleted_at=now,
        deleted_reason="expired",
    )
    done = Call.objects.create(
        user=alice,
        to_number="+12025550143",
        status=CallStatus.COMPLETED,
        call_control_id="v3:done",
        answered_at=now,
        ended_at=now + timedelta(seconds=30),
        duration_seconds=30,
        hangup_cause="normal_clearing",
    )
    failed = Call.objects.create(
        user=bob, to_number="+12025550199", status=CallStatus.FAILED, error_code="worker_lost"
    )
    hook = WebhookEvent.objects.create(
        event_id="evt-1",
        event_type="call.hangup",
        occurred_at=now,
        call=done,
        payload={"data": {"payload": {"hangup_source": "callee", "call_control_id": "v3:done"}}},
    )
    ServiceEvent.objects.create(kind="worker_started", state="ready", worker_id="host:1")
    return {
        "secrets": [remote["sip_password"], token, "pw-alice-secret", "pw-bob-secret"],
        "live": live, "gone": gone, "done": done, "failed": failed, "hook": hook,
        "alice": alice,
    }  # fmt: skip


def page(admin_client: Any, url: str, data: dict[str, Any]) -> str:
    response = admin_client.get(url)
    assert response.status_code == HTTPStatus.OK, url
    html = response.content.decode()
    for secret in data["secrets"]:
        assert secret not in html, f"a secret is shown on {url}"
    return html


def test_admin__credential_list_filters_and_detail(admin_client, secrets_and_data) -> None:
    d = secrets_and_data
    html = page(admin_client, "/admin/telephony/credential/", d)
    assert d["live"].sip_username in html and "gencredGONE" in html and "token in use" in html
    html = page(admin_client, "/admin/telephony/credential/?state=deleted", d)
    assert "gencredGONE" in html and d["live"].sip_username not in html
    html = page(admin_client, "/admin/telephony/credential/?state=in_use", d)
    assert d["live"].sip_username in html and "gencredGONE" not in html
    html = page(admin_client, f"/admin/telephony/credential/?user__id__exact={d['alice'].pk}", d)
    assert d["live"].sip_username in html and "gencredGONE" not in html
    html = page(admin_client, "/admin/telephony/credential/?q=GONE", d)
    assert "gencredGONE" in html and d["live"].sip_username not in html
    html = page(admin_client, f"/admin/telephony/credential/{d['live'].pk}/change/", d)
    assert d["live"].telnyx_id in html
    assert 'name="_save"' not in html


def test_admin__call_list_filters_and_detail_with_events(admin_client, secrets_and_data) -> None:
    d = secrets_and_data
    html = page(admin_client, "/admin/telephony/call/", d)
    assert "+12025550143" in html and "+12025550199" in html
    html = page(admin_client, "/admin/telephony/call/?status__exact=failed", d)
    assert "+12025550199" in html and "+12025550143" not in html
    html = page(admin_client, f"/admin/telephony/call/?user__id__exact={d['alice'].pk}", d)
    assert "+12025550143" in html and "+12025550199" not in html
    html = page(admin_client, "/admin/telephony/call/?q=v3:done", d)
    assert "+12025550143" in html and "+12025550199" not in html
    page(admin_client, "/admin/telephony/call/?q=not-a-uuid", d)
    html = page(admin_client, f"/admin/telephony/call/{d['done'].pk}/change/", d)
    assert "normal_clearing" in html and "call.hangup" in html and "callee" in html
    assert 'name="_save"' not in html


def test_admin__event_lists_are_read_only(admin_client, secrets_and_data) -> None:
    d = secrets_and_data
    html = page(admin_client, "/admin/telephony/serviceevent/", d)
    assert "worker_started" in html
    html = page(admin_client, "/admin/telephony/webhookevent/?event_type=call.hangup", d)
    assert "evt-1" in html
    html = page(admin_client, f"/admin/telephony/webhookevent/{d['hook'].pk}/change/", d)
    assert "hangup_source" in html and 'name="_save"' not in html
    for model in ("credential", "call", "serviceevent", "webhookevent"):
        assert (
            admin_client.get(f"/admin/telephony/{model}/add/").status_code == HTTPStatus.FORBIDDEN
        )
    response = admin_client.post(
        f"/admin/telephony/call/{d['done'].pk}/change/", {"status": "queued"}
    )
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert Call.objects.get(pk=d["done"].pk).status == CallStatus.COMPLETED
    response = admin_client.post(
        f"/admin/telephony/credential/{d['live'].pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert Credential.objects.filter(pk=d["live"].pk).exists()
