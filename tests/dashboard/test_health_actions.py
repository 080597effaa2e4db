"""Actions on the health page: permission, confirmation, CSRF, effect and audit."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.test import Client

from telephony.connections import get_redis
from telephony.keys import Keys
from telephony.models import ServiceEvent
from telephony.procutil import wait_for
from telephony.protocol import ControlCommand
from telephony.state import READY, UNAVAILABLE, read_state
from tests.dashboard.conftest import client_for, put_supervisor
from tests.telephony.test_supervisor import START, events, wait_ready, worker_pids

ACTIONS = "/admin/telephony/health/actions"
PAGE = "/admin/telephony/health/"
ALL = ["restart", "reset", "breaker_open", "breaker_closed", "breaker_auto"]


def confirmed(client: Client, action: str):
    return client.post(f"{ACTIONS}/{action}/", {"confirmed": "yes"})


def nothing_happened(sid: str = "h1:1") -> bool:
    r = get_redis()
    return (
        r.get(Keys.breaker_forced()) is None
        and r.llen(Keys.control(sid)) == 0
        and not ServiceEvent.objects.exists()
    )


@pytest.mark.django_db
@pytest.mark.parametrize("action", ALL)
def test_actions__refused_without_the_permission(viewer, action) -> None:
    put_supervisor("h1:1")
    client = client_for(viewer)
    assert confirmed(client, action).status_code == HTTPStatus.FORBIDDEN
    assert client.get(f"{ACTIONS}/{action}/").status_code == HTTPStatus.FORBIDDEN
    assert nothing_happened()


@pytest.mark.django_db
def test_actions__send_non_staff_to_the_login(client, customer) -> None:
    for who in (client, client_for(customer)):
        response = confirmed(who, "breaker_open")
        assert response.status_code == HTTPStatus.FOUND
        assert response["Location"].startswith("/admin/login/")
    assert nothing_happened()


@pytest.mark.django_db
def test_actions__ask_for_confirmation_first_without_javascript(operator) -> None:
    put_supervisor("h1:1")
    client = client_for(operator)
    for response in (client.get(f"{ACTIONS}/restart/"), client.post(f"{ACTIONS}/restart/")):
        assert response.status_code == HTTPStatus.OK
        html = response.content.decode()
        assert "Restart every telephony worker?" in html
        assert 'name="confirmed" value="yes"' in html and "csrfmiddlewaretoken" in html
    assert nothing_happened()
    assert client.get(f"{ACTIONS}/no-such-thing/").status_code == HTTPStatus.NOT_FOUND


@pytest.mark.django_db
def test_actions__need_the_csrf_token(operator) -> None:
    client = client_for(operator, enforce_csrf_checks=True)
    assert confirmed(client, "breaker_open").status_code == HTTPStatus.FORBIDDEN
    assert nothing_happened()
    page = client.get(PAGE).content.decode()
    token = page.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
    response = client.post(
        f"{ACTIONS}/breaker_open/", {"confirmed": "yes", "csrfmiddlewaretoken": token}
    )
    assert response.status_code == HTTPStatus.FOUND


@pytest.mark.django_db
def test_actions__force_the_circuit_open_then_back_to_automatic_audited(operator) -> None:
    client = client_for(operator)
    response = confirmed(client, "breaker_open")
    assert response.status_code == HTTPStatus.FOUND and response["Location"] == PAGE
    state = read_state()
    assert state.status == UNAVAILABLE and state.reason == "circuit_forced_open"
    audit = ServiceEvent.objects.get(kind="breaker_forced")
    assert audit.user == operator and audit.data["forced"] == "open"

    page = client.get(PAGE).content.decode()
    assert "Provider circuit forced open" in page  # the message after the redirect
    assert "forced open</strong>" in page and "by operator" in page
    assert client.get("/admin/telephony/health.json").json()["service"]["breaker_forced"] == "open"

    confirmed(client, "breaker_auto")
    assert get_redis().get(Keys.breaker_forced()) is None
    assert read_state().reason != "circuit_forced_open"
    assert [e.data["forced"] for e in events("breaker_forced")] == ["open", None]


@pytest.mark.django_db
def test_actions__superusers_have_the_permission(admin_client, admin_user) -> None:
    put_supervisor("h1:1")
    assert confirmed(admin_client, "reset").status_code == HTTPStatus.FOUND
    assert [
        c
        for c in get_redis().lrange(Keys.control("h1:1"), 0, -1)
        if ControlCommand.decode(c).cmd == "reset"
    ]
    assert ServiceEvent.objects.get(kind="control_reset").user == admin_user


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.django_db(transaction=True)
def test_actions__rolling_restart_replaces_every_worker(operator, supervisor, procs) -> None:
    sup, before = supervisor(workers=1)
    response = confirmed(client_for(operator), "restart")
    assert response.status_code == HTTPStatus.FOUND
    audit = ServiceEvent.objects.get(kind="control_restart")
    assert audit.user == operator and audit.data["targets"]

    ok = wait_for(
        lambda: (pids := worker_pids(sup)) != [] and not set(pids) & set(before), timeout=START
    )
    assert ok, procs.output(sup)[-3000:]
    after = wait_ready(procs, sup, 1)
    assert after != before and read_state().status == READY
