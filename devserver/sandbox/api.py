"""Handlers for the credential and connection operations, and the request helpers.

Each handler parses and validates its input the way Telnyx documents it, changes the
store, and marks the request *executed* (for the request log) only once the operation
has really happened. Failures are raised as :class:`ApiError`; the server turns them
into Telnyx-shaped responses.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime
from typing import Any

from aiohttp import web

from devserver.sandbox import errors, spec, tokens
from devserver.sandbox.store import Connection, Credential, Store, paginate, parse_iso

EXECUTED = web.RequestKey("sandbox.executed", bool)
CALL_CONTROL = {
    "DialCall",
    "RetrieveCallStatus",
    "HangupCall",
    "StartCallRecord",
    "StopCallRecording",
    "PauseCallRecording",
    "ResumeCallRecording",
}
USER_NAME = re.compile(r"^[A-Za-z0-9]{4,32}$")
CONNECTION_SORTS = {"created_at", "connection_name", "active"}


def reply(request: web.Request, data: Any, *, status: int = 200, **extra: Any) -> web.Response:
    """A successful JSON answer; marks the request as executed."""
    request[EXECUTED] = True
    return web.json_response({"data": data, **extra}, status=status)


async def body(request: web.Request, operation: str) -> dict[str, Any]:
    """The JSON body, checked against the operation's request schema."""
    raw = await request.read()
    if not raw.strip():
        value: Any = {}
    else:
        try:
            value = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            position = getattr(e, "pos", getattr(e, "start", 0))
            raise errors.bad_json(position, call_control=operation in CALL_CONTROL) from None
    schema = spec.request_schema(operation)
    if schema is not None:
        family = "connections" if operation.endswith("CredentialConnection") else "telnyx"
        violations = spec.validate(value, schema)
        if violations:
            raise errors.from_violations(violations, family=family)
    if not isinstance(value, dict):
        raise errors.invalid("/", "The request body must be a JSON object.")
    return value


def client_state(data: dict[str, Any]) -> str | None:
    """The body's ``client_state``, which must be Base-64 (422 otherwise)."""
    value = data.get("client_state")
    if value is not None:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            detail = "client_state must be a valid Base-64 encoded string."
            raise errors.invalid("/client_state", detail) from None
    return value


def page(request: web.Request, *, default_size: int) -> tuple[int, int]:
    """``page[number]`` and ``page[size]`` (plain ``page_number``/``page_size`` too)."""
    q = request.query
    out = []
    for key, alt, default, high in (
        ("page[number]", "page_number", 1, None),
        ("page[size]", "page_size", default_size, 250),
    ):
        text = q.get(key, q.get(alt))
        if text is None:
            out.append(default)
            continue
        try:
            value = int(text)
        except ValueError:
            raise errors.bad_query(key, f"{key} must be an integer.") from None
        if value < 1 or (high is not None and value > high):
            limits = f"between 1 and {high}" if high else "at least 1"
            raise errors.bad_query(key, f"{key} must be {limits}.")
        out.append(value)
    return out[0], out[1]


def filters(request: web.Request) -> dict[str, str]:
    """``filter[a]=x`` and ``filter[a][b]=y`` as ``{"a": "x", "a.b": "y"}``."""
    out = {}
    for key, value in request.query.items():
        if key.startswith("filter[") and key.endswith("]"):
            out[key[len("filter[") : -1].replace("][", ".")] = value
    return out


