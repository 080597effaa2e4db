"""Every adapter operation against Prism mocking Telnyx's own OpenAPI document.

Prism checks each request (path, method, bearer key, query, body) against the spec and
reports violations in the ``sl-violations`` header; with ``--errors`` it also answers
them with an error. It answers valid requests with the spec's examples, so the adapter
parsing them into its dataclasses proves our parsing matches the spec's response
shapes. Prism does not flag query parameters the spec does not know, so those are
checked here. The adapter exposes no raw responses: an httpx event hook on its client
records each exchange.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest

from telephony import exceptions as exc
from telephony.legs import Leg, agent_sip_uri, decode_client_state, encode_client_state
from telephony.worker.adapter import (
    CallInfo,
    CredentialInfo,
    DialResult,
    RequestContext,
    TelnyxAdapter,
)
from telephony.worker.breaker import CircuitBreaker
from tests.contract.conftest import Spec
from tests.contract.prism import START_TIMEOUT, PrismServer

# The first test may have to install Prism (npm) before it starts.
pytestmark = [pytest.mark.contract, pytest.mark.timeout(START_TIMEOUT + 120)]

T = TypeVar("T")
API_KEY = "KEY0123456789ABCDEF_contract"
CREDENTIAL_ID = "c215ade3-0d39-418e-94be-c5f780760199"
CALL_CONTROL_ID = "v3:MdI91X4lWFEs7IgbBEOT9M4AigoY08M0WWZFISt1Yw2axZ_IiE4pqg"
CALL_ID = uuid.UUID("0b1f6a52-3c1e-4d7e-9a55-2f8e9d0c1a77")


@dataclass
class Exchange:
    """One HTTP request the adapter made and Prism's answer."""

    method: str
    path: str
    query: list[tuple[str, str]]
    request_body: bytes
    status: int
    content_type: str
    violations: list[dict[str, Any]]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Recorder:
    """httpx event hooks: record every exchange; optionally ask Prism for a status."""

    prefer_code: int | None = None
    prefer_example: str | None = None  # one of the spec's named examples for that code
    exchanges: list[Exchange] = field(default_factory=list)

    async def on_request(self, request: httpx.Request) -> None:
        if self.prefer_code is not None:
            example = f", example={self.prefer_example}" if self.prefer_example else ""
            request.headers["Prefer"] = f"code={self.prefer_code}{example}"

    async def on_response(self, response: httpx.Response) -> None:
        await response.aread()
        raw = response.headers.get("sl-violations")
        request = response.request
        self.exchanges.append(
            Exchange(
                method=request.method,
                path=request.url.path,
                query=list(request.url.params.multi_items()),
                request_body=request.content,
                status=response.status_code,
                content_type=response.headers.get("content-type", ""),
                violations=json.loads(raw) if raw else [],
                body=response.content,
            )
        )

    async def call(self, spec: Spec, op_id: str, pending: Awaitable[T]) -> tuple[T, Exchange]:
        """Await an adapter operation; its result and its one exchange, checked."""
        try:
            result = await pending
        except exc.TelephonyError as e:  # e.g. Prism refusing a request that breaks the spec
            problems = [p for ex in self.exchanges for p in contract_problems(spec, op_id, ex)]
            pytest.fail("\n".join([f"{op_id}: the adapter raised {e!r}", *problems]))
        return result, self.only(spec, op_id)

    def only(self, spec: Spec, op_id: str) -> Exchange:
        """The single exchange of an operation, after checking it against the spec."""
        assert len(self.exchanges) == 1, [(e.method, e.path) for e in self.exchanges]
        ex = self.exchanges[0]
        problems = contract_problems(spec, op_id, ex)
        assert not problems, "\n".join(problems)
        return ex


def contract_problems(spec: Spec, op_id: str, ex: Exchange) -> list[str]:
    """What is wrong with one request by the spec: Prism's violations, path, query keys."""
    where = f"{op_id} {ex.method} {ex.path}"
    method, template = spec.operations[op_id]
    pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
    problems = []
    if ex.method != method or not re.match(pattern, ex.path):
        problems.append(f"{where}: expected {method} {template}")
    for v in ex.violations:
        location = ".".join(str(part) for part in v.get("location", []))
        problems.append(f"{where}: Prism {v.get('severity')}: {location}: {v.get('message')}")
    unknown = sorted({key for key, _ in ex.query} - spec.query_names(op_id))
    if unknown:
        problems.append(f"{where}: query parameters the spec does not declare: {unknown}")
    return problems


