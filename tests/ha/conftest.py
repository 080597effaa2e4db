"""Fixtures for the high-availability tests: a real Sentinel-managed Redis.

``sentinel_cluster`` (one per module: master, replica, three Sentinels, with passwords)
and ``sentinel_settings`` pointing this process's settings at it. Tests that kill the
master take their own cluster (``fresh_cluster``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.sentinel_cluster import SentinelCluster
from telephony.redis_target import caches_config, channel_layers_config, parse_sentinels
from tests.conftest import ROOT

PASSWORD = "redis-secret-pw"
SENTINEL_PASSWORD = "sentinel-secret-pw"


def _cluster() -> SentinelCluster:
    return SentinelCluster(password=PASSWORD, sentinel_password=SENTINEL_PASSWORD).start()


@pytest.fixture(scope="module")
def sentinel_cluster() -> Iterator[SentinelCluster]:
    cluster = _cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def fresh_cluster() -> Iterator[SentinelCluster]:
    cluster = _cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


def point_at(settings: Any, cluster: SentinelCluster, prefix: str) -> None:
    """This process's settings as ``cluster.env()`` would make them."""
    from telephony.connections import redis_target, reset_clients
    from telephony.state import state_cache

    env = cluster.env()
    settings.REDIS_URL = ""
    settings.REDIS_SENTINELS = env["REDIS_SENTINELS"].split(",")
    settings.REDIS_SENTINEL_MASTER = env["REDIS_SENTINEL_MASTER"]
    settings.REDIS_PASSWORD = env.get("REDIS_PASSWORD", "")
    settings.REDIS_SENTINEL_PASSWORD = env.get("REDIS_SENTINEL_PASSWORD", "")
    target = redis_target()
    assert target.sentinels == parse_sentinels(env["REDIS_SENTINELS"])
    settings.CHANNEL_LAYERS = channel_layers_config(target, prefix=prefix, capacity=1000)
    settings.CACHES = caches_config(target, prefix=prefix)
    reset_clients()
    state_cache.clear()


@pytest.fixture
def sentinel_settings(
    settings: Any, telephony_redis: str, sentinel_cluster: SentinelCluster
) -> SentinelCluster:
    point_at(settings, sentinel_cluster, telephony_redis)
    return sentinel_cluster


def run_bench(module: str, args: list[str], report_path: Path, *, timeout: float) -> BenchRun:
    """``python -m <module> <args> --report <report_path>`` in its own process group,
    killed with the group if it is still there; its JSON report and output."""
    argv = [sys.executable, "-m", module, *args, "--report", str(report_path)]
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # only if it is still there
        except ProcessLookupError:
            pass
        proc.wait()
    text = output.decode(errors="replace")[-4000:]
    assert report_path.exists(), text
    return BenchRun(json.loads(report_path.read_text()), text, proc.returncode)


@dataclass
class BenchRun:
    report: dict[str, Any]
    output: str  # its last 4000 characters, for failure messages
    returncode: int
