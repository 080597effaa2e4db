"""Bad Redis configuration stops the commands with one clear line and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.sentinel_cluster import SentinelCluster
from tests.conftest import ROOT
from tests.ha.conftest import PASSWORD, SENTINEL_PASSWORD
from tests.helpers import free_port

# One xdist worker runs this module, so its tests share the module's Sentinel cluster.
pytestmark = pytest.mark.xdist_group("sentinel")


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "TELEPHONY_", "TELNYX_"))
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0, result
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for secret in (PASSWORD, SENTINEL_PASSWORD, "wrong-pw"):
        assert secret not in result.stderr + result.stdout
    return lines[0]


def test_config__url_and_sentinels_together_is_a_one_line_error() -> None:
    result = _run(
        {"REDIS_URL": "redis://127.0.0.1:6379/0", "REDIS_SENTINELS": "127.0.0.1:26379",
         "REDIS_SENTINEL_MASTER": "m"},
        "check",
    )  # fmt: skip
    line = _one_line(result)
    assert result.returncode == 2
    assert "either REDIS_URL or REDIS_SENTINELS" in line


def test_config__sentinels_without_a_master_name_is_a_one_line_error() -> None:
    line = _one_line(_run({"REDIS_SENTINELS": "127.0.0.1:26379"}, "check"))
    assert "REDIS_SENTINEL_MASTER" in line


def test_supervisor__unreachable_sentinels_exit_with_one_line() -> None:
    hosts = f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    env = {"REDIS_SENTINELS": hosts, "REDIS_SENTINEL_MASTER": "telephony"}
    line = _one_line(_run(env, "telephony_supervisor", "--workers", "0"))
    assert f"no Redis Sentinel answers at {hosts}" in line


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"REDIS_SENTINEL_MASTER": "nosuch"}, "know no master named 'nosuch'"),
        ({"REDIS_PASSWORD": "wrong-pw"}, "refused the password (REDIS_PASSWORD"),
        ({"REDIS_SENTINEL_PASSWORD": "wrong-pw"}, "refused the password (REDIS_SENTINEL_PASSWORD)"),
    ],
)
def test_supervisor__wrong_master_or_password_exit_with_one_line(
    sentinel_cluster: SentinelCluster, change: dict[str, str], says: str
) -> None:
    line = _one_line(
        _run({**sentinel_cluster.env(), **change}, "telephony_supervisor", "--workers", "0")
    )
    assert says in line


def test_status__names_the_sentinel_problem_and_exits_1(sentinel_cluster: SentinelCluster) -> None:
    env = {**sentinel_cluster.env(), "REDIS_SENTINEL_MASTER": "nosuch"}
    result = _run(env, "telephony_status")
    assert result.returncode == 1
    assert "know no master named 'nosuch'" in _one_line(result)
