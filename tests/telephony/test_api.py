"""The /api/webrtc/ HTTP API: contract shapes, bad input, security, failure modes."""

from __future__ import annotations

import json
from http import HTTPStatus

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from telephony.connections import reset_clients
from telephony.models import Call, CallStatus
from tests.telephony.conftest import fake_ready_worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

CALL = "/api/webrtc/call"


@pytest.fixture(autouse=True)
def fresh_state(settings) -> None:
    settings.TELEPHONY_STATE_CACHE_TTL = 0


@pytest.fixture
def user():
    return get_user_model().objects.create_user("agent", password="pw")


@pytest.fixture
def api(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == code and isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in response.content.decode()
    return body


def test_api__status_is_public_uncached_and_503_when_unavailable(client: Client) -> None:
    response = client.get("/api/webrtc/status")
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"status", "healthy", "timestamp", "workers"}
    assert body["status"] == "unavailable" and body["healthy"] is False
    fake_ready_worker()
    response = client.get("/api/webrtc/status")
    assert response.status_code == HTTPStatus.OK and response.json()["status"] == "ready"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/webrtc/credential"),
        ("post", CALL),
        ("get", "/api/webrtc/call/00000000-0000-0000-0000-000000000000"),
        ("post", "/api/webrtc/call/00000000-0000-0000-0000-000000000000/hangup"),
    ],
)
def test_api__anonymous_gets_401_json(method: str, path: str) -> None:
    response = getattr(Client(enforce_csrf_checks=True), method)(path)
    assert_error(response, 401, "not_authenticated")


def test_api__post_without_csrf_is_refused(user) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    body = assert_error(
        client.post(CALL, {"to": "+12025550143"}, content_type="application/json"), 403, "forbidden"
    )
    assert "X-CSRFToken" in body["error"]
    assert Call.objects.count() == 0


def test_api__post_with_csrf_header_passes_the_check(user) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/")  # sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    response = client.post(
        CALL,
        {"to": "+12025550143"},
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    assert_error(response, 503, "service_unavailable")  # past CSRF; no worker here


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("not json", "application/json"),
        ("[1, 2]", "application/json"),
        ('"+12025550143"', "application/json"),
        ("{}", "application/json"),
        ('{"to": "+12025550143", "extra": 1}', "application/json"),
        ("to=%2B12025550143", "application/x-www-form-urlencoded"),
        ("\xff\xfe", "application/json"),
        (json.dumps({"to": "+12025550143", "pad": "x" * 10_000}), "application/json"),
    ],
)
def test_api__bad_bodies_are_invalid_request(api: Client, body: str, content_type: str) -> None:
    fake_ready_worker()
    assert_error(api.post(CALL, body, content_type=content_type), 400, "invalid_request")
    assert Call.objects.count() == 0


def test_api__huge_body_is_refused_without_reading_it(api: Client) -> None:
    fake_ready_worker()
    response = api.post(CALL, "x" * 5_000_000, content_type="application/json")
    assert_error(response, 400, "invalid_request")


@pytest.mark.parametrize(
    ("to", "status", "code"),
    [
        (12025550143, 400, "invalid_number"),
        (None, 400, "invalid_number"),
        (["+12025550143"], 400, "invalid_number"),
        ("2025550143", 400, "invalid_number"),
        ("+1 202 555 0143", 400, "invalid_number"),
        ("+11005550143", 400, "invalid_number"),
        ("+442071838750", 403, "destination_not_allowed"),
        ("+19005550123", 403, "destination_not_allowed"),
    ],
)
def test_api__numbers_are_validated_before_anything_is_sent(
    api: Client, to, status: int, code: str
) -> None:
    fake_ready_worker()
    assert_error(api.post(CALL, {"to": to}, content_type="application/json"), status, code)
    assert Call.objects.count() == 0


def test_api__another_users_call_is_not_found(api: Client) -> None:
    other = get_user_model().objects.create_user("other", password="pw")
    call = Call.objects.create(user=other, to_number="+12025550143", status=CallStatus.DIALING)
    assert_error(api.get(f"/api/webrtc/call/{call.id}"), 404, "not_found")
    assert_error(api.post(f"/api/webrtc/call/{call.id}/hangup"), 404, "not_found")
    assert_error(api.get("/api/webrtc/call/not-a-uuid"), 404, "not_found")


