"""The demo's own login page: CRM agents who are not staff log in here, not in the admin."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from tests.telephony.conftest import fake_ready_worker

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent() -> object:
    return get_user_model().objects.create_user("agent", password="agent-pw", is_staff=False)


def test_login__anonymous_users_are_sent_to_the_agents_page() -> None:
    fake_ready_worker()
    assert settings.LOGIN_URL == "/accounts/login/"
    page = Client().get("/")
    assert page.status_code == HTTPStatus.OK
    html = page.content.decode()
    assert 'href="/accounts/login/?next=/"' in html  # top bar and notice
    assert 'class="tel-call__hint" href="/accounts/login/?next=%2F">Log in to call</a>' in html
    assert 'class="tel-call__button"' not in html


def test_login__non_staff_agent_logs_in_and_gets_call_buttons(agent: object) -> None:
    fake_ready_worker()
    client = Client(enforce_csrf_checks=True)
    page = client.get("/accounts/login/?next=/")
    assert page.status_code == HTTPStatus.OK
    assert b'name="username"' in page.content and b'name="password"' in page.content
    token = client.cookies["csrftoken"].value
    response = client.post(
        "/accounts/login/",
        {"username": "agent", "password": "agent-pw", "next": "/", "csrfmiddlewaretoken": token},
    )
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == "/"
    contacts = client.get("/")
    html = contacts.content.decode()
    assert "Signed in as agent" in html
    assert html.count('class="tel-call__button"') == 5  # one per demo contact
    assert 'data-tel-state="unavailable"' not in html
    assert "Log in to call" not in html
    assert 'href="/admin/"' not in html  # not staff: no admin link


def test_login__wrong_password_shows_an_error_and_stays_anonymous(agent: object) -> None:
    client = Client()
    response = client.post("/accounts/login/", {"username": "agent", "password": "nope"})
    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    assert 'role="alert"' in html
    assert "Please enter a correct username and password" in html
    assert "_auth_user_id" not in client.session


def test_login__log_out_returns_to_the_contacts_page(agent: object) -> None:
    client = Client()
    assert client.login(username="agent", password="agent-pw")
    response = client.post("/accounts/logout/")
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == "/"
    assert "_auth_user_id" not in client.session
