"""The sandbox's in-memory account: credential connections, credentials and calls.

One event loop owns it and no method awaits, so every change is atomic with respect to
other requests. The clock is injected so expiry can be tested without sleeping.
Records render themselves in the exact shapes of the OpenAPI schemas
(``TelephonyCredential``, ``CredentialConnection``, ``Call``).
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from devserver.sandbox import spec

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The default clock: aware UTC now."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """ISO-8601 with milliseconds and ``Z``, as Telnyx writes timestamps."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def parse_iso(text: str) -> datetime:
    """Parse an ISO-8601 timestamp; naive ones are UTC. Raises ValueError."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def numeric_id() -> str:
    """A 19-digit id like Telnyx's int64 connection ids."""
    return str(10**18 + secrets.randbelow(9 * 10**18))


@dataclass
class Connection:
    """A credential connection (the SIP login WebRTC credentials hang off)."""

    id: str
    fields: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    def render(self) -> dict[str, Any]:
        """The ``CredentialConnection`` schema: its defaults overlaid with what was set."""
        data = spec.defaults(spec.schema("CredentialConnection"))
        for key, value in self.fields.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        data.setdefault("tags", [])
        data.update(
            id=self.id,
            record_type="credential_connection",
            created_at=iso(self.created_at),
            updated_at=iso(self.updated_at),
        )
        return dict(sorted(data.items()))


@dataclass
class Credential:
    """An on-demand telephony credential (``TelephonyCredential``)."""

    id: str
    connection_id: str
    name: str
    tag: str | None
    expires_at: datetime | None
    sip_username: str
    sip_password: str
    user_id: str
    created_at: datetime
    updated_at: datetime

    def expired(self, now: datetime) -> bool:
        """True once ``expires_at`` has passed: a terminal state."""
        return self.expires_at is not None and self.expires_at <= now

    def render(self, now: datetime) -> dict[str, Any]:
        """The ``TelephonyCredential`` schema (``expires_at`` only when it has one)."""
        data = {
            "id": self.id,
            "record_type": "credential",
            "name": self.name,
            "expired": self.expired(now),
            "resource_id": f"connection:{self.connection_id}",
            "sip_username": self.sip_username,
            "sip_password": self.sip_password,
            "user_id": self.user_id,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }
        if self.expires_at is not None:
            data["expires_at"] = iso(self.expires_at)
        return data


@dataclass
class Call:
    """One outbound call leg placed with Dial, and where its lifecycle has got to."""

    call_control_id: str
    call_leg_id: str
    call_session_id: str
    connection_id: str
    to: str
    from_: str
    client_state: str | None
    webhook_url: str | None
    webhook_urls: dict[str, str]
    command_id: str | None
    start_time: datetime
    state: str = "initiated"  # initiated -> answered -> hangup
    end_time: datetime | None = None
    answer_time: datetime | None = None
    hangup_cause: str | None = None
    hangup_source: str | None = None
    hangup_commands: set[str] = field(default_factory=set)
    link_to: str | None = None  # Dial's link_to, bridge_on_answer, park_after_unbridge
    bridge_on_answer: bool = False
    park_after_unbridge: str | None = None
    timeout_secs: int = 30
    outcome: str | None = None  # injected: "busy" or "no_answer"
    media_stop_after: float | None = None  # injected, seconds after answer
    drop_after: float | None = None  # injected, seconds after answer
    bridged_with: str | None = None
    recording_id: str | None = None  # Dial's record-from-answer recording

    @property
    def is_alive(self) -> bool:
        """Alive from dial until hangup."""
        return self.end_time is None

    def render(self, now: datetime) -> dict[str, Any]:
        """The ``Call`` schema (``end_time`` only once the call is over)."""
        end = self.end_time or now
        data: dict[str, Any] = {
            "record_type": "call",
            "call_control_id": self.call_control_id,
            "call_leg_id": self.call_leg_id,
            "call_session_id": self.call_session_id,
            "is_alive": self.is_alive,
            "call_duration": int((end - self.start_time).total_seconds()),
            "start_time": iso(self.start_time),
        }
        if self.client_state is not None:
            data["client_state"] = self.client_state
        if self.end_time is not None:
            data["end_time"] = iso(self.end_time)
        return data

    def end(self, now: datetime, *, cause: str, source: str) -> None:
        """Hang the call up (once; later calls keep the first cause)."""
        if self.end_time is None:
            self.end_time, self.state = now, "hangup"
            self.hangup_cause, self.hangup_source = cause, source