def ctx() -> RequestContext:
    return RequestContext(request_id=str(uuid.uuid4()), deadline=datetime.now(UTC).timestamp() + 10)


def when(text: str | None) -> datetime | None:
    """What the adapter must make of a spec timestamp: aware, UTC when it has no offset."""
    if not text:
        return None
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def adapter(prism: PrismServer, recorder: Recorder) -> AsyncIterator[TelnyxAdapter]:
    # One attempt per operation, so each test sees exactly one exchange; the recorder
    # sees every request and response through the httpx client's hooks.
    http = httpx.AsyncClient(
        event_hooks={"request": [recorder.on_request], "response": [recorder.on_response]}
    )
    adapter = TelnyxAdapter(
        api_key=API_KEY,
        base_url=prism.url,
        breaker=CircuitBreaker(),
        max_attempts=1,
        http_client=http,
    )
    try:
        yield adapter
    finally:
        await adapter.aclose()


async def test_adapter__create_credential__matches_spec(
    adapter: TelnyxAdapter, recorder: Recorder, spec: Spec
) -> None:
    expires = datetime.now(UTC) + timedelta(hours=1)
    info, ex = await recorder.call(
        spec,
        "CreateTelephonyCredential",
        adapter.create_credential(
            ctx(),
            connection_id="1234567890",
            name="contract",
            tag="contract-tag",
            expires_at=expires,
        ),
    )
    assert ex.status == 201
    sent = json.loads(ex.request_body)
    assert sent == {
        "connection_id": "1234567890",
        "name": "contract",
        "tag": "contract-tag",
        "expires_at": expires.isoformat(),
    }
    data = ex.json()["data"]
    assert info == CredentialInfo(
        id=data["id"],
        sip_username=data["sip_username"],
        name=data.get("name") or "",
        tag=data.get("tag") or "",
        expires_at=when(data.get("expires_at")),
        created_at=when(data.get("created_at")),
        expired=data["expired"],
    )


async def test_adapter__credential_timestamps_are_aware_for_the_specs_examples(
    adapter: TelnyxAdapter, recorder: Recorder, spec: Spec
) -> None:
    # The spec's examples write credential timestamps without an offset
    # ("2042-06-18T21:32:38"); callers compare them with an aware now().
    (items, _), ex = await recorder.call(
        spec,
        "FindTelephonyCredentials",
        adapter.list_credentials(ctx(), tag=None, page_number=1, page_size=10),
    )
    stamps = {
        f"{item.id}.{name}": getattr(item, name)
        for item in items
        for name in ("expires_at", "created_at")
    }
    naive = {key: str(value) for key, value in stamps.items() if value and value.tzinfo is None}
    assert not naive, f"naive datetimes from {ex.method} {ex.path}: {naive}"


async def test_adapter__create_token__matches_spec(
    adapter: TelnyxAdapter, recorder: Recorder, spec: Spec
) -> None:
    token, ex = await recorder.call(
        spec, "CreateTelephonyCredentialToken", adapter.create_token(ctx(), CREDENTIAL_ID)
    )
    assert ex.status == 201
    assert ex.content_type.split(";")[0] == "text/plain"
    assert token == ex.body.decode().strip()
    # The spec's example is a real JWT: check its parts decode, not only the dot count.
    header, claims = (
        json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in token.split(".")[:2]
    )
    assert header["typ"] == "JWT"
    assert {"exp", "sub"} <= claims.keys()


async def test_adapter__list_credentials__matches_spec(
    adapter: TelnyxAdapter, recorder: Recorder, spec: Spec
) -> None:
    (items, pages), ex = await recorder.call(
        spec,
        "FindTelephonyCredentials",
        adapter.list_credentials(ctx(), tag="contract-tag", page_number=2, page_size=25),
    )
    assert ex.status == 200
    assert sorted(ex.query) == [
        ("filter[tag]", "contract-tag"),
        ("page[number]", "2"),
        ("page[size]", "25"),
    ]
    body = ex.json()
    assert [item.id for item in items] == [item["id"] for item in body["data"]]
    assert [item.sip_username for item in items] == [item["sip_username"] for item in body["data"]]
    assert pages == body["meta"]["total_pages"]


async def test_adapter__delete_credential__matches_spec(
    adapter: TelnyxAdapter, recorder: Recorder, spec: Spec
) -> None:
    deleted, ex = await recorder.call(
        spec, "DeleteTelephonyCredential", adapter.delete_credential(ctx(), CREDENTIAL_ID)
    )
    assert deleted is True
    assert ex.status == 200


