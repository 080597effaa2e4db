"""Operator commands to a supervisor, queued on its ``Keys.control(sid)`` list.

Wire shape: ``{"id": <hex>, "cmd": "restart" | "reset" | "scale", "n": <int, scale
only>, "user_id": <int | null>, "at": <epoch ms>}``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from telephony.protocol._codec import decode_fields, load_mapping, malformed, to_json

RESTART, RESET, SCALE = "restart", "reset", "scale"
COMMANDS = (RESTART, RESET, SCALE)


@dataclass(frozen=True)
class ControlCommand:
    """One command for one supervisor; ``id`` ties it to its audit ``ServiceEvent``."""

    cmd: str
    at: int  # epoch ms
    id: str = ""
    user_id: int | None = None
    n: int | None = None  # scale only: workers wanted per supervisor

    def __post_init__(self) -> None:
        if self.cmd not in COMMANDS:
            raise malformed("control_command", f"unknown command {self.cmd!r}")
        if self.cmd == SCALE and (self.n is None or self.n < 0):
            raise malformed("control_command", "scale needs n >= 0")

    @classmethod
    def new(cls, cmd: str, *, user_id: int | None, at: int, n: int | None = None) -> ControlCommand:
        """A command with a fresh id."""
        return cls(cmd=cmd, at=at, id=uuid.uuid4().hex, user_id=user_id, n=n)

    def args(self) -> dict[str, Any]:
        """The command's own arguments (for logs and the audit event)."""
        return {"n": self.n} if self.cmd == SCALE else {}

    def encode(self) -> str:
        data = {"id": self.id, "cmd": self.cmd, **self.args(), "user_id": self.user_id}
        return to_json({**data, "at": self.at})

    @classmethod
    def decode(cls, raw: Any) -> ControlCommand:
        """A command from Redis (JSON) or a dict; ``InvalidRequest`` if malformed."""
        return cls(**decode_fields(cls, load_mapping(raw, "control_command"), "control_command"))
