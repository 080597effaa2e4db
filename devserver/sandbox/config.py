"""Start-up configuration of one sandbox process (what the command-line flags set)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from devserver.sandbox.faults import FaultRule
from devserver.sandbox.rtc.audio import AudioSettings
from devserver.sandbox.webhooks import WebhookSettings

DEFAULT_API_KEY = "KEYSANDBOX_LOCAL"  # a public, local-only key


@dataclass
class SandboxConfig:
    """Everything fixed at start-up; faults and webhook timing can change at run time."""

    host: str = "127.0.0.1"
    port: int = 0
    api_key: str = DEFAULT_API_KEY
    credential_limit: int = 5
    from_number: str = "+15550001111"
    faults: list[FaultRule] = field(default_factory=list)
    fault_seed: int | None = None
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    signing_key_file: Path | None = None
    log_file: Path | None = None
    audio: AudioSettings = field(default_factory=AudioSettings)
    rtc_ping_interval: float = 30.0
    rtc_reattach_window: float = 30.0  # seconds an answered leg waits for its socket's session
    auto_answer_agents: float | None = None  # seconds: answer agent legs with no browser
    connection_id: str | None = None  # None: a fresh one
    call_connection_id: str | None = None
    recordings_dir: Path | None = None  # None: a temporary directory, removed at exit
    recording_url_ttl: float = 600.0  # seconds a signed recording URL lives
