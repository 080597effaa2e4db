"""Fault injection: make chosen operations slow, failing, hanging or garbled.

Rules are keyed by operationId (``DialCall``) or ``*`` for every operation. When both
match a request, the operation's rule wins field by field and the ``*`` rule fills in
what it leaves unset, so ``--latency-ms 200 --fault DialCall:status=503,rate=0.5``
gives every operation 200 ms and Dial a 50 % chance of 503 on top.

The command-line syntax and every key are described in ``SYNTAX`` below (it is the
``--help`` text of ``manage.py telnyx_sandbox``); ``POST /_sandbox/faults`` takes the same
keys as JSON.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from aiohttp import web

OPERATIONS = (
    "FindTelephonyCredentials",
    "CreateTelephonyCredential",
    "GetTelephonyCredential",
    "UpdateTelephonyCredential",
    "DeleteTelephonyCredential",
    "CreateTelephonyCredentialToken",
    "ListCredentialConnections",
    "CreateCredentialConnection",
    "RetrieveCredentialConnection",
    "DeleteCredentialConnection",
    "DialCall",
    "RetrieveCallStatus",
    "HangupCall",
    "StartCallRecord",
    "StopCallRecording",
    "PauseCallRecording",
    "ResumeCallRecording",
    "GetRecordings",
    "GetRecording",
    "DeleteRecording",
    "DeleteRecordings",
    "DownloadRecording",  # the sandbox's own: GET of a signed recording URL
)
SYNTAX = """\
fault rules (--fault, repeatable):
  OPERATION:key=value,key=value,...   OPERATION is an operationId or '*' for all

  latency=MS      (latency_ms)  delay before answering
  rate=P          (error_rate)  probability 0..1 of failing; 1 when a status is given
  status=CODE     429, 500 or 503 (503 when only a rate is given)
  retry_after=S   Retry-After seconds sent with 429 (default 1)
  hang            never answer: hold the request until the client disconnects
  malformed       answer 200 with a body that is not JSON
  execute         run the operation first, then fail/hang/garble the answer
  count=N         apply to the next N matching requests only

  call faults (DialCall only; the Dial itself succeeds):
  outcome=busy        the callee is busy: call.hangup user_busy after answer_after
  outcome=no_answer   a number never answers (call.hangup timeout after talk_time); a
                      WebRTC agent gets the invite but its answer is ignored (call.hangup
                      timeout after the Dial's timeout_secs, unless hung up before)
  media_stop_after=S  S seconds after answer the sandbox stops sending RTP to the agent
  drop_after=S        S seconds after answer the sandbox closes the agent's WebSocket

  recording faults (DialCall with record, or StartCallRecord; the command succeeds):
  recording_error         the recording ends in call.recording.error, not .saved
  recording_urls_expired  call.recording.saved carries URLs that have already expired
                          (GET /recordings/{id} still gives fresh ones)

  download faults (DownloadRecording: fetching a signed recording URL):
  download_bytes_per_s=B  send the file at B bytes per second
  download_cut_after=N    close the connection after N bytes of the body
  (latency, status and hang apply to downloads too)

  A rule for an operation overrides the '*' rule key by key; booleans may be bare
  (hang) or explicit (hang=1, hang=false). POST /_sandbox/faults takes the same
  keys as JSON, e.g. {"operation": "DialCall", "status": 503, "error_rate": 0.5}.

examples:
  --latency-ms 200 --fault 'DialCall:status=503,rate=0.5'
  --fault 'CreateTelephonyCredential:status=429,retry_after=2,count=1'
  --fault 'CreateTelephonyCredentialToken:hang' --fault 'RetrieveCallStatus:malformed'
  --fault 'DialCall:outcome=busy,count=1' --fault 'DialCall:media_stop_after=3'
  --fault 'StartCallRecord:recording_error,count=1'
  --fault 'DownloadRecording:download_cut_after=10000,count=1'
"""
ALIASES = {"latency": "latency_ms", "rate": "error_rate"}
BOOLEAN = {"hang", "malformed", "execute", "recording_error", "recording_urls_expired"}
OUTCOMES = ("busy", "no_answer")
CALL_FAULTS = {"outcome", "media_stop_after", "drop_after"}
RECORDING_FAULTS = {"recording_error", "recording_urls_expired"}
DOWNLOAD_FAULTS = {"download_bytes_per_s", "download_cut_after"}
SCOPES = (
    (CALL_FAULTS, ("DialCall",)),
    (RECORDING_FAULTS, ("DialCall", "StartCallRecord")),
    (DOWNLOAD_FAULTS, ("DownloadRecording",)),
)


@dataclass(frozen=True)
class FaultRule:
    """One rule; ``None`` fields fall back to the ``*`` rule."""

    operation: str = "*"
    latency_ms: int | None = None
    error_rate: float | None = None
    status: int | None = None
    retry_after: int | None = None
    hang: bool | None = None
    malformed: bool | None = None
    execute: bool | None = None
    count: int | None = None
    outcome: str | None = None
    media_stop_after: float | None = None
    drop_after: float | None = None
    recording_error: bool | None = None
    recording_urls_expired: bool | None = None
    download_bytes_per_s: int | None = None
    download_cut_after: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultRule:
        """Build and check a rule from control-endpoint JSON. Raises ValueError."""
        known = {f.name for f in fields(cls)}
        data = {ALIASES.get(k, k): v for k, v in data.items()}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault keys: {', '.join(sorted(unknown))}")
        op = data.get("operation", "*")
        if op != "*" and op not in OPERATIONS:
            raise ValueError(f"unknown operation {op!r}; use an operationId or '*'")
        rule = cls(
            operation=op,
            latency_ms=_opt(data, "latency_ms", int),
            error_rate=_opt(data, "error_rate", float),
            status=_opt(data, "status", int),
            retry_after=_opt(data, "retry_after", int),
            hang=_opt(data, "hang", _boolean),
            malformed=_opt(data, "malformed", _boolean),
            execute=_opt(data, "execute", _boolean),
            count=_opt(data, "count", int),
            outcome=_opt(data, "outcome", str),
            media_stop_after=_opt(data, "media_stop_after", float),
            drop_after=_opt(data, "drop_after", float),
            recording_error=_opt(data, "recording_error", _boolean),
            recording_urls_expired=_opt(data, "recording_urls_expired", _boolean),
            download_bytes_per_s=_opt(data, "download_bytes_per_s", int),
            download_cut_after=_opt(data, "download_cut_after", int),
        )
        for keys, operations in SCOPES:
            if op not in ("*", *operations) and any(data.get(k) is not None for k in keys):
                names = ", ".join(sorted(keys))
                raise ValueError(f"{names} apply to {' and '.join(operations)} only")
        if (rule.download_bytes_per_s is not None and rule.download_bytes_per_s < 1) or (
            rule.download_cut_after is not None and rule.download_cut_after < 0
        ):
            raise ValueError("download_bytes_per_s must be >= 1 and download_cut_after >= 0")
        if rule.outcome is not None and rule.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}")
        if min(rule.media_stop_after or 0, rule.drop_after or 0) < 0:
            raise ValueError("media_stop_after and drop_after must be >= 0")
        if rule.status is not None and rule.error_rate is None:
            rule = replace(rule, error_rate=1.0)
        if rule.error_rate is not None and not 0 <= rule.error_rate <= 1:
            raise ValueError("error_rate must be between 0 and 1")
        if rule.status is not None and not 400 <= rule.status <= 599:
            raise ValueError("status must be an HTTP error status (429, 500, 503, ...)")
        if (rule.latency_ms or 0) < 0 or (rule.count is not None and rule.count < 1):
            raise ValueError("latency_ms must be >= 0 and count >= 1")
        return rule

    @classmethod
    def parse(cls, text: str) -> FaultRule:
        """Parse the ``--fault OPERATION:key=value,...`` syntax. Raises ValueError."""
        op, sep, rest = text.partition(":")
        if not sep and "=" in op:
            op, rest = "*", text
        data: dict[str, Any] = {"operation": op.strip() or "*"}
        for part in filter(None, (p.strip() for p in rest.split(","))):
            key, eq, value = part.partition("=")
            key = ALIASES.get(key.strip(), key.strip())
            data[key] = value.strip() if eq else ("true" if key in BOOLEAN else "")
        return cls.from_dict(data)

    def as_dict(self) -> dict[str, Any]:
        """JSON form, unset fields left out."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _opt(data: dict[str, Any], key: str, kind: Any) -> Any:
    value = data.get(key)
    if value is None:
        return None
    if kind in (int, float) and isinstance(value, bool):
        raise ValueError(f"{key} must be a number")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key}: invalid value {value!r}") from None


