"""The sandbox as a process: ready line, flags, key file, log file, clean stop."""

from __future__ import annotations

import base64
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from devserver.sandbox.control import ROOT, SandboxControl, SandboxError, SandboxProcess

from .conftest import sandbox_env

pytestmark = pytest.mark.timeout(30)

READY_KEYS = {
    "event", "port", "base_url", "control_url", "api_key", "public_key",
    "connection_id", "call_connection_id", "from_number", "rtc_url",
}  # fmt: skip


def start(tmp_path: Path, *args: str) -> tuple[SandboxProcess, Path]:
    err = tmp_path / f"sandbox-{len(list(tmp_path.glob('sandbox-*')))}.err"
    with err.open("wb") as f:
        proc = SandboxProcess.start(args=list(args), env=sandbox_env(), stderr=f)
    return proc, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_process__ready_line_and_clean_stop(tmp_path: Path, sig: signal.Signals) -> None:
    proc, err = start(tmp_path, "--api-key", "KEY_TEST_123", "--from-number", "+15550002222")
    try:
        ready = proc.ready
        assert set(ready) == READY_KEYS
        assert ready["event"] == "ready"
        assert ready["base_url"] == f"http://127.0.0.1:{proc.port}/v2"
        assert ready["control_url"] == f"http://127.0.0.1:{proc.port}/_sandbox"
        assert (ready["api_key"], ready["from_number"]) == ("KEY_TEST_123", "+15550002222")
        assert ready["connection_id"].isdigit() and ready["call_connection_id"].isdigit()
        assert proc.info() == ready
        assert SandboxControl(proc.control_url).info() == ready
        assert (
            httpx.get(
                f"{proc.base_url}/credential_connections",
                headers={"Authorization": "Bearer KEY_TEST_123"},
            ).status_code
            == 200
        )
    finally:
        assert proc.proc is not None
        os.kill(proc.pid, sig)
        code = proc.proc.wait(timeout=10)
    assert code == 0
    log = err.read_text()
    assert "[Telnyx Sandbox] Started port=" in log and "[Telnyx Sandbox] Stopped" in log
    assert "Traceback" not in log
    assert "KEY_TEST_123" not in log


def test_process__signing_key_file_is_private_and_reused(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "sandbox.key"
    first, _ = start(tmp_path, "--signing-key-file", str(key_file))
    first.stop()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    second, _ = start(tmp_path, "--signing-key-file", str(key_file))
    second.stop()
    assert first.public_key == second.public_key
    assert len(base64.b64decode(first.public_key)) == 32


def test_process__flags_limit_faults_and_log_file(tmp_path: Path) -> None:
    log_file = tmp_path / "requests.jsonl"
    proc, _ = start(
        tmp_path,
        "--credential-limit", "1",
        "--latency-ms", "20",
        "--fault", "DialCall:status=503",
        "--fault", "DialCall:retry_after=3",
        "--log-file", str(log_file),
    )  # fmt: skip
    try:
        rules = httpx.get(f"{proc.control_url}/faults").json()
        assert {"operation": "*", "latency_ms": 20} in rules
        assert {
            "operation": "DialCall",
            "status": 503,
            "error_rate": 1.0,
            "retry_after": 3,
        } in rules
        headers = {"Authorization": f"Bearer {proc.api_key}", "X-Request-Id": "from-cli"}
        with httpx.Client(base_url=proc.base_url, headers=headers) as http:
            cred = {"connection_id": proc.connection_id}
            assert http.post("/telephony_credentials", json=cred).status_code == 201
            assert http.post("/telephony_credentials", json=cred).status_code == 403
            body = {
                "connection_id": proc.call_connection_id,
                "to": "+15551112222",
                "from": proc.from_number,
            }
            assert http.post("/calls", json=body).status_code == 503
    finally:
        assert proc.stop() == 0
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [e["status"] for e in lines] == [201, 403, 503]
    assert all(e["request_id"] == "from-cli" and e["latency_ms"] == 20 for e in lines)


def test_process__bad_flags_fail_fast(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="exited with status"):
        start(tmp_path, "--fault", "NoSuchOperation:hang")
    assert "unknown operation" in (tmp_path / "sandbox-0.err").read_text()


def test_process__help_documents_the_fault_syntax() -> None:
    out = subprocess.run(
        [sys.executable, "manage.py", "telnyx_sandbox", "--help"],
        cwd=ROOT, env=sandbox_env(), capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    for word in (
        "--fault",
        "--latency-ms",
        "--answer-after",
        "--talk-time",
        "retry_after",
        "DialCall:status=503",
    ):
        assert word in out
