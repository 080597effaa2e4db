"""Small helpers shared by the sandbox tests."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (clients only read it)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def parse_time(text: str) -> datetime:
    """Timestamps the sandbox writes: ISO-8601 with Z."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def assert_error(body: Any, *, code: str, pointer: str | None = None) -> dict[str, Any]:
    """Check the Telnyx error shape and return the first error object."""
    assert isinstance(body, dict) and set(body) == {"errors"}
    assert isinstance(body["errors"], list) and body["errors"]
    for err in body["errors"]:
        assert {"code", "title", "detail"} <= set(err)
        assert all(isinstance(err[k], str) and err[k] for k in ("code", "title", "detail"))
    first = body["errors"][0]
    assert first["code"] == code, body
    if pointer is not None:
        assert first["source"]["pointer"] == pointer, body
    return first
