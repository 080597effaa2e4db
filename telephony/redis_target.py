"""Which Redis every process talks to: one URL, or a master found through Sentinel.

Pure configuration, no connections (those are :mod:`telephony.connections`): it parses
and checks the ``REDIS_*`` settings, describes the target without its secrets, and
builds the channel layer's and the cache's configuration for it. ``config/settings.py``
and the connections both go through here, so there is one place that knows the forms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

# channels-redis blocks up to 5 s in BZPOPMIN per receive; redis-py 8 times socket
# reads out after 5 s by default, so an idle receiver would die with TimeoutError.
# Reads must be allowed to last longer than the blocking pop.
REDIS_SOCKET_TIMEOUT = 15.0
REDIS_CONNECT_TIMEOUT = 2.0
# Every caller waiting for a reply holds one connection of the layer's pool in BLPOP (the
# one-hop reply path), so a loop's pool must outgrow the callers a web process serves at
# once. redis-py's default is 100 and fails beyond it.
REDIS_MAX_CONNECTIONS = 2000
# Sentinels answer one small command; a dead one must not hold up the next one's turn.
SENTINEL_TIMEOUT = 0.5
SENTINEL_CACHE_POOL = "telephony.connections.SentinelCachePool"
LAYER_BACKEND = "telephony.layers.TelephonyChannelLayer"


@dataclass(frozen=True)
class RedisTarget:
    """A single Redis (``url``) or a Sentinel-managed master (``sentinels`` + ``master``).

    The passwords are left out of ``repr`` and of :meth:`describe`, so neither a log
    line nor an error message can carry them.
    """

    url: str = ""
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str = ""
    password: str = field(default="", repr=False)
    sentinel_password: str = field(default="", repr=False)

    @property
    def is_sentinel(self) -> bool:
        return bool(self.sentinels)

    def describe(self) -> str:
        """Where Redis is, for people: no password, ever."""
        if self.is_sentinel:
            hosts = ",".join(f"{h}:{p}" for h, p in self.sentinels)
            return f"Sentinel master {self.master!r} via {hosts}"
        return redacted_url(self.url)

    def sentinel_kwargs(self) -> dict[str, Any]:
        """Connection arguments for the Sentinels themselves (not for the master)."""
        kwargs: dict[str, Any] = {
            "socket_timeout": SENTINEL_TIMEOUT,
            "socket_connect_timeout": SENTINEL_TIMEOUT,
        }
        if self.sentinel_password:
            kwargs["password"] = self.sentinel_password
        return kwargs

    def master_kwargs(self) -> dict[str, Any]:
        """Connection arguments for the master (or the single Redis) besides the address."""
        return {"password": self.password} if self.password else {}


def redacted_url(url: str) -> str:
    """``url`` with any user and password replaced by ``***``."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url


def parse_sentinels(value: list[str] | str) -> tuple[tuple[str, int], ...]:
    """``"h1:26379,h2:26379"`` (or its list) -> ``(("h1", 26379), ("h2", 26379))``."""
    items = value.split(",") if isinstance(value, str) else value
    out = []
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        parts = urlsplit(f"//{item}")
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None or parts.username or parts.path:
            raise ImproperlyConfigured(
                f"REDIS_SENTINELS must be a comma-separated list of host:port, not {item!r}"
            )
        out.append((parts.hostname, port))
    return tuple(out)


def target_from_env(
    *,
    url: str,
    sentinels: list[str] | str,
    master: str,
    password: str,
    sentinel_password: str,
    default_url: str,
) -> RedisTarget:
    """The target the settings describe; ImproperlyConfigured (one line) when they clash.

    ``default_url`` (the embedded Redis) is used when neither form is set.
    """
    hosts = parse_sentinels(sentinels)
    if hosts and url:
        raise ImproperlyConfigured(
            "set either REDIS_URL or REDIS_SENTINELS (with REDIS_SENTINEL_MASTER), not both"
        )
    if hosts and not master:
        raise ImproperlyConfigured(
            "REDIS_SENTINELS is set: REDIS_SENTINEL_MASTER must name the master"
        )
    if master and not hosts:
        raise ImproperlyConfigured(
            "REDIS_SENTINEL_MASTER is set: REDIS_SENTINELS must list the Sentinels"
        )
    if sentinel_password and not hosts:
        raise ImproperlyConfigured("REDIS_SENTINEL_PASSWORD is set but REDIS_SENTINELS is not")
    if hosts:
        return RedisTarget(
            sentinels=hosts, master=master, password=password, sentinel_password=sentinel_password
        )
    return RedisTarget(url=url or default_url, password=password)


def channel_layers_config(
    target: RedisTarget | str, *, prefix: str, capacity: int = 1000
) -> dict[str, Any]:
    """``CHANNEL_LAYERS`` for one target (a URL: tcp, tls or unix socket; or Sentinel)."""
    if isinstance(target, str):
        target = RedisTarget(url=target)
    host: dict[str, Any] = {
        "socket_timeout": REDIS_SOCKET_TIMEOUT,
        "socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
        "max_connections": REDIS_MAX_CONNECTIONS,
        **target.master_kwargs(),
    }
    if target.is_sentinel:
        host.update(
            sentinels=[list(s) for s in target.sentinels],
            master_name=target.master,
            sentinel_kwargs=target.sentinel_kwargs(),
        )
    else:
        host["address"] = target.url
    return {
        "default": {
            "BACKEND": LAYER_BACKEND,
            "CONFIG": {
                "hosts": [host],
                "prefix": f"{prefix}:asgi",
                "capacity": capacity,
                "expiry": 60,
                "group_expiry": 86400,
            },
        }
    }


def caches_config(target: RedisTarget, *, prefix: str) -> dict[str, Any]:
    """``CACHES``: Django's Redis cache (rate limits) in the same Redis."""
    options: dict[str, Any] = {"socket_timeout": 2.0, "socket_connect_timeout": 1.0}
    if target.is_sentinel:
        # Django's cache takes URLs; the pool class ignores this one and asks the
        # Sentinels (telephony.connections.SentinelCachePool).
        location = f"redis-sentinel://{target.master}"
        options["pool_class"] = SENTINEL_CACHE_POOL
    else:
        location = target.url
        options.update(target.master_kwargs())
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": location,
            "KEY_PREFIX": f"{prefix}:cache",
            "OPTIONS": options,
        }
    }
