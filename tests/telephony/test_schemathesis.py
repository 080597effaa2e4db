"""Schemathesis against ``/api/webrtc/openapi.json``, on a real daphne.

Every operation in the document gets generated requests, valid ones and invalid ones,
logged in (session cookie and ``X-CSRFToken``) and anonymous, with no worker (503s are
documented answers) and with a real worker and the sandbox. Every answer must be
documented: status, content type, headers and body schema. No server error is allowed
except the documented JSON 502/503/504, and a 500 never.
"""

from __future__ import annotations

import secrets
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from django.contrib.auth import get_user_model
from django.test import Client
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from telephony.web.openapi import openapi_document
from tests.helpers import ProcessTracker, free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(180)]

# Per operation and generation mode; Hypothesis stops early when there are fewer distinct cases.
MAX_EXAMPLES = 50
DOCUMENTED_5XX = (502, 503, 504)
VALID_NUMBER = "+12025550143"


def documented_server_errors_only(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 5xx must be a documented 502/503/504 (the other checks validate its JSON body
    against the document); a 500, i.e. a crash, never passes, documented or not."""
    if response.status_code >= 500 and response.status_code not in DOCUMENTED_5XX:
        raise AssertionError(
            f"{case.operation.label}: server error {response.status_code}: "
            f"{response.content[:300]!r}"
        )
    return None


CHECKS = [
    documented_server_errors_only,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@dataclass
class Api:
    """A daphne serving the product, and how to talk to it as a user."""

    base_url: str
    cookies: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    session: requests.Session = field(default_factory=requests.Session)
    seen: dict[int, int] = field(default_factory=dict)

    def record(self, status: int) -> None:
        self.seen[status] = self.seen.get(status, 0) + 1


def start_daphne(procs: ProcessTracker, env: dict[str, str]) -> str:
    port = free_port()
    env = {
        **env,
        "TELEPHONY_RATE_LIMIT_CALL": "10000/m",  # reach the deeper answers, not only 429
        "TELEPHONY_RATE_LIMIT_CREDENTIAL": "10000/m",
        "TELEPHONY_REQUEST_TIMEOUT": "3",
    }
    argv = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
    proc = procs.start([*argv, "config.asgi:application"], env=env, name="daphne")
    end = time.monotonic() + 30
    while time.monotonic() < end:
        assert proc.poll() is None, f"daphne exited:\n{procs.output(proc)}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"daphne did not listen on {port}:\n{procs.output(proc)}")


def logged_in(api: Api) -> Api:
    """A session in the test database (daphne reads it) and a CSRF cookie/header pair."""
    client = Client()
    client.force_login(get_user_model().objects.create_user("fuzz", password="pw"))
    token = secrets.token_hex(16)  # 32 characters: a valid unmasked CSRF secret
    api.cookies = {"sessionid": client.cookies["sessionid"].value, "csrftoken": token}
    api.headers = {"X-CSRFToken": token}
    return api


def fuzz(api: Api, *, modes: tuple[GenerationMode, ...], max_examples: int = MAX_EXAMPLES) -> None:
    """Every operation, every mode: call it and validate the answer."""
    schema = schemathesis.openapi.from_dict(openapi_document(api.base_url))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 9
    for operation in operations:
        for mode in modes:
            # Fixed, so that negative mode never "forgets" the login: it fuzzes the rest.
            strategy = operation.as_strategy(
                generation_mode=mode, headers=api.headers or None, cookies=api.cookies or None
            )

            @given(case=strategy)
            @settings(
                max_examples=max_examples,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def run(case: Any) -> None:
                check(api, case)

            try:
                run()
            except Unsatisfiable:
                # Nothing to make invalid (no parameters, no body): positive mode covers it.
                assert mode == GenerationMode.NEGATIVE, operation.label


def check(api: Api, case: Any) -> Any:
    """Send one case as the api's user and validate the answer against the document."""
    for name, value in api.headers.items():
        case.headers.setdefault(name, value)
    for name, value in api.cookies.items():
        case.cookies.setdefault(name, value)
    response = case.call(base_url=api.base_url, session=api.session, timeout=15)
    api.record(response.status_code)
    case.validate_response(response, checks=CHECKS, headers=api.headers)
    return response


@pytest.fixture
def daphne(procs: ProcessTracker, subprocess_env: dict[str, str]) -> Callable[..., Api]:
    def start(env: dict[str, str] | None = None) -> Api:
        return Api(start_daphne(procs, env or subprocess_env))

    return start


@pytest.fixture
def session_cleanup(request, capsys) -> Iterator[list[Api]]:
    """Closes the sessions; reports how many answers of each status the run saw."""
    apis: list[Api] = []
    yield apis
    for api in apis:
        api.session.close()
        with capsys.disabled():
            seen = ", ".join(f"{k}: {v}" for k, v in sorted(api.seen.items()))
            print(f"\n{request.node.name}: {sum(api.seen.values())} requests ({seen})")


def test_schemathesis__no_worker_every_answer_is_documented(daphne, session_cleanup) -> None:
    api = logged_in(daphne())
    session_cleanup.append(api)
    fuzz(api, modes=(GenerationMode.POSITIVE, GenerationMode.NEGATIVE))
    assert api.seen.get(503), f"no 503 without a worker? {api.seen}"
    assert 500 not in api.seen


def test_schemathesis__anonymous_every_answer_is_documented(daphne, session_cleanup) -> None:
    api = daphne()
    session_cleanup.append(api)
    fuzz(api, modes=(GenerationMode.POSITIVE,), max_examples=10)
    assert api.seen.get(401), f"anonymous calls were not refused? {api.seen}"
    assert 500 not in api.seen


def test_schemathesis__with_worker_every_answer_is_documented(
    daphne, start_worker, worker_env, session_cleanup
) -> None:
    start_worker()
    api = logged_in(daphne(worker_env))
    session_cleanup.append(api)
    fuzz(api, modes=(GenerationMode.POSITIVE, GenerationMode.NEGATIVE))

    # The success answers too, with real ids: place, read and hang up a real call.
    schema = schemathesis.openapi.from_dict(openapi_document(api.base_url))
    ops = {(op.method.upper(), op.path): op for op in (r.ok() for r in schema.get_all_operations())}
    placed = check(api, ops["POST", "/api/webrtc/call"].Case(body={"to": VALID_NUMBER}))
    assert placed.status_code == 201, placed.content
    call_id = placed.json()["call"]["id"]
    detail = check(
        api, ops["GET", "/api/webrtc/call/{call_id}"].Case(path_parameters={"call_id": call_id})
    )
    assert detail.status_code == 200
    recording = ops["POST", "/api/webrtc/call/{call_id}/recording"]
    toggled = check(
        api, recording.Case(path_parameters={"call_id": call_id}, body={"recording": True})
    )
    assert toggled.status_code == 409 and toggled.json()["code"] == "recording_disabled"
    hangup = ops["POST", "/api/webrtc/call/{call_id}/hangup"]
    assert check(api, hangup.Case(path_parameters={"call_id": call_id})).status_code == 200
    # Numbers random strings never hit: other countries, premium rate, not E.164, spaced.
    new_call = ops["POST", "/api/webrtc/call"]
    for to, status in [
        ("+14165550199", 201),
        (" +12025550143 ", 201),
        ("+442071838750", 403),
        ("+19005550123", 403),
        ("+11005550143", 400),
        ("12025550143", 400),
    ]:
        assert check(api, new_call.Case(body={"to": to})).status_code == status, to
    assert check(api, ops["POST", "/api/webrtc/credential"].Case()).status_code == 201
    assert check(api, ops["GET", "/api/webrtc/status"].Case()).status_code == 200
    assert 500 not in api.seen