@dataclass(frozen=True)
class Seed:
    """The fixed ids the sandbox starts with, printed in the ready line."""

    connection_id: str
    call_connection_id: str
    from_number: str
    user_name: str
    password: str

    @classmethod
    def generate(
        cls,
        from_number: str = "+15550001111",
        *,
        connection_id: str | None = None,
        call_connection_id: str | None = None,
    ) -> Seed:
        """Fresh ids for one sandbox process (stable across resets).

        Given ids are kept: a sandbox restarted by ``serve`` must keep the connection ids
        the workers were started with.
        """
        return cls(
            connection_id=connection_id or numeric_id(),
            call_connection_id=call_connection_id or numeric_id(),
            from_number=from_number,
            user_name=f"sandbox{secrets.token_hex(4)}",
            password=secrets.token_urlsafe(18),
        )


class Store:
    """All sandbox state, with the account-level rules Telnyx enforces."""

    def __init__(self, seed: Seed, *, clock: Clock = utcnow) -> None:
        self.seed = seed
        self.real_clock = clock
        self.offset = timedelta(0)
        self.user_id = str(uuid.uuid4())
        self.connections: dict[str, Connection] = {}
        self.credentials: dict[str, Credential] = {}
        self.calls: dict[str, Call] = {}
        self.call_apps: set[str] = set()
        self.reset()

    def clock(self) -> datetime:
        """Now, as this store sees it: the real clock moved by ``offset``."""
        return self.real_clock() + self.offset

    def reset(self) -> None:
        """Forget everything and seed the start-up connections again, with the same ids."""
        self.offset = timedelta(0)
        self.connections.clear()
        self.credentials.clear()
        self.calls.clear()
        self.call_apps = {self.seed.call_connection_id}
        now = self.clock()
        fields = {
            "connection_name": "sandbox-credential-connection",
            "user_name": self.seed.user_name,
            "password": self.seed.password,
            "active": True,
        }
        self.connections[self.seed.connection_id] = Connection(
            self.seed.connection_id, fields, now, now
        )

    # ----------------------------------------------------------------- connections

    def connection_create(self, fields: dict[str, Any]) -> Connection:
        """Store a new credential connection."""
        now = self.clock()
        conn = Connection(numeric_id(), dict(fields), now, now)
        self.connections[conn.id] = conn
        return conn

    def user_name_taken(self, user_name: str) -> bool:
        """Connection user names are unique, like SIP logins must be."""
        return any(c.fields.get("user_name") == user_name for c in self.connections.values())

    # ----------------------------------------------------------------- credentials

    def credential_create(
        self, *, connection_id: str, name: str | None, tag: str | None, expires_at: datetime | None
    ) -> Credential:
        """Mint a credential with a ``gencred...`` SIP username and a random password."""
        now = self.clock()
        cred = Credential(
            id=str(uuid.uuid4()),
            connection_id=connection_id,
            name=name if name is not None else now.strftime("%Y-%m-%d %H:%M:%S.%fZ"),
            tag=tag,
            expires_at=expires_at,
            sip_username="gencred" + secrets.token_urlsafe(17).replace("-", "x").replace("_", "y"),
            sip_password=secrets.token_hex(16),
            user_id=self.user_id,
            created_at=now,
            updated_at=now,
        )
        self.credentials[cred.id] = cred
        return cred

    def credential_filter(self, filters: dict[str, str]) -> list[Credential]:
        """Credentials matching ``filter[...]`` values, oldest first."""
        now = self.clock()
        out = []
        for cred in self.credentials.values():
            status = "expired" if cred.expired(now) else "active"
            checks = {
                "tag": cred.tag,
                "name": cred.name,
                "status": status,
                "resource_id": f"connection:{cred.connection_id}",
                "sip_username": cred.sip_username,
            }
            if all(checks[k] == v for k, v in filters.items() if k in checks):
                out.append(cred)
        return sorted(out, key=lambda c: c.created_at)

    # ----------------------------------------------------------------------- calls

    def call_create(self, **kw: Any) -> Call:
        """Register a dialled call; ids look like Telnyx's (``v3:...`` control ids)."""
        token = base64.urlsafe_b64encode(secrets.token_bytes(39)).decode().rstrip("=")
        call = Call(
            call_control_id=f"v3:{token}",
            call_leg_id=str(uuid.uuid4()),
            call_session_id=str(uuid.uuid4()),
            start_time=self.clock(),
            **kw,
        )
        self.calls[call.call_control_id] = call
        return call

    def call_by_command(self, command_id: str) -> Call | None:
        """The call an earlier Dial with this ``command_id`` created, if any."""
        for call in self.calls.values():
            if call.command_id == command_id:
                return call
        return None


def paginate(items: list[Any], *, number: int, size: int) -> tuple[list[Any], dict[str, int]]:
    """One page plus the ``PaginationMeta`` object describing it."""
    total = len(items)
    meta = {
        "page_number": number,
        "page_size": size,
        "total_pages": (total + size - 1) // size,
        "total_results": total,
    }
    start = (number - 1) * size
    return items[start : start + size], meta
