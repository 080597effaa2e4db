"""The recording operations of the OpenAPI document (``telephony.web.openapi``): the
on-demand toggle and the recording audio that the admin's player plays."""

from __future__ import annotations

from typing import Any

from telephony.web.openapi_common import CALL_ID, ERRORS, error, json_content, op, ref, wrapped

AUDIO_TYPES = ("audio/mpeg", "audio/wav")

RECORDING_SCHEMAS: dict[str, Any] = {
    "RecordingSwitch": {
        "type": "object",
        "required": ["recording"],
        "additionalProperties": False,
        "properties": {
            "recording": {"type": "boolean", "description": "true: start; false: stop."}
        },
    },
}


def audio_op() -> dict[str, Any]:
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
            "403": error("No permission to listen to recordings (`forbidden`)."),
            "404": error("No such stored recording (`not_found`)."),
            "405": ERRORS["405"],
            "416": ERRORS["416"],
            "500": ERRORS["500"],
        },
    }


def recording_paths(post_errors: list[str]) -> dict[str, Any]:
    """The two paths, keyed as in the document's ``paths``."""
    return {
        "/api/webrtc/call/{call_id}/recording": {
            "post": op(
                "Start or stop recording one of your calls (TELEPHONY_RECORDING=on_demand)",
                (
                    "200",
                    "The call; `recording` says whether it is recorded now. Idempotent.",
                    wrapped("call", "Call"),
                ),
                ["400", "404", *post_errors, "409"],
                parameters=[CALL_ID],
                requestBody={"required": True, "content": json_content(ref("RecordingSwitch"))},
            )
        },
        "/api/webrtc/recordings/{recording_id}/audio": {"get": audio_op()},
    }
