"""The OpenAPI 3.1 description of /api/webrtc/, served at /api/webrtc/openapi.json.

Written by hand, next to the views it describes, and checked by schemathesis in the
tests: every documented status, body and header is what the views really answer.
"""

from __future__ import annotations

from typing import Any

from telephony.models import CallStatus

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


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _error(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": _json(_ref("Error"))}
    if retry_after:
        response["headers"] = {
            "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "string"}}
        }
    return response


ERRORS: dict[str, dict[str, Any]] = {
    "400": _error("Invalid request or number (`invalid_request`, `invalid_number`)."),
    "401": _error("Not logged in (`not_authenticated`)."),
    "403": _error("CSRF check failed (`forbidden`) or destination not allowed."),
    "404": _error("No such call for this user (`not_found`)."),
    "405": _error("Method not allowed (`method_not_allowed`)."),
    "409": _error(
        "No WebRTC login to ring (`no_credential`): get one from /api/webrtc/credential "
        "first; or every telephony seat is held by an agent who is online (`seat_limit`): "
        "try again when one of them leaves; or, for recording, the call is not in progress "
        "(`call_not_answered`) or TELEPHONY_RECORDING is not `on_demand` "
        "(`recording_disabled`)."
    ),
    "416": _error("The range lies past the end of the file (`range_not_satisfiable`)."),
    "429": _error("Too many requests (`rate_limited`).", retry_after=True),
    "500": _error("Unexpected failure (`internal_error`)."),
    "502": _error("Telnyx failed (`provider_error`)."),
    "503": _error("Telephony unavailable (`service_unavailable`).", retry_after=True),
    "504": _error("No worker answered in time (`worker_timeout`)."),
}

AUDIO_TYPES = ("audio/mpeg", "audio/wav")

CALL_ID = {
    "name": "call_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "code"],
        "properties": {
            "error": {"type": "string", "description": "For people."},
            "code": {"type": "string", "enum": ERROR_CODES, "description": "For machines."},
        },
    },
    "Status": {
        "type": "object",
        "required": ["status", "healthy", "timestamp", "workers"],
        "properties": {
            "status": {
                "type": "string",
                "enum": ["starting", "ready", "degraded", "unavailable", "failed", "stopped"],
            },
            "healthy": {"type": "boolean", "description": "True when ready or degraded."},
            "timestamp": {"type": "integer", "description": "Epoch milliseconds."},
            "workers": {
                "type": "object",
                "required": ["alive", "desired"],
                "properties": {
                    "alive": {"type": "integer", "minimum": 0},
                    "desired": {"type": "integer", "minimum": 0},
                },
            },
        },
    },
    "Credential": {
        "type": "object",
        "required": ["token", "sip_username", "expires_at"],
        "properties": {
            "token": {"type": "string", "description": "JWT for the Telnyx WebRTC SDK login."},
            "sip_username": {"type": "string"},
            "expires_at": {
                "type": "string",
                "format": "date-time",
                "description": "When the token expires; refresh a little before.",
            },
        },
    },
    "Call": {
        "type": "object",
        "required": ["id", "status", "to", "created_at"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "status": {"type": "string", "enum": list(CallStatus.values)},
            "to": {"type": "string", "description": "E.164."},
            "from": {"type": ["string", "null"]},
            "created_at": {"type": "string", "format": "date-time"},
            "answered_at": {"type": ["string", "null"], "format": "date-time"},
            "ended_at": {"type": ["string", "null"], "format": "date-time"},
            "duration_seconds": {"type": ["integer", "null"], "minimum": 0},
            "hangup_cause": {"type": ["string", "null"]},
            "error_code": {"type": ["string", "null"]},
            "ringing_at": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "When the customer leg was dialled (the agent had answered).",
            },
            "time_to_answer_seconds": {
                "type": ["number", "null"],
                "minimum": 0,
                "description": "From the customer leg being dialled to the customer answering.",
            },
            "hangup_side": {
                "type": ["string", "null"],
                "enum": ["agent", "customer", "system", None],
                "description": "Who ended the call; `system` for timeouts and failures.",
            },
            "recording": {
                "type": "boolean",
                "description": "Telnyx is recording this call now (`TELEPHONY_RECORDING`).",
            },
        },
        "description": (
            "Two legs: `dialing` rings the agent's browser, `ringing` the customer, "
            "`answered` is the customer picking up. `duration_seconds` is talk time."
        ),
    },
    "RecordingSwitch": {
        "type": "object",
        "required": ["recording"],
        "additionalProperties": False,
        "properties": {
            "recording": {"type": "boolean", "description": "true: start; false: stop."}
        },
    },
    "NewCall": {
        "type": "object",
        "required": ["to"],
        "additionalProperties": False,
        "properties": {
            "to": {"type": "string", "description": "E.164, e.g. +12025550143.", "maxLength": 32}
        },
    },
}


