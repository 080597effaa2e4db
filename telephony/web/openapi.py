"""The OpenAPI 3.1 description of /api/webrtc/, served at /api/webrtc/openapi.json.

Written by hand, next to the views it describes, and checked by schemathesis in the
tests: every documented status, body and header is what the views really answer.
"""

from __future__ import annotations

from typing import Any

from telephony.models import CallStatus
from telephony.web.openapi_common import (
    CALL_ID,
    ERROR_CODES,
    ERRORS,
    json_content,
    op,
    ref,
    wrapped,
)
from telephony.web.openapi_recordings import RECORDING_SCHEMAS, recording_paths

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
    "NewCall": {
        "type": "object",
        "required": ["to"],
        "additionalProperties": False,
        "properties": {
            "to": {"type": "string", "description": "E.164, e.g. +12025550143.", "maxLength": 32}
        },
    },
}


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
                        "200": {
                            "description": "Available.",
                            "content": json_content(ref("Status")),
                        },
                        "503": {
                            "description": "Not available: starting, unavailable, failed, stopped.",
                            "content": json_content(ref("Status")),
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
                "post": op(
                    "A WebRTC login token for the logged-in user (on their seat)",
                    ("201", "Created.", wrapped("credential", "Credential")),
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
                "post": op(
                    "Place a call",
                    ("201", "Queued; the agent's browser is rung.", wrapped("call", "Call")),
                    ["400", "409", *post_errors],
                    requestBody={"required": True, "content": json_content(ref("NewCall"))},
                )
            },
            "/api/webrtc/call/{call_id}": {
                "get": op(
                    "One of your calls",
                    ("200", "The call.", wrapped("call", "Call")),
                    ["401", "404", "405", "500"],
                    parameters=[CALL_ID],
                    security=[{"session": []}],  # a GET needs no CSRF token
                )
            },
            "/api/webrtc/call/{call_id}/hangup": {
                "post": op(
                    "Hang up one of your calls",
                    ("200", "The call, ended (both legs).", wrapped("call", "Call")),
                    ["404", *post_errors],
                    parameters=[CALL_ID],
                )
            },
            **recording_paths(post_errors),
            "/api/webrtc/openapi.json": {
                "get": op(
                    "This document",
                    ("200", "OpenAPI 3.1.", {"type": "object"}),
                    ["405"],
                    secure=False,
                )
            },
        },
        "components": {
            "schemas": {**SCHEMAS, **RECORDING_SCHEMAS},
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "sessionid"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRFToken"},
            },
        },
    }