class Api:
    """The credential and connection handlers, bound to one store (calls are in calls.py)."""

    def __init__(self, store: Store, *, credential_limit: int, token_secret: bytes) -> None:
        self.store = store
        self.credential_limit = credential_limit
        self.token_secret = token_secret

    # ------------------------------------------------------------ telephony credentials

    def _credential(self, request: web.Request) -> Credential:
        cred = self.store.credentials.get(request.match_info["id"])
        if cred is None:
            raise errors.not_found()
        return cred

    def _connection_ref(self, value: str) -> str:
        if value not in self.store.connections:
            detail = "The requested parameter is invalid as the associated resource does not exist."
            code, title = "10017", "Associated resource does not exist"
            raise errors.invalid("/connection_id", detail, code=code, title=title)
        return value

    @staticmethod
    def _expiry(data: dict[str, Any]) -> datetime | None:
        try:
            return parse_iso(data["expires_at"]) if data.get("expires_at") else None
        except ValueError:
            detail = "expires_at must be an ISO-8601 formatted date."
            raise errors.invalid("/expires_at", detail) from None

    async def find_credentials(self, request: web.Request) -> web.Response:
        """FindTelephonyCredentials: filtered, paginated list."""
        number, size = page(request, default_size=50)
        items, meta = paginate(
            self.store.credential_filter(filters(request)), number=number, size=size
        )
        now = self.store.clock()
        return reply(request, [c.render(now) for c in items], meta=meta)

    async def create_credential(self, request: web.Request) -> web.Response:
        """CreateTelephonyCredential, refused past the account's credential limit."""
        data = await body(request, "CreateTelephonyCredential")
        connection_id = self._connection_ref(data["connection_id"])
        expires_at = self._expiry(data)
        if len(self.store.credentials) >= self.credential_limit:
            raise errors.credential_limit(self.credential_limit)
        cred = self.store.credential_create(
            connection_id=connection_id,
            name=data.get("name"),
            tag=data.get("tag"),
            expires_at=expires_at,
        )
        return reply(request, cred.render(self.store.clock()), status=201)

    async def get_credential(self, request: web.Request) -> web.Response:
        """GetTelephonyCredential."""
        return reply(request, self._credential(request).render(self.store.clock()))

    async def update_credential(self, request: web.Request) -> web.Response:
        """UpdateTelephonyCredential; expired credentials are terminal and refuse it."""
        cred = self._credential(request)
        data = await body(request, "UpdateTelephonyCredential")
        now = self.store.clock()
        if cred.expired(now):
            raise errors.expired_credential("update")
        if "connection_id" in data:
            cred.connection_id = self._connection_ref(data["connection_id"])
        if "expires_at" in data:
            cred.expires_at = self._expiry(data)
        for key in ("name", "tag"):
            if key in data:
                setattr(cred, key, data[key])
        cred.updated_at = now
        return reply(request, cred.render(now))

    async def delete_credential(self, request: web.Request) -> web.Response:
        """DeleteTelephonyCredential: answers with the deleted record."""
        cred = self._credential(request)
        del self.store.credentials[cred.id]
        return reply(request, cred.render(self.store.clock()))

    async def create_token(self, request: web.Request) -> web.Response:
        """CreateTelephonyCredentialToken: a ``text/plain`` JWT, never for an expired one."""
        cred = self._credential(request)
        now = self.store.clock()
        if cred.expired(now):
            raise errors.expired_credential("create tokens for")
        token = tokens.mint(
            secret=self.token_secret, subject=cred.id, now=now, expires_at=cred.expires_at
        )
        request[EXECUTED] = True
        return web.Response(text=token, status=201, content_type="text/plain")

    # ------------------------------------------------------------ credential connections

    async def list_connections(self, request: web.Request) -> web.Response:
        """ListCredentialConnections: filters, sort (``-`` for descending), pages."""
        number, size = page(request, default_size=250)
        f = filters(request)
        items = list(self.store.connections.values())
        if "connection_name.contains" in f:
            needle = f["connection_name.contains"].lower()
            if len(needle) < 3:
                raise errors.bad_query(
                    "filter[connection_name][contains]", "Requires at least three characters."
                )
            items = [c for c in items if needle in str(c.fields.get("connection_name", "")).lower()]
        profile = f.get("outbound.outbound_voice_profile_id", f.get("outbound_voice_profile_id"))
        if profile is not None:
            items = [
                c
                for c in items
                if (c.fields.get("outbound") or {}).get("outbound_voice_profile_id") == profile
            ]
        if "fqdn" in f:
            items = []  # credential connections have no FQDN
        sort = request.query.get("sort")
        if sort is not None and sort.lstrip("-") not in CONNECTION_SORTS:
            raise errors.bad_query(
                "sort", f"sort must be one of: {', '.join(sorted(CONNECTION_SORTS))}."
            )
        key, descending = (sort.lstrip("-"), sort.startswith("-")) if sort else ("created_at", True)
        items.sort(key=lambda c: str(c.render()[key]), reverse=descending)
        chunk, meta = paginate(items, number=number, size=size)
        return reply(request, [c.render() for c in chunk], meta=meta)

    async def create_connection(self, request: web.Request) -> web.Response:
        """CreateCredentialConnection, with the user name and password rules Telnyx states."""
        data = await body(request, "CreateCredentialConnection")
        user_name, password = data["user_name"], data["password"]
        if not USER_NAME.match(user_name) or not any(ch.isalpha() for ch in user_name[:5]):
            detail = "user_name must be 4-32 alphanumeric characters, a letter among the first 5."
            raise errors.invalid("/user_name", detail)
        if self.store.user_name_taken(user_name):
            raise errors.invalid("/user_name", "user_name has already been taken.")
        if not 8 <= len(password) <= 128:
            raise errors.invalid("/password", "password must be 8 to 128 characters long.")
        conn = self.store.connection_create(data)
        return reply(request, conn.render(), status=201)

    def _connection(self, request: web.Request) -> Connection:
        conn = self.store.connections.get(request.match_info["id"])
        if conn is None:
            raise errors.not_found()
        return conn

    async def retrieve_connection(self, request: web.Request) -> web.Response:
        """RetrieveCredentialConnection."""
        return reply(request, self._connection(request).render())

    async def delete_connection(self, request: web.Request) -> web.Response:
        """DeleteCredentialConnection: answers with the deleted record."""
        conn = self._connection(request)
        del self.store.connections[conn.id]
        return reply(request, conn.render())