async def test_adapter__dial__matches_spec(
    adapter: TelnyxAdapter, recorder: Recorder, spec: Spec
) -> None:
    result, ex = await recorder.call(
        spec,
        "DialCall",
        adapter.dial(
            ctx(),
            connection_id="1234567890",
            to="+15551230001",
            from_="+15557650002",
            client_state=encode_client_state(CALL_ID, Leg.AGENT),
            webhook_url="https://example.com/api/webrtc/webhooks/telnyx",
            timeout_secs=15,
        ),
    )
    assert ex.status == 200
    sent = json.loads(ex.request_body)
    assert decode_client_state(sent["client_state"]) == (CALL_ID, Leg.AGENT)
    assert base64.b64decode(sent["client_state"], validate=True)  # base64, as Telnyx requires
    assert sent["webhook_url"] == "https://example.com/api/webrtc/webhooks/telnyx"
    assert sent["timeout_secs"] == 15
    assert "link_to" not in sent and "bridge_on_answer" not in sent
    data = ex.json()["data"]
    assert result == DialResult(
        call_control_id=data["call_control_id"],
        call_session_id=data["call_session_id"],
        call_leg_id=data["call_leg_id"],
    )


async def test_adapter__dial_customer_leg_linked_and_bridged_on_answer__matches_spec(
    adapter: TelnyxAdapter, recorder: Recorder, spec: Spec
) -> None:
    _, ex = await recorder.call(
        spec,
        "DialCall",
        adapter.dial(
            ctx(),
            connection_id="1234567890",
            to="+15551230001",
            from_="+15557650002",
            client_state=encode_client_state(CALL_ID, Leg.CUSTOMER),
            link_to=CALL_CONTROL_ID,
            bridge_on_answer=True,
        ),
    )
    assert ex.status == 200
    sent = json.loads(ex.request_body)
    assert (sent["link_to"], sent["bridge_on_answer"]) == (CALL_CONTROL_ID, True)
    assert decode_client_state(sent["client_state"]) == (CALL_ID, Leg.CUSTOMER)
    assert "timeout_secs" not in sent  # Telnyx's default ring time for the customer


async def test_adapter__dial_to_the_agents_sip_uri__matches_spec(
    adapter: TelnyxAdapter, recorder: Recorder, spec: Spec
) -> None:
    _, ex = await recorder.call(
        spec,
        "DialCall",
        adapter.dial(
            ctx(),
            connection_id="1234567890",
            to=agent_sip_uri("gencredabc"),
            from_="+15557650002",
            client_state=encode_client_state(CALL_ID, Leg.AGENT),
            timeout_secs=2,  # clamped to the spec's minimum
        ),
    )
    sent = json.loads(ex.request_body)
    assert (sent["to"], sent["timeout_secs"]) == ("sip:gencredabc@sip.telnyx.com", 5)


async def test_adapter__hangup_of_an_ended_call_is_not_an_error(
    adapter: TelnyxAdapter, recorder: Recorder, spec: Spec
) -> None:
    """The spec's 422 example ``call_already_ended`` (90018): the leg is down, as wanted."""

    recorder.prefer_code, recorder.prefer_example = 422, "call_already_ended"
    hung_up, ex = await recorder.call(spec, "HangupCall", adapter.hangup(ctx(), CALL_CONTROL_ID))
    assert hung_up is False
    assert ex.status == 422 and ex.json()["errors"][0]["code"] == "90018"


async def test_adapter__call_status__matches_spec(
    adapter: TelnyxAdapter, recorder: Recorder, spec: Spec
) -> None:
    info, ex = await recorder.call(
        spec, "RetrieveCallStatus", adapter.call_status(ctx(), CALL_CONTROL_ID)
    )
    assert ex.status == 200
    data = ex.json()["data"]
    assert info == CallInfo(
        call_control_id=CALL_CONTROL_ID,
        is_alive=data["is_alive"],
        call_duration=data.get("call_duration"),
    )


async def test_adapter__hangup__matches_spec(
    adapter: TelnyxAdapter, recorder: Recorder, spec: Spec
) -> None:
    context = ctx()
    hung_up, ex = await recorder.call(
        spec, "HangupCall", adapter.hangup(context, CALL_CONTROL_ID, command_id="rid:customer")
    )
    assert ex.status == 200 and hung_up is True
    assert json.loads(ex.request_body) == {"command_id": "rid:customer"}