def test_api__own_call_detail(api: Client, user) -> None:
    call = Call.objects.create(user=user, to_number="+12025550143", status=CallStatus.COMPLETED)
    response = api.get(f"/api/webrtc/call/{call.id}")
    assert response.status_code == 200
    assert response.json()["call"]["id"] == str(call.id)
    assert response.json()["call"]["status"] == "completed"
    # Hanging up an ended call answers the call as it is, without a worker.
    assert api.post(f"/api/webrtc/call/{call.id}/hangup").json()["call"]["status"] == "completed"


def test_api__rate_limits_answer_429_with_retry_after(api: Client, settings) -> None:
    settings.TELEPHONY_RATE_LIMIT_CALL = "2/m"
    settings.TELEPHONY_REQUEST_TIMEOUT = 0.2
    fake_ready_worker()  # requests get through the state check, then time out
    for _ in range(2):
        assert_error(
            api.post(CALL, {"to": "+12025550143"}, content_type="application/json"),
            504,
            "worker_timeout",
        )
    response = api.post(CALL, {"to": "+12025550143"}, content_type="application/json")
    assert_error(response, 429, "rate_limited")
    assert 1 <= int(response["Retry-After"]) <= 61
    assert Call.objects.count() == 2  # the refused one wrote nothing
    # The limit is per user.
    other = Client()
    other.force_login(get_user_model().objects.create_user("other", password="pw"))
    response = other.post(CALL, {"to": "+12025550143"}, content_type="application/json")
    assert response.status_code == 504


def test_api__credential_rate_limit(api: Client, settings) -> None:
    settings.TELEPHONY_RATE_LIMIT_CREDENTIAL = "1/m"
    settings.TELEPHONY_REQUEST_TIMEOUT = 0.2
    fake_ready_worker()
    assert api.post("/api/webrtc/credential").status_code == 504
    assert_error(api.post("/api/webrtc/credential"), 429, "rate_limited")


def test_api__unavailable_answers_before_rate_limiting_and_parsing(api: Client, settings) -> None:
    settings.TELEPHONY_RATE_LIMIT_CALL = "1/m"
    for _ in range(3):  # never 429: nothing was attempted
        assert_error(
            api.post(CALL, "not json", content_type="application/json"), 503, "service_unavailable"
        )


def test_api__no_worker_is_503_at_once_with_retry_after(api: Client) -> None:
    response = api.post(CALL, {"to": "+12025550143"}, content_type="application/json")
    assert_error(response, 503, "service_unavailable")
    assert int(response["Retry-After"]) >= 1
    assert Call.objects.count() == 0


def test_api__worker_timeout_is_504_and_the_row_says_so(api: Client, settings) -> None:
    settings.TELEPHONY_REQUEST_TIMEOUT = 0.5
    fake_ready_worker()
    assert_error(
        api.post(CALL, {"to": "+12025550143"}, content_type="application/json"),
        504,
        "worker_timeout",
    )
    call = Call.objects.get()
    assert (call.status, call.error_code) == (CallStatus.UNKNOWN, "worker_timeout")


def test_api__redis_outage_during_a_request_is_503_json(api: Client, settings, user) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},
        }
    }
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    reset_clients()
    assert_error(
        api.post(CALL, {"to": "+12025550143"}, content_type="application/json"),
        503,
        "service_unavailable",
    )
    assert_error(api.post("/api/webrtc/credential"), 503, "service_unavailable")
    assert Client().get("/api/webrtc/status").json()["status"] == "unavailable"
    assert Call.objects.count() == 0


def test_api__seat_limit_is_409_json(api: Client, monkeypatch) -> None:
    from telephony import exceptions as exc
    from telephony.web import views

    async def full(*args, **kwargs):
        raise exc.TelephonyError.from_dict(  # as it comes back from the worker
            exc.SeatLimit("All 5 telephony seats are in use by agents who are online.").to_dict()
        )

    monkeypatch.setattr(views.service, "agenerate_credential", full)
    fake_ready_worker()
    body = assert_error(api.post("/api/webrtc/credential"), 409, "seat_limit")
    assert body["error"].startswith("All 5 telephony seats are in use")


def test_api__presence_heartbeat_is_204_for_a_user_only(api: Client, user) -> None:
    from telephony import presence

    assert api.post("/api/webrtc/presence").status_code == 204
    assert presence.read([user.pk])[user.pk].online
    assert_error(Client().post("/api/webrtc/presence"), 401, "not_authenticated")
    assert_error(api.get("/api/webrtc/presence"), 405, "method_not_allowed")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert_error(strict.post("/api/webrtc/presence"), 403, "forbidden")


