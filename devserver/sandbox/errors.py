"""Telnyx-shaped errors: ``{"errors": [{"code", "title", "detail", "source", "meta"}]}``.

Every failure the sandbox answers goes through :class:`ApiError`, so clients meet the
same status codes, error codes and body shape as with the real API. Codes and titles
come from the OpenAPI examples (``UnauthenticatedResponse``, ``connections_*Response``,
``UnprocessableEntityResponse``, ...) and Telnyx's published error list.

The credential limit: Telnyx documents error ``10039`` ("A limit for this feature has
been reached at this account level", HTTP 403, developers.telnyx.com/api/errors/10039),
and accounts hitting the telephony-credential cap report the message "Account Level
Limit Reached". The sandbox answers 403 with code ``"10039"``, that title and the
documented detail. The status and code are sourced; the pairing with that title is
inferred from user reports, not from a captured response.
"""

from __future__ import annotations

from typing import Any

from devserver.sandbox.spec import Violation

DOCS = "https://developers.telnyx.com/docs/overview/errors/"


class ApiError(Exception):
    """A Telnyx error response: HTTP status plus one or more error objects."""

    def __init__(self, status: int, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{status} {errors[0].get('title') if errors else ''}")
        self.status = status
        self.errors = errors

    def body(self) -> dict[str, Any]:
        """The JSON body Telnyx would send."""
        return {"errors": self.errors}


def error(
    code: str,
    title: str,
    detail: str,
    *,
    pointer: str | None = None,
    parameter: str | None = None,
) -> dict[str, Any]:
    """One error object, with the docs link Telnyx puts in ``meta.url``."""
    item: dict[str, Any] = {"code": code, "title": title, "detail": detail}
    if pointer is not None:
        item["source"] = {"pointer": pointer or "/"}
    elif parameter is not None:
        item["source"] = {"parameter": parameter}
    item["meta"] = {"url": f"{DOCS}{code}"}
    return item


def unauthenticated() -> ApiError:
    """401: missing or wrong bearer key."""
    detail = "Could not understand the provided credentials."
    return ApiError(401, [error("10009", "Authentication failed", detail)])


def not_found() -> ApiError:
    """404 for an unknown id or URL."""
    detail = "The requested resource or URL could not be found."
    return ApiError(404, [error("10005", "Resource not found", detail, pointer="/")])


def method_not_allowed() -> ApiError:
    """405 for a known path with the wrong method."""
    detail = "The request method is not supported for the requested resource."
    return ApiError(405, [error("10015", "Bad Request", detail)])


def bad_json(position: int, *, call_control: bool) -> ApiError:
    """400 for a body that is not JSON (call control words it as an encoding error)."""
    if call_control:
        detail = f"Error decoding request body at position {position}"
        return ApiError(400, [error("10028", "Character encoding error", detail)])
    detail = "The request failed because it was not well-formed."
    return ApiError(400, [error("10015", "Bad Request", detail, pointer="/")])


def bad_query(parameter: str, detail: str) -> ApiError:
    """400 for an invalid query parameter (page size, sort, filters)."""
    return ApiError(400, [error("10015", "Bad Request", detail, parameter=parameter)])


def invalid(
    pointer: str, detail: str, *, code: str = "10015", title: str = "Bad Request"
) -> ApiError:
    """422 for one semantically invalid field."""
    return ApiError(422, [error(code, title, detail, pointer=pointer)])


_CALL_CONTROL_CODES = {
    "missing": ("10004", "Missing required parameter"),
    "enum": ("10032", "Invalid enumerated value"),
    "range": ("10033", "Value outside of range"),
}


def from_violations(violations: list[Violation], *, family: str) -> ApiError:
    """422 listing schema violations, coded the way that API family codes them.

    ``connections`` answers every field error as ``10015 Bad Request`` (its spec
    example); call control and credentials use the finer codes of call control's
    ``UnprocessableEntityResponse`` examples.
    """
    errors = []
    for v in violations[:10]:
        code, title = ("10015", "Bad Request")
        if family != "connections":
            code, title = _CALL_CONTROL_CODES.get(v.kind, (code, title))
        errors.append(error(code, title, v.detail, pointer=v.pointer))
    return ApiError(422, errors)


def credential_limit(limit: int) -> ApiError:
    """403: the account already holds its maximum number of telephony credentials."""
    detail = (
        "A limit for this feature has been reached at this account level. "
        "See https://telnyx.com/upgrade for options."
    )
    item = error("10039", "Account Level Limit Reached", detail)
    item["meta"]["limit"] = limit
    return ApiError(403, [item])


def expired_credential(action: str) -> ApiError:
    """422 for changing or using a credential that has expired (a terminal state)."""
    detail = f"can't {action} credentials in expired status"
    return ApiError(422, [error("10015", "Bad Request", detail, pointer="/status")])


def call_ended() -> ApiError:
    """422 for a command sent to a call that is over."""
    detail = "This call is no longer active and can't receive commands."
    return ApiError(422, [error("90018", "Call has already ended", detail)])


def internal() -> ApiError:
    """500 for a bug in the sandbox itself (logged with its traceback)."""
    return ApiError(500, [error("10007", "Internal server error", "Internal server error")])


def fault(status: int) -> ApiError:
    """The error an injected fault answers with: 429, 500 or 503 (or any other status)."""
    if status == 429:
        detail = "You have exceeded the maximum number of allowed requests."
        return ApiError(429, [error("10011", "Too many requests", detail)])
    if status == 503:
        return ApiError(503, [error("10007", "Service unavailable", "Service unavailable")])
    if status == 500:
        return internal()
    return ApiError(status, [error("10007", "Unexpected error", "An unexpected error occured.")])