async def test_adapter__dial_that_records_from_answer__matches_spec(
    adapter: TelnyxAdapter, recorder: Recorder, spec: Spec
) -> None:
    record = {"record": "record-from-answer", "record_channels": "dual", "record_format": "wav"}
    _, ex = await recorder.call(
        spec,
        "DialCall",
        adapter.dial(
            ctx(),
            connection_id="1234567890",
            to="+15551230001",
            from_="+15557650002",
            client_state=encode_client_state(CALL_ID, Leg.CUSTOMER),
            link_to=CALL_CONTROL_ID,
            bridge_on_answer=True,
            record=record,
        ),
    )
    sent = json.loads(ex.request_body)
    assert {key: sent[key] for key in record} == record


async def test_adapter__start_recording__matches_spec(
    adapter: TelnyxAdapter, recorder: Recorder, spec: Spec
) -> None:
    _, ex = await recorder.call(
        spec,
        "StartCallRecord",
        adapter.start_recording(
            ctx(), CALL_CONTROL_ID, fmt="mp3", channels="dual", play_beep=True, command_id="c:rec"
        ),
    )
    assert ex.status == 200
    assert json.loads(ex.request_body) == {
        "channels": "dual",
        "format": "mp3",
        "play_beep": True,
        "command_id": "c:rec",
    }


async def test_adapter__stop_recording__matches_spec(
    adapter: TelnyxAdapter, recorder: Recorder, spec: Spec
) -> None:
    _, ex = await recorder.call(
        spec, "StopCallRecording", adapter.stop_recording(ctx(), CALL_CONTROL_ID, command_id="s")
    )
    assert ex.status == 200 and json.loads(ex.request_body) == {"command_id": "s"}


OPERATIONS: dict[str, tuple[str, Callable[[TelnyxAdapter], Awaitable[Any]]]] = {
    "create_credential": (
        "CreateTelephonyCredential",
        lambda a: a.create_credential(
            ctx(),
            connection_id="1234567890",
            name="n",
            tag="t",
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        ),
    ),
    "create_token": ("CreateTelephonyCredentialToken", lambda a: a.create_token(ctx(), "c1")),
    "list_credentials": (
        "FindTelephonyCredentials",
        lambda a: a.list_credentials(ctx(), tag=None, page_number=1, page_size=10),
    ),
    "delete_credential": ("DeleteTelephonyCredential", lambda a: a.delete_credential(ctx(), "c1")),
    "dial": (
        "DialCall",
        lambda a: a.dial(
            ctx(), connection_id="1", to="+15551230001", from_="+15557650002", client_state="s"
        ),
    ),
    "call_status": ("RetrieveCallStatus", lambda a: a.call_status(ctx(), CALL_CONTROL_ID)),
    "hangup": ("HangupCall", lambda a: a.hangup(ctx(), CALL_CONTROL_ID)),
}


@pytest.mark.parametrize(
    ("operation", "status", "error", "reason"),
    [
        ("create_credential", 422, exc.ProviderRejected, "http_422"),
        ("create_token", 404, exc.ProviderRejected, "provider_not_found"),
        ("list_credentials", 401, exc.ProviderRejected, "provider_auth"),
        ("list_credentials", 400, exc.ProviderRejected, "http_400"),
        ("delete_credential", 401, exc.ProviderRejected, "provider_auth"),
        ("dial", 400, exc.ProviderRejected, "http_400"),
        ("dial", 422, exc.ProviderRejected, "http_422"),
        ("dial", 500, exc.ProviderUnavailable, "http_500"),
        ("dial", 503, exc.ProviderUnavailable, "http_503"),
        ("call_status", 422, exc.ProviderRejected, "http_422"),
        ("hangup", 422, exc.ProviderRejected, "http_422"),
    ],
)
async def test_adapter__maps_the_specs_error_answers(
    adapter: TelnyxAdapter,
    recorder: Recorder,
    spec: Spec,
    operation: str,
    status: int,
    error: type[exc.TelephonyError],
    reason: str,
) -> None:
    op_id, run = OPERATIONS[operation]
    recorder.prefer_code = status  # Prism answers that declared status with its example
    with pytest.raises(error) as info:
        await run(adapter)
    assert type(info.value) is error
    assert info.value.reason == reason
    ex = recorder.only(spec, op_id)
    assert ex.status == status


async def test_adapter__delete_credential__treats_the_specs_404_as_already_gone(
    adapter: TelnyxAdapter, recorder: Recorder, spec: Spec
) -> None:
    recorder.prefer_code = 404
    deleted, ex = await recorder.call(
        spec, "DeleteTelephonyCredential", adapter.delete_credential(ctx(), CREDENTIAL_ID)
    )
    assert deleted is False
    assert ex.status == 404
