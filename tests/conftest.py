"""Project-wide fixtures: a real Redis, a unique key prefix per test, real subprocesses.

Redis: ``REDIS_URL`` from the environment when set (CI runs the suite once more against
the machine's Redis 7), otherwise an embedded Redis started once for the session.
Every test gets its own key prefix (state keys and channel layer), flushed afterwards.
Every process a test starts goes through ``procs`` and is killed by pid (its whole
process group) at teardown, also when the test fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from devserver.embedded_redis import EmbeddedRedis, ping
from telephony.layers import channel_layers_config
from telephony.procutil import pid_alive, wait_for
from tests.helpers import ROOT, ProcessTracker

# Tests that share one expensive session resource run on one xdist worker (``--dist
# loadgroup``), so it starts once: Prism for the contract tests, ``serve`` + Chromium for
# the browser tests. Tests that start real supervisors (each starts workers that import
# the Telnyx SDK) run one at a time too: several at once starve the 2-core machine until
# workers miss their start timeout.
XDIST_GROUPS = ("contract", "browser")
SUPERVISOR_FIXTURES = {"sup_env", "supervisor"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put tests into their xdist group: by marker, or ``supervisors`` by fixture."""
    for item in items:
        for group in XDIST_GROUPS:
            if item.get_closest_marker(group) is not None:
                item.add_marker(pytest.mark.xdist_group(group))
        if SUPERVISOR_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group("supervisors"))


@pytest.hookimpl(optionalhook=True)  # an xdist hook: no error without xdist
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """Stop at once when ``--dist loadgroup`` would silently not group (on the controller).

    xdist tells its scheduler a test's group by appending ``@group`` to the node id on the
    worker. pytest 9.2 builds node ids another way and drops that suffix
    (pytest-dev/pytest-xdist#1386): grouped tests then run anywhere, each browser module
    starts ``serve`` on every worker, and a pass takes twice as long. Hence the pin of
    pytest in requirements-dev.txt; this catches the next such upgrade. Every test under
    ``tests/browser/`` and ``tests/contract/`` is in a group (module-wide markers).
    """
    if node.config.getvalue("dist") != "loadgroup":
        return
    lost = [i for i in ids if i.startswith(("tests/browser/", "tests/contract/")) and "@" not in i]
    if lost:
        pytest.exit(
            f"--dist loadgroup does not group with pytest {pytest.__version__} "
            f"(pytest-dev/pytest-xdist#1386; e.g. {lost[0]}): "
            "install requirements-dev.txt's pytest",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )


CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """/usr/bin/chromium; without it the browser tests fail, saying how to install it."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is missing ({CHROMIUM}): run `make tools` as root, "
            "or sudo apt-get install -y chromium",
            pytrace=False,
        )
    return str(CHROMIUM)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of the Redis the tests use: ``REDIS_URL`` if set, else an embedded server."""
    url = os.environ.get("REDIS_URL")
    if url:
        if not ping(url):
            pytest.exit("REDIS_URL is set but no Redis answers there", returncode=3)
        yield url
        return
    # Unix socket paths are limited to ~100 bytes: keep it short.
    tmp = Path(tempfile.mkdtemp(prefix="tel-redis-"))
    server = EmbeddedRedis(tmp / "redis.sock").start()
    try:
        yield server.url
    finally:
        server.stop()
        tmp.rmdir() if tmp.exists() and not any(tmp.iterdir()) else None


@pytest.fixture(autouse=True)
def telephony_redis(settings: Any, redis_url: str) -> Iterator[str]:
    """Point this test at the test Redis, under a key prefix of its own; flush it after."""
    from telephony.connections import reset_clients
    from telephony.keys import Keys
    from telephony.state import state_cache

    prefix = f"t{uuid.uuid4().hex[:10]}"
    settings.REDIS_URL = redis_url
    settings.TELEPHONY_REDIS_PREFIX = prefix
    settings.CHANNEL_LAYERS = channel_layers_config(redis_url, prefix=prefix, capacity=10000)
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": f"{prefix}:cache",
        }
    }
    reset_clients()
    state_cache.clear()
    yield prefix
    state_cache.clear()
    reset_clients()
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=Keys.everything(), count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="session", autouse=True)
def close_thread_db_connections(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    """Close the connections the async ORM opened in asgiref's worker thread.

    Django closes only the current thread's connections; on PostgreSQL one left open in
    another thread (or taken from the pool by a thread that has ended) would stop
    pytest-django from dropping the test database.
    """
    yield
    from asgiref.sync import SyncToAsync
    from django.db import connections

    with django_db_blocker.unblock():
        SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=30)
        connections.close_all()
        _end_other_sessions(connections["default"].settings_dict)


def _end_other_sessions(db: dict[str, Any]) -> None:
    """PostgreSQL: end whatever sessions on the test database are left (a connection a
    finished thread took from Django's pool and never gave back), so that pytest-django
    can drop it."""
    if "postgresql" not in db["ENGINE"]:
        return
    import psycopg

    with psycopg.connect(
        host=db["HOST"] or None,
        port=db["PORT"] or None,
        user=db["USER"] or None,
        password=db["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (db["NAME"],),
        )


def run_json_script(code: str, env: dict[str, str]) -> dict[str, Any]:
    """Run Python ``code`` in a fresh process of the product; return its last line as JSON."""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def database_url() -> str:
    """A DATABASE_URL for subprocesses that points at the current test database."""
    from django.db import connection

    s = connection.settings_dict
    if s["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{s['NAME']}"
    user = s.get("USER") or ""
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{auth}{s.get('HOST') or 'localhost'}{port}/{s['NAME']}"


@pytest.fixture
def subprocess_env(settings: Any, telephony_redis: str) -> dict[str, str]:
    """Environment for product subprocesses: same Redis, prefix and test database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELNYX_", "TELEPHONY_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "PYTHONUNBUFFERED": "1",
            "REDIS_URL": settings.REDIS_URL,
            "TELEPHONY_REDIS_PREFIX": telephony_redis,
            "DATABASE_URL": database_url(),
            "TELEPHONY_VAR_DIR": str(settings.VAR_DIR),
            # Tests count and kill workers; the ones about spares ask for them.
            "TELEPHONY_SPARE_WORKERS": "0",
        }
    )
    return env


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[ProcessTracker]:
    """Start real processes; all of them are killed by pid at teardown."""
    tracker = ProcessTracker(tmp_path)
    try:
        yield tracker
    finally:
        tracker.cleanup()


__all__ = ["ROOT", "ProcessTracker", "database_url", "pid_alive", "wait_for"]