def _op(
    summary: str,
    ok: tuple[str, str, dict[str, Any]],
    errors: list[str],
    *,
    secure: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    status, description, schema = ok
    responses = {status: {"description": description, "content": _json(schema)}}
    responses.update({code: ERRORS[code] for code in errors})
    op: dict[str, Any] = {"summary": summary, "responses": responses, **extra}
    if not secure:
        op["security"] = []
    return op


def _audio_op() -> dict[str, Any]:
    """The recording player's source: audio bytes, whole or one range, never cached."""
    headers = {
        name: {"description": description, "schema": {"type": "string"}}
        for name, description in (
            ("Accept-Ranges", "bytes"),
            ("Cache-Control", "private, no-store"),
            ("Content-Length", "Bytes in this answer."),
        )
    }
    audio = {kind: {"schema": {"type": "string", "format": "binary"}} for kind in AUDIO_TYPES}
    ranged = {**headers, "Content-Range": {"schema": {"type": "string"}, "required": True}}
    return {
        "summary": (
            "A stored call recording (needs the permission telephony.listen_recording); "
            "every listen, a request from byte 0, is logged"
        ),
        "parameters": [
            {**CALL_ID, "name": "recording_id"},
            {"name": "Range", "in": "header", "required": False, "schema": {"type": "string"}},
        ],
        "security": [{"session": []}],
        "responses": {
            "200": {"description": "The whole file.", "content": audio, "headers": headers},
            "206": {"description": "The range asked for.", "content": audio, "headers": ranged},
            "401": ERRORS["401"],
            "403": _error("No permission to listen to recordings (`forbidden`)."),
            "404": _error("No such stored recording (`not_found`)."),
            "405": ERRORS["405"],
            "416": ERRORS["416"],
            "500": ERRORS["500"],
        },
    }


def _wrapped(key: str, schema: str) -> dict[str, Any]:
    return {"type": "object", "required": [key], "properties": {key: _ref(schema)}}


def openapi_document(server_url: str = "/") -> dict[str, Any]:
    """The whole document (the server URL is the site's root)."""
    post_errors = ["401", "403", "405", "429", "500", "502", "503", "504"]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Telephony API",
            "version": "1.0.0",
            "description": (
                "Browser calling through Telnyx, served by isolated telephony workers. "
                "Session authentication; every POST needs the CSRF token from the "
                "`csrftoken` cookie in the `X-CSRFToken` header. Errors are always "
                '`{"error", "code"}`.'
            ),
        },
        "servers": [{"url": server_url.rstrip("/") or "/"}],
        "security": [{"session": [], "csrf": []}],
        "paths": {
            "/api/webrtc/status": {
                "get": {
                    "summary": "Service state (from the cached state, never a worker round trip)",
                    "security": [],
                    "responses": {
                        "200": {"description": "Available.", "content": _json(_ref("Status"))},
                        "503": {
                            "description": "Not available: starting, unavailable, failed, stopped.",
                            "content": _json(_ref("Status")),
                            "headers": {
                                "Retry-After": {
                                    "description": "Seconds to wait.",
                                    "schema": {"type": "string"},
                                }
                            },
                        },
                        "405": ERRORS["405"],
                    },
                }
            },
            "/api/webrtc/credential": {
                "post": _op(
                    "A WebRTC login token for the logged-in user (on their seat)",
                    ("201", "Created.", _wrapped("credential", "Credential")),
                    [*post_errors, "409"],
                )
            },
            "/api/webrtc/presence": {
                "post": {
                    "summary": (
                        "The page is open: keeps the user's telephony seat while its "
                        "WebSocket is down (send every 20 s)"
                    ),
                    "responses": {
                        "204": {
                            "description": "Recorded.",
                            "headers": {
                                "Cache-Control": {
                                    "description": "no-store",
                                    "schema": {"type": "string"},
                                }
                            },
                        },
                        **{code: ERRORS[code] for code in ("401", "403", "405", "500", "503")},
                    },
                }
            },
            "/api/webrtc/call": {
                "post": _op(
                    "Place a call",
                    ("201", "Queued; the agent's browser is rung.", _wrapped("call", "Call")),
                    ["400", "409", *post_errors],
                    requestBody={"required": True, "content": _json(_ref("NewCall"))},
                )
            },
            "/api/webrtc/call/{call_id}": {
                "get": _op(
                    "One of your calls",
                    ("200", "The call.", _wrapped("call", "Call")),
                    ["401", "404", "405", "500"],
                    parameters=[CALL_ID],
                    security=[{"session": []}],  # a GET needs no CSRF token
                )
            },
            "/api/webrtc/call/{call_id}/hangup": {
                "post": _op(
                    "Hang up one of your calls",
                    ("200", "The call, ended (both legs).", _wrapped("call", "Call")),
                    ["404", *post_errors],
                    parameters=[CALL_ID],
                )
            },
            "/api/webrtc/call/{call_id}/recording": {
                "post": _op(
                    "Start or stop recording one of your calls (TELEPHONY_RECORDING=on_demand)",
                    (
                        "200",
                        "The call; `recording` says whether it is recorded now. Idempotent.",
                        _wrapped("call", "Call"),
                    ),
                    ["400", "404", *post_errors, "409"],
                    parameters=[CALL_ID],
                    requestBody={"required": True, "content": _json(_ref("RecordingSwitch"))},
                )
            },
            "/api/webrtc/recordings/{recording_id}/audio": {"get": _audio_op()},
            "/api/webrtc/openapi.json": {
                "get": _op(
                    "This document",
                    ("200", "OpenAPI 3.1.", {"type": "object"}),
                    ["405"],
                    secure=False,
                )
            },
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "sessionid"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRFToken"},
            },
        },
    }
