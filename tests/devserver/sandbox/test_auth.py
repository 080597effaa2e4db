"""Bearer-key authentication and the Telnyx error body for unknown routes."""

from __future__ import annotations

import httpx
import pytest
import telnyx

from devserver.sandbox.control import SandboxProcess

from .helpers import assert_error

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer WRONG"},
        {"Authorization": "Basic KEYSANDBOX_LOCAL"},
        {"Authorization": "Bearer"},
    ],
    ids=["missing", "wrong-key", "wrong-scheme", "empty"],
)
def test_auth__rejected_with_401(sandbox: SandboxProcess, headers: dict[str, str]) -> None:
    resp = httpx.post(f"{sandbox.base_url}/telephony_credentials", headers=headers, json={})
    assert resp.status_code == 401
    assert resp.headers["content-type"].startswith("application/json")
    first = assert_error(resp.json(), code="10009")
    assert first["title"] == "Authentication failed"
    entry = sandbox.log()[-1]
    assert (entry["status"], entry["executed"]) == (401, False)


def test_auth__sdk_raises_authentication_error(sandbox: SandboxProcess) -> None:
    with telnyx.Telnyx(api_key="KEY_WRONG", base_url=sandbox.base_url, max_retries=0) as sdk:
        with pytest.raises(telnyx.AuthenticationError) as err:
            sdk.credential_connections.list()
    assert err.value.status_code == 401


def test_auth__key_is_case_sensitive_scheme_is_not(sandbox: SandboxProcess) -> None:
    url = f"{sandbox.base_url}/credential_connections"
    assert httpx.get(url, headers={"Authorization": f"bearer {sandbox.api_key}"}).status_code == 200
    assert (
        httpx.get(url, headers={"Authorization": f"Bearer {sandbox.api_key.lower()}"}).status_code
        == 401
    )


def test_unknown_route_and_method(api: httpx.Client) -> None:
    missing = api.get("/phone_numbers")
    assert missing.status_code == 404
    assert_error(missing.json(), code="10005")
    wrong_method = api.put("/calls")
    assert wrong_method.status_code == 405
    assert_error(wrong_method.json(), code="10015")