def test_api__unknown_paths_and_methods_are_json(api: Client) -> None:
    assert_error(api.get("/api/webrtc/nope"), 404, "not_found")
    assert_error(api.get("/api/elsewhere"), 404, "not_found")
    response = api.get(CALL)
    assert_error(response, 405, "method_not_allowed")
    assert response["Allow"] == "POST"


def test_api__a_bug_is_500_internal_error_never_a_traceback(api: Client, monkeypatch) -> None:
    from telephony.web import views

    async def broken(*args, **kwargs):
        raise RuntimeError("secret-internal-detail")

    monkeypatch.setattr(views.service, "agenerate_credential", broken)
    fake_ready_worker()
    client = Client(raise_request_exception=False)
    client.force_login(get_user_model().objects.get(username="agent"))
    response = client.post("/api/webrtc/credential")
    body = assert_error(response, 500, "internal_error")
    assert "secret-internal-detail" not in json.dumps(body)


def test_api__openapi_document_is_valid_and_lists_every_endpoint(client: Client) -> None:
    from openapi_spec_validator import validate

    doc = client.get("/api/webrtc/openapi.json").json()
    validate(doc)
    assert set(doc["paths"]) == {
        "/api/webrtc/call/{call_id}/recording",
        "/api/webrtc/recordings/{recording_id}/audio",
        "/api/webrtc/status",
        "/api/webrtc/credential",
        "/api/webrtc/presence",
        "/api/webrtc/call",
        "/api/webrtc/call/{call_id}",
        "/api/webrtc/call/{call_id}/hangup",
        "/api/webrtc/openapi.json",
    }


def test_api__full_flow_through_a_real_worker(api: Client, start_worker, telnyx) -> None:
    telnyx.set_webhooks(answer_after=30, talk_time=60)
    start_worker()
    cred = api.post("/api/webrtc/credential")
    assert cred.status_code == 201
    assert set(cred.json()["credential"]) == {"token", "sip_username", "expires_at"}
    assert cred["Cache-Control"] == "no-store"
    created = api.post(CALL, {"to": "+12025550143"}, content_type="application/json")
    assert created.status_code == 201, created.content
    call = created.json()["call"]
    assert {"id", "status", "to", "created_at"} <= set(call)
    assert call["status"] == "dialing"
    assert api.get(f"/api/webrtc/call/{call['id']}").json()["call"]["id"] == call["id"]
    ended = api.post(f"/api/webrtc/call/{call['id']}/hangup")
    # The agent leg was still ringing: hanging up cancels the call, by the agent.
    assert ended.status_code == 200 and ended.json()["call"]["status"] == "canceled"
    assert ended.json()["call"]["hangup_side"] == "agent"


def test_api__call_without_a_login_is_409_no_credential(api: Client, start_worker, telnyx) -> None:
    start_worker()
    created = api.post(CALL, {"to": "+12025550143"}, content_type="application/json")
    assert_error(created, 409, "no_credential")


@pytest.mark.parametrize(
    "middleware",
    [
        "telephony.web.api.AuthenticationMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ],
)
def test_api__the_login_check_reads_the_user_once_with_either_middleware(
    settings, user, middleware, monkeypatch
) -> None:
    settings.MIDDLEWARE = [
        middleware if m.endswith(".AuthenticationMiddleware") else m for m in settings.MIDDLEWARE
    ]
    from django.contrib import auth

    reads = []
    sync_get, async_get = auth.get_user, auth.aget_user

    def counting_get(request):
        reads.append("sync")
        return sync_get(request)

    async def counting_aget(request):
        reads.append("async")
        return await async_get(request)

    monkeypatch.setattr(auth, "get_user", counting_get)
    monkeypatch.setattr(auth, "aget_user", counting_aget)
    client = Client()
    client.force_login(user)
    reads.clear()
    assert_error(client.post(CALL, {"to": "+12025550143"}, content_type="application/json"),
                 503, "service_unavailable")  # fmt: skip
    # Ours reads it in the middleware's own thread hop; Django's lazily, in the view.
    assert reads == (["sync"] if middleware.startswith("telephony") else ["async"])
    reads.clear()
    assert_error(Client().post(CALL, {}, content_type="application/json"), 401, "not_authenticated")


def test_api__a_login_read_failing_in_the_middleware_is_read_again_in_the_view(
    api: Client, monkeypatch
) -> None:
    from django.contrib.auth import middleware

    def broken(request):
        raise RuntimeError("database gone for a moment")

    monkeypatch.setattr(middleware, "get_user", broken)
    response = api.post(CALL, {"to": "+12025550143"}, content_type="application/json")
    assert_error(response, 503, "service_unavailable")  # JSON, never Django's HTML 500
