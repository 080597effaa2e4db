"""Telephony credentials and access tokens through the official SDK."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import telnyx

from devserver.sandbox.control import SandboxProcess

from .helpers import assert_error, jwt_claims, parse_time

pytestmark = pytest.mark.timeout(30)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_credentials__create_retrieve_update_delete(
    sdk: telnyx.Telnyx, sandbox: SandboxProcess
) -> None:
    expires = datetime.now(UTC) + timedelta(days=2)
    created = sdk.telephony_credentials.create(
        connection_id=sandbox.connection_id, name="agent-1", tag="team-a", expires_at=iso(expires)
    ).data
    assert created.record_type == "credential"
    assert created.name == "agent-1"
    assert created.expired is False
    assert created.resource_id == f"connection:{sandbox.connection_id}"
    assert created.sip_username and created.sip_username.startswith("gencred")
    assert created.sip_password and len(created.sip_password) >= 16
    assert abs(parse_time(created.expires_at or "") - expires) < timedelta(seconds=1)
    for stamp in (created.created_at, created.updated_at):
        assert parse_time(stamp or "") <= datetime.now(UTC)

    got = sdk.telephony_credentials.retrieve(created.id or "").data
    assert got == created

    updated = sdk.telephony_credentials.update(created.id or "", name="agent-2", tag="team-b").data
    assert updated.name == "agent-2"
    assert updated.sip_username == created.sip_username
    assert [c.id for c in sdk.telephony_credentials.list(filter={"tag": "team-b"})] == [created.id]

    deleted = sdk.telephony_credentials.delete(created.id or "").data
    assert deleted.id == created.id
    with pytest.raises(telnyx.NotFoundError) as err:
        sdk.telephony_credentials.retrieve(created.id or "")
    assert_error(err.value.body, code="10005")


def test_credentials__list_filters_and_pagination(
    sdk: telnyx.Telnyx, sandbox: SandboxProcess
) -> None:
    conn = sandbox.connection_id
    made = [
        sdk.telephony_credentials.create(
            connection_id=conn, name=f"n{i}", tag="even" if i % 2 == 0 else "odd"
        ).data
        for i in range(4)
    ]
    past = iso(datetime.now(UTC) - timedelta(minutes=1))
    old = sdk.telephony_credentials.create(connection_id=conn, name="old", expires_at=past).data
    assert old.expired is True

    def ids(**kw: object) -> list[str | None]:
        return [c.id for c in sdk.telephony_credentials.list(**kw)]  # type: ignore[arg-type]

    assert ids(filter={"tag": "even"}) == [made[0].id, made[2].id]
    assert ids(filter={"name": "n3"}) == [made[3].id]
    assert ids(filter={"status": "expired"}) == [old.id]
    assert len(ids(filter={"status": "active"})) == 4
    assert ids(filter={"sip_username": made[1].sip_username}) == [made[1].id]
    assert len(ids(filter={"resource_id": f"connection:{conn}"})) == 5
    assert ids(filter={"resource_id": "connection:1"}) == []
    assert ids(filter={"tag": "odd", "name": "n1"}) == [made[1].id]

    page = sdk.telephony_credentials.list(page_number=2, page_size=2)
    assert [c.id for c in page.data] == [made[2].id, made[3].id]
    assert page.meta is not None
    assert (page.meta.page_number, page.meta.total_pages) == (2, 3)
    assert page.to_dict()["meta"] == {
        "page_number": 2,
        "page_size": 2,
        "total_pages": 3,
        "total_results": 5,
    }
    # Auto-pagination walks every page with page[number].
    assert ids(page_size=2) == [*(c.id for c in made), old.id]


def test_credentials__list_query_params(api: httpx.Client, sandbox: SandboxProcess) -> None:
    resp = api.get("/telephony_credentials", params={"page_number": 1, "page_size": 5})
    assert resp.status_code == 200
    assert resp.json() == {
        "data": [],
        "meta": {"page_number": 1, "page_size": 5, "total_pages": 0, "total_results": 0},
    }
    assert api.get("/telephony_credentials").json()["meta"]["page_size"] == 50
    for params in ({"page[size]": "251"}, {"page[size]": "0"}, {"page[number]": "x"}):
        bad = api.get("/telephony_credentials", params=params)
        assert bad.status_code == 400
        err = assert_error(bad.json(), code="10015")
        assert err["source"]["parameter"] in ("page[size]", "page[number]")


def test_token__is_a_jwt_valid_at_most_24h(sdk: telnyx.Telnyx, sandbox: SandboxProcess) -> None:
    cred = sdk.telephony_credentials.create(connection_id=sandbox.connection_id).data
    raw = sdk.telephony_credentials.with_raw_response.create_token(cred.id or "")
    assert raw.http_response.status_code == 201
    assert raw.headers["content-type"].startswith("text/plain")
    token = raw.parse()
    assert isinstance(token, str) and token.count(".") == 2
    claims = jwt_claims(token)
    now = time.time()
    assert now - 5 <= claims["iat"] <= now + 5
    assert now + 24 * 3600 - 60 <= claims["exp"] <= now + 24 * 3600 + 5
    assert claims["sub"] == cred.id
    assert claims["typ"] == "access"
    assert sdk.telephony_credentials.create_token(cred.id or "") != token


def test_token__never_outlives_the_credential(sdk: telnyx.Telnyx, sandbox: SandboxProcess) -> None:
    expires = datetime.now(UTC) + timedelta(hours=2)
    cred = sdk.telephony_credentials.create(
        connection_id=sandbox.connection_id, expires_at=iso(expires)
    ).data
    claims = jwt_claims(sdk.telephony_credentials.create_token(cred.id or ""))
    assert claims["exp"] <= expires.timestamp() + 1
    assert claims["exp"] >= expires.timestamp() - 2


def test_token__expired_credential_is_refused(sdk: telnyx.Telnyx, sandbox: SandboxProcess) -> None:
    past = iso(datetime.now(UTC) - timedelta(seconds=1))
    cred = sdk.telephony_credentials.create(
        connection_id=sandbox.connection_id, expires_at=past
    ).data
    with pytest.raises(telnyx.UnprocessableEntityError) as err:
        sdk.telephony_credentials.create_token(cred.id or "")
    assert "expired" in assert_error(err.value.body, code="10015")["detail"]
    with pytest.raises(telnyx.UnprocessableEntityError):
        sdk.telephony_credentials.update(cred.id or "", name="again")
    # Expired is terminal, but it can still be deleted.
    assert sdk.telephony_credentials.delete(cred.id or "").data.id == cred.id


def test_token__unknown_credential_is_404(sdk: telnyx.Telnyx) -> None:
    with pytest.raises(telnyx.NotFoundError) as err:
        sdk.telephony_credentials.create_token("0b1e5d0e-0000-4000-8000-000000000000")
    assert_error(err.value.body, code="10005")


def test_credentials__account_limit(sdk: telnyx.Telnyx, sandbox: SandboxProcess) -> None:
    made = [
        sdk.telephony_credentials.create(connection_id=sandbox.connection_id).data for _ in range(5)
    ]
    with pytest.raises(telnyx.PermissionDeniedError) as err:
        sdk.telephony_credentials.create(connection_id=sandbox.connection_id)
    assert err.value.status_code == 403
    first = assert_error(err.value.body, code="10039")
    assert first["title"] == "Account Level Limit Reached"
    assert len(list(sdk.telephony_credentials.list())) == 5
    sdk.telephony_credentials.delete(made[0].id or "")
    assert sdk.telephony_credentials.create(connection_id=sandbox.connection_id).data.id


def test_credentials__validation(api: httpx.Client, sandbox: SandboxProcess) -> None:
    missing = api.post("/telephony_credentials", json={"name": "x"})
    assert missing.status_code == 422
    assert_error(missing.json(), code="10004", pointer="/connection_id")

    wrong_type = api.post(
        "/telephony_credentials", json={"connection_id": sandbox.connection_id, "name": 5}
    )
    assert wrong_type.status_code == 422
    assert_error(wrong_type.json(), code="10015", pointer="/name")

    unknown = api.post("/telephony_credentials", json={"connection_id": "123"})
    assert unknown.status_code == 422
    assert_error(unknown.json(), code="10017", pointer="/connection_id")

    bad_date = api.post(
        "/telephony_credentials",
        json={"connection_id": sandbox.connection_id, "expires_at": "soon"},
    )
    assert bad_date.status_code == 422
    assert_error(bad_date.json(), code="10015", pointer="/expires_at")

    bad_json = api.post(
        "/telephony_credentials", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert bad_json.status_code == 400
    assert_error(bad_json.json(), code="10015")

    not_object = api.post("/telephony_credentials", json=["connection_id"])
    assert not_object.status_code == 422
    assert api.get("/telephony_credentials").json()["data"] == []


async def test_credentials__async_sdk(sandbox: SandboxProcess) -> None:
    async with telnyx.AsyncTelnyx(
        api_key=sandbox.api_key, base_url=sandbox.base_url, max_retries=0
    ) as sdk:
        cred = (
            await sdk.telephony_credentials.create(connection_id=sandbox.connection_id, tag="async")
        ).data
        token = await sdk.telephony_credentials.create_token(cred.id or "")
        listed = [c.id async for c in sdk.telephony_credentials.list(filter={"tag": "async"})]
    assert listed == [cred.id]
    assert jwt_claims(token)["sub"] == cred.id
