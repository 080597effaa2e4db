"""Credential connections through the official SDK."""

from __future__ import annotations

import httpx
import pytest
import telnyx

from devserver.sandbox.control import SandboxProcess

from .helpers import assert_error

pytestmark = pytest.mark.timeout(30)


def test_connections__seeded_connection_is_listed_and_retrievable(
    sdk: telnyx.Telnyx, sandbox: SandboxProcess
) -> None:
    page = sdk.credential_connections.list()
    assert [c.id for c in page.data] == [sandbox.connection_id]
    assert page.to_dict()["meta"] == {
        "page_number": 1,
        "page_size": 250,
        "total_pages": 1,
        "total_results": 1,
    }
    conn = sdk.credential_connections.retrieve(sandbox.connection_id).data
    assert conn is not None
    assert conn.record_type == "credential_connection"
    assert conn.active is True
    assert conn.user_name and conn.connection_name


def test_connections__create_filter_sort_delete(
    sdk: telnyx.Telnyx, sandbox: SandboxProcess
) -> None:
    made = sdk.credential_connections.create(
        connection_name="Support Desk",
        user_name="support01",
        password="s3cret-pass",
        sip_uri_calling_preference="internal",
        inbound={"channel_limit": 4},
        outbound={"outbound_voice_profile_id": "1293384261075731499"},
        tags=["crm"],
    ).data
    assert made is not None and made.id
    assert made.id.isdigit()
    assert made.connection_name == "Support Desk"
    assert made.sip_uri_calling_preference == "internal"
    # Unset fields carry the schema's defaults; nested objects merge with them.
    assert made.dtmf_type == "RFC 2833"
    assert made.inbound is not None and made.inbound.channel_limit == 4
    assert made.inbound.dnis_number_format == "e164"
    assert made.webhook_api_version == "1"

    def ids(**kw: object) -> list[str | None]:
        return [c.id for c in sdk.credential_connections.list(**kw).data]  # type: ignore[arg-type]

    assert ids(filter={"connection_name": {"contains": "desk"}}) == [made.id]
    assert ids(filter={"outbound_voice_profile_id": "1293384261075731499"}) == [made.id]
    assert ids(sort="connection_name") == [made.id, sandbox.connection_id]
    assert ids(sort="-connection_name") == [sandbox.connection_id, made.id]
    assert ids() == [made.id, sandbox.connection_id]  # default: newest first
    second = sdk.credential_connections.list(page_number=2, page_size=1)
    assert [c.id for c in second.data] == [sandbox.connection_id]

    deleted = sdk.credential_connections.delete(made.id).data
    assert deleted is not None and deleted.id == made.id
    with pytest.raises(telnyx.NotFoundError) as err:
        sdk.credential_connections.retrieve(made.id)
    assert_error(err.value.body, code="10005")
    with pytest.raises(telnyx.NotFoundError):
        sdk.credential_connections.delete(made.id)


def test_connections__validation(api: httpx.Client, sandbox: SandboxProcess) -> None:
    good = {"connection_name": "c", "user_name": "agent123", "password": "password1"}
    cases = [
        ({k: v for k, v in good.items() if k != "user_name"}, "/user_name"),
        ({**good, "sip_uri_calling_preference": "everyone"}, "/sip_uri_calling_preference"),
        ({**good, "inbound": {"channel_limit": "four"}}, "/inbound/channel_limit"),
        ({**good, "webhook_timeout_secs": 31}, "/webhook_timeout_secs"),
        ({**good, "user_name": "ab"}, "/user_name"),
        ({**good, "password": "short"}, "/password"),
        ({**good, "user_name": "x" * 40}, "/user_name"),
    ]
    for body, pointer in cases:
        resp = api.post("/credential_connections", json=body)
        assert resp.status_code == 422, body
        assert_error(resp.json(), code="10015", pointer=pointer)
    assert api.post("/credential_connections", json=good).status_code == 201
    dup = api.post("/credential_connections", json=good)
    assert dup.status_code == 422
    assert_error(dup.json(), code="10015", pointer="/user_name")

    for params in (
        {"sort": "name"},
        {"page[size]": "300"},
        {"filter[connection_name][contains]": "ab"},
    ):
        resp = api.get("/credential_connections", params=params)
        assert resp.status_code == 400, params
        assert_error(resp.json(), code="10015")