@dataclass(frozen=True)
class Decision:
    """What to do to one request, resolved from the rules when it arrives."""

    latency_ms: int = 0
    status: int | None = None
    retry_after: int = 1
    hang: bool = False
    malformed: bool = False
    execute: bool = False
    outcome: str | None = None
    media_stop_after: float | None = None
    drop_after: float | None = None
    recording_error: bool = False
    recording_urls_expired: bool = False
    download_bytes_per_s: int | None = None
    download_cut_after: int | None = None

    @property
    def call_label(self) -> str | None:
        """The call faults for the request log (``outcome=busy``, ...), or None."""
        keys = sorted(CALL_FAULTS | RECORDING_FAULTS | DOWNLOAD_FAULTS)
        parts = [f"{k}={getattr(self, k)}" for k in keys if getattr(self, k) not in (None, False)]
        return ",".join(parts) or None

    @property
    def label(self) -> str | None:
        """Short name for the request log: ``hang``, ``malformed``, ``status=503`` or None."""
        if self.hang:
            return "hang"
        if self.malformed:
            return "malformed"
        if self.status is not None:
            return f"status={self.status}"
        return None


class FaultTable:
    """The active rules, with a seeded random source for error rates."""

    def __init__(self, *, seed: int | None = None) -> None:
        self.rules: dict[str, FaultRule] = {}
        self.random = random.Random(seed)  # noqa: S311 - fault dice, not security

    def set(self, rule: FaultRule) -> None:
        """Add or replace the rule for ``rule.operation``."""
        self.rules[rule.operation] = rule

    def clear(self) -> None:
        """Remove every rule."""
        self.rules.clear()

    def decide(self, operation: str) -> Decision:
        """Resolve the rules for one request (and spend one use of counted rules)."""
        specific, wildcard = self.rules.get(operation), self.rules.get("*")
        matched = [r for r in (specific, wildcard) if r is not None]
        if not matched:
            return Decision()
        for rule in matched:
            if rule.count is not None:
                if rule.count <= 1:
                    del self.rules[rule.operation]
                else:
                    self.rules[rule.operation] = replace(rule, count=rule.count - 1)

        def pick(name: str) -> Any:
            for rule in matched:
                value = getattr(rule, name)
                if value is not None:
                    return value
            return None

        status = pick("status")
        rate = pick("error_rate") or 0.0
        if status is None and rate > 0:
            status = 503
        failing = status is not None and rate > 0 and self.random.random() < rate
        return Decision(
            latency_ms=pick("latency_ms") or 0,
            status=status if failing else None,
            retry_after=pick("retry_after") or 1,
            hang=bool(pick("hang")),
            malformed=bool(pick("malformed")),
            execute=bool(pick("execute")),
            outcome=pick("outcome"),
            media_stop_after=pick("media_stop_after"),
            drop_after=pick("drop_after"),
            recording_error=bool(pick("recording_error")),
            recording_urls_expired=bool(pick("recording_urls_expired")),
            download_bytes_per_s=pick("download_bytes_per_s"),
            download_cut_after=pick("download_cut_after"),
        )

    def as_list(self) -> list[dict[str, Any]]:
        """Every rule, as JSON."""
        return [rule.as_dict() for rule in self.rules.values()]


# the request key the server stores a request's Decision under
DECISION = web.RequestKey("sandbox.decision", Decision)
