"""The building blocks of the OpenAPI document (``telephony.web.openapi``): the error
answers every operation shares, and small helpers to write operations with."""

from __future__ import annotations

from typing import Any

ERROR_CODES = [
    "invalid_request",
    "invalid_number",
    "not_authenticated",
    "forbidden",
    "destination_not_allowed",
    "not_found",
    "no_credential",
    "method_not_allowed",
    "seat_limit",
    "call_not_answered",
    "recording_disabled",
    "range_not_satisfiable",
    "rate_limited",
    "internal_error",
    "provider_error",
    "service_unavailable",
    "worker_timeout",
]


def ref(name: str) -> dict[str, str]:
    """A reference to one of the document's schemas."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON body of ``schema`` (a request's or an answer's ``content``)."""
    return {"application/json": {"schema": schema}}


def error(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    """An error answer: ``{"error", "code"}``, with ``Retry-After`` where it is sent."""
    response: dict[str, Any] = {"description": description, "content": json_content(ref("Error"))}
    if retry_after:
        response["headers"] = {
            "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "string"}}
        }
    return response


ERRORS: dict[str, dict[str, Any]] = {
    "400": error("Invalid request or number (`invalid_request`, `invalid_number`)."),
    "401": error("Not logged in (`not_authenticated`)."),
    "403": error("CSRF check failed (`forbidden`) or destination not allowed."),
    "404": error("No such call for this user (`not_found`)."),
    "405": error("Method not allowed (`method_not_allowed`)."),
    "409": error(
        "No WebRTC login to ring (`no_credential`): get one from /api/webrtc/credential "
        "first; or every telephony seat is held by an agent who is online (`seat_limit`): "
        "try again when one of them leaves; or, for recording, the call is not in progress "
        "(`call_not_answered`) or TELEPHONY_RECORDING is not `on_demand` "
        "(`recording_disabled`)."
    ),
    "416": error("The range lies past the end of the file (`range_not_satisfiable`)."),
    "429": error("Too many requests (`rate_limited`).", retry_after=True),
    "500": error("Unexpected failure (`internal_error`)."),
    "502": error("Telnyx failed (`provider_error`)."),
    "503": error("Telephony unavailable (`service_unavailable`).", retry_after=True),
    "504": error("No worker answered in time (`worker_timeout`)."),
}

CALL_ID = {
    "name": "call_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}


def op(
    summary: str,
    ok: tuple[str, str, dict[str, Any]],
    errors: list[str],
    *,
    secure: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """One operation: its success answer (status, description, schema) and its errors."""
    status, description, schema = ok
    responses = {status: {"description": description, "content": json_content(schema)}}
    responses.update({code: ERRORS[code] for code in errors})
    operation: dict[str, Any] = {"summary": summary, "responses": responses, **extra}
    if not secure:
        operation["security"] = []
    return operation


def wrapped(key: str, schema: str) -> dict[str, Any]:
    """An object holding one schema under ``key`` (``{"call": {...}}``)."""
    return {"type": "object", "required": [key], "properties": {key: ref(schema)}}
