"""The Redis settings, parsed and checked: one URL or Sentinel, never both, no secrets shown."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from telephony.redis_target import (
    RedisTarget,
    caches_config,
    channel_layers_config,
    parse_sentinels,
    redacted_url,
    target_from_env,
)


def _target(**kw: Any) -> RedisTarget:
    args: dict[str, Any] = dict(url="", sentinels=[], master="", password="",
                                sentinel_password="", default_url="unix:///tmp/r.sock")  # fmt: skip
    return target_from_env(**{**args, **kw})


def test_parse_sentinels__hosts_and_ports_ipv6_and_spaces() -> None:
    assert parse_sentinels("a:26379, b.example:26380,[::1]:5000,") == (
        ("a", 26379), ("b.example", 26380), ("::1", 5000),
    )  # fmt: skip
    assert parse_sentinels(["a:1", "b:2"]) == (("a", 1), ("b", 2))


@pytest.mark.parametrize("bad", ["a", "a:", "a:x", "a:70000", "user@a:1", "a:1/0", ":1"])
def test_parse_sentinels__a_bad_entry_is_named(bad: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="host:port") as e:
        parse_sentinels(f"ok:1,{bad}")
    assert repr(bad) in str(e.value)


@pytest.mark.parametrize(
    ("kw", "says"),
    [
        ({"url": "redis://r:6379/0", "sentinels": "s:1", "master": "m"}, "not both"),
        ({"sentinels": "s:1"}, "REDIS_SENTINEL_MASTER must name"),
        ({"master": "m"}, "REDIS_SENTINELS must list"),
        ({"sentinel_password": "x"}, "REDIS_SENTINELS is not"),
    ],
)
def test_target__clashing_settings_are_one_line(kw: dict[str, str], says: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=says) as e:
        _target(**kw)
    assert "\n" not in str(e.value)


def test_target__default_url_sentinel_and_descriptions_without_secrets() -> None:
    assert _target().url == "unix:///tmp/r.sock" and not _target().is_sentinel
    t = _target(sentinels="s1:1,s2:2", master="m", password="pw-1", sentinel_password="pw-2")
    assert t.is_sentinel and t.sentinels == (("s1", 1), ("s2", 2))
    assert t.describe() == "Sentinel master 'm' via s1:1,s2:2"
    assert "pw-" not in repr(t)
    assert redacted_url("redis://u:pw@h:1/0") == "redis://***@h:1/0"
    assert redacted_url("unix:///tmp/r.sock") == "unix:///tmp/r.sock"


def test_layer_and_cache_config__sentinel_form() -> None:
    t = _target(sentinels="s1:1", master="m", password="pw", sentinel_password="spw")
    host = channel_layers_config(t, prefix="p")["default"]["CONFIG"]["hosts"][0]
    assert host["master_name"] == "m" and host["sentinels"] == [["s1", 1]]
    assert host["password"] == "pw" and host["sentinel_kwargs"]["password"] == "spw"
    assert host["socket_timeout"] > 5  # above channels-redis's 5 s blocking pop
    cache = caches_config(t, prefix="p")["default"]
    assert cache["OPTIONS"]["pool_class"] == "telephony.connections.SentinelCachePool"
    url_host = channel_layers_config("redis://h:1/0", prefix="p")["default"]["CONFIG"]["hosts"][0]
    assert url_host["address"] == "redis://h:1/0" and "password" not in url_host
