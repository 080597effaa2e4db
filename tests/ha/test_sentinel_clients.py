"""Every Redis client of this process through Sentinel, against a real Sentinel cluster:
the plain clients, the channel layer, the cache; a failover; the start-up check."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from asgiref.sync import async_to_sync
from django.core.cache import caches

from bench.sentinel_cluster import HOST, SentinelCluster
from telephony.connections import (
    MISCONFIGURED,
    UNREACHABLE,
    get_async_redis,
    get_redis,
    redis_problem,
    redis_target,
)
from telephony.layers import TelephonyChannelLayer
from telephony.state import READY, UNAVAILABLE, read_state
from telephony.worker.claims import Claim, claim_request
from tests.ha.conftest import PASSWORD, SENTINEL_PASSWORD, point_at
from tests.helpers import free_port, wait_until

# One xdist worker runs this module, so its tests share the module's Sentinel cluster.
pytestmark = pytest.mark.xdist_group("sentinel")


def _on_master(cluster: SentinelCluster, key: str) -> Any:
    port = cluster.master_port()
    assert port is not None
    direct = redis.Redis(host=HOST, port=port, password=PASSWORD, decode_responses=True)
    try:
        return direct.get(key)
    finally:
        direct.close()


def test_sentinel__sync_async_and_cache_clients_write_to_the_master(
    sentinel_settings: SentinelCluster, telephony_redis: str
) -> None:
    get_redis().set(f"{telephony_redis}:sync", "1")

    async def write() -> None:
        await get_async_redis().set(f"{telephony_redis}:async", "2")

    async_to_sync(write)()
    caches["default"].set("k", "3")
    assert _on_master(sentinel_settings, f"{telephony_redis}:sync") == "1"
    assert _on_master(sentinel_settings, f"{telephony_redis}:async") == "2"
    assert caches["default"].get("k") == "3"
    assert "secret" not in repr(redis_target()) and "secret" not in redis_target().describe()


async def test_sentinel__channel_layer_round_trip(
    sentinel_settings: SentinelCluster, settings: Any
) -> None:
    layer = TelephonyChannelLayer(**settings.CHANNEL_LAYERS["default"]["CONFIG"])
    try:
        await layer.send("telephony.ha", {"type": "x", "n": 1})
        assert await layer.receive_or_idle("telephony.ha", idle=2) == {"type": "x", "n": 1}
    finally:
        await layer.flush()
        await layer.close_pools()


def test_claims__wait_for_the_replica_or_refuse(
    sentinel_settings: SentinelCluster, settings: Any
) -> None:
    settings.TELEPHONY_CLAIM_REPLICAS = 1
    claim = async_to_sync(claim_request)
    assert claim("r1", "w1", ttl_ms=10_000) is Claim.OURS
    assert claim("r1", "w2", ttl_ms=10_000) is Claim.TAKEN
    settings.TELEPHONY_CLAIM_REPLICAS, settings.TELEPHONY_CLAIM_WAIT_MS = 2, 50  # only 1 exists
    assert claim("r2", "w1", ttl_ms=10_000) is Claim.UNREPLICATED
    assert claim("r2", "w2", ttl_ms=10_000) is Claim.TAKEN  # refused, still not run twice


def test_problem__a_good_cluster_has_none(sentinel_settings: SentinelCluster) -> None:
    assert redis_problem() is None


@pytest.mark.parametrize(
    ("change", "kind", "says"),
    [
        ({"REDIS_SENTINEL_MASTER": "nosuch"}, MISCONFIGURED, "no master named 'nosuch'"),
        ({"REDIS_PASSWORD": "wrong"}, MISCONFIGURED, "refused the password (REDIS_PASSWORD"),
        ({"REDIS_SENTINEL_PASSWORD": "wrong"}, MISCONFIGURED, "(REDIS_SENTINEL_PASSWORD)"),
        ({"REDIS_SENTINELS": "unreachable"}, UNREACHABLE, "no Redis Sentinel answers at"),
    ],
)
def test_problem__bad_configuration_is_one_line_without_secrets(
    sentinel_settings: SentinelCluster, settings: Any, change: dict[str, str], kind: str, says: str
) -> None:
    for name, value in change.items():
        if value == "unreachable":
            settings.REDIS_SENTINELS = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
        else:
            setattr(settings, name, value)
    problem = redis_problem(timeout=0.5)
    assert problem is not None
    assert problem[0] == kind and says in problem[1], problem
    assert "\n" not in problem[1] and "secret" not in problem[1] and "wrong" not in problem[1]


def test_failover__fast_unavailable_then_the_same_clients_reach_the_new_master(
    fresh_cluster: SentinelCluster, settings: Any, telephony_redis: str
) -> None:
    point_at(settings, fresh_cluster, telephony_redis)
    settings.TELEPHONY_STATE_CACHE_TTL = 0
    sync_client = get_redis()
    sync_client.set(f"{telephony_redis}:before", "1")
    old = fresh_cluster.kill_master()

    began = time.monotonic()
    state = read_state()
    took = time.monotonic() - began
    # Unavailable, not an exception and not a hang (bounded by redis-py's retries).
    assert (state.status, state.reason) == (UNAVAILABLE, "redis_unreachable")
    assert took < 15, took

    fresh_cluster.wait_new_master(old, timeout=30)
    # No reset_clients(): the same client objects find the new master by themselves.
    wait_until(lambda: _ping(sync_client), timeout=20, interval=0.1)
    assert get_redis() is sync_client
    assert read_state().reason != "redis_unreachable"
    assert read_state().status != READY  # nothing beats here: no supervisor in this test

    async def write() -> Any:
        await get_async_redis().set(f"{telephony_redis}:after", "2")
        return await get_async_redis().get(f"{telephony_redis}:after")

    assert async_to_sync(write)() == "2"


def _ping(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


def test_target__passwords_stay_out_of_repr_and_description(
    sentinel_settings: SentinelCluster,
) -> None:
    target = redis_target()
    assert target.password == PASSWORD and target.sentinel_password == SENTINEL_PASSWORD
    for text in (repr(target), target.describe(), str(target)):
        assert PASSWORD not in text and SENTINEL_PASSWORD not in text


async def test_worker__a_claim_no_replica_confirmed_is_refused_unexecuted(
    sentinel_settings: SentinelCluster, settings: Any
) -> None:
    from telephony.protocol import Reply, Request
    from telephony.worker.breaker import CircuitBreaker
    from telephony.worker.main import TelephonyWorker

    settings.TELEPHONY_CLAIM_REPLICAS, settings.TELEPHONY_CLAIM_WAIT_MS = 2, 50  # 1 exists
    layer = TelephonyChannelLayer(**settings.CHANNEL_LAYERS["default"]["CONFIG"])
    adapter: Any = type("Adapter", (), {"breaker": CircuitBreaker()})()
    worker = TelephonyWorker(adapter=adapter, layer=layer, worker_id="ha-host:1")
    ran: list[str] = []

    async def ping(ctx: Any, payload: dict[str, Any]) -> dict[str, Any]:
        ran.append(ctx.request_id)
        return {}

    worker.handlers["health.ping"] = ping
    try:
        reply_to = await layer.new_channel()
        request = Request.new(op="health.ping", reply_to=reply_to, timeout=5, payload={})
        await worker._handle(request.encode())
        reply = Reply.decode(await layer.receive(reply_to))
        assert ran == [] and not reply.ok and reply.error is not None
        assert reply.error["code"] == "service_unavailable"
        assert reply.error["reason"] == "claim_not_replicated"
        settings.TELEPHONY_CLAIM_REPLICAS = 1  # now it would be confirmed, but it is taken
        await worker._handle(request.encode())
        assert ran == []
        fresh = Request.new(op="health.ping", reply_to=reply_to, timeout=5, payload={})
        await worker._handle(fresh.encode())  # confirmed by the replica: it runs
        assert ran == [fresh.request_id] and Reply.decode(await layer.receive(reply_to)).ok
    finally:
        await layer.flush()
        await layer.close_pools()
