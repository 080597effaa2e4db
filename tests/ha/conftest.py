"""Fixtures for the high-availability tests: a real Sentinel-managed Redis.

``sentinel_cluster`` (one per module: master, replica, three Sentinels, with passwords)
and ``sentinel_settings`` pointing this process's settings at it. Tests that kill the
master take their own cluster (``fresh_cluster``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bench.sentinel_cluster import SentinelCluster
from telephony.redis_target import caches_config, channel_layers_config, parse_sentinels

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
