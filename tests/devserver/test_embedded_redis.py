"""The embedded Redis: a real child process on a unix socket, no persistence, no orphans."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from channels.layers import get_channel_layer

from devserver.embedded_redis import EmbeddedRedis, EmbeddedRedisError, ping
from telephony.procutil import pid_alive, wait_for
from tests.conftest import ROOT


@pytest.fixture
def short_tmp() -> Path:
    # Unix socket paths must stay short (about 100 bytes).
    path = Path(tempfile.mkdtemp(prefix="tel-"))
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


def test_embedded_redis__serves_on_a_unix_socket_and_keeps_nothing(short_tmp: Path) -> None:
    server = EmbeddedRedis(short_tmp / "r.sock").start()
    try:
        assert server.url.startswith("unix://")
        assert ping(server.url)
        import redis

        client = redis.Redis.from_url(server.url)
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("port") == {"port": "0"}
        client.close()
    finally:
        server.stop()
    assert not ping(server.url)
    assert not (short_tmp / "r.sock").exists()
    assert not (short_tmp / "dump.rdb").exists()


def test_embedded_redis__refuses_to_start_twice_on_one_socket(short_tmp: Path) -> None:
    with EmbeddedRedis(short_tmp / "r.sock"):
        with pytest.raises(EmbeddedRedisError, match="already answers"):
            EmbeddedRedis(short_tmp / "r.sock").start()


def test_embedded_redis__dies_with_its_owner_on_sigkill(short_tmp: Path) -> None:
    owner_code = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from devserver.embedded_redis import EmbeddedRedis
        server = EmbeddedRedis(Path({str(short_tmp / "r.sock")!r})).start()
        print(server.pid, flush=True)
        time.sleep(60)
        """
    )
    owner = subprocess.Popen([sys.executable, "-c", owner_code], stdout=subprocess.PIPE, text=True)
    try:
        redis_pid = int(owner.stdout.readline())
        assert pid_alive(redis_pid)
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait(timeout=5)
        assert wait_for(lambda: not pid_alive(redis_pid), timeout=5), (
            "embedded Redis outlived its owner"
        )
    finally:
        owner.kill()
        owner.wait()
        owner.stdout.close()


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_layer__idle_receiver_survives_20_seconds() -> None:
    """redis-py 8 times reads out at 5 s by default; channels-redis blocks 5 s per pop."""
    layer = get_channel_layer()
    receiver = asyncio.create_task(layer.receive("idle-test"))
    await asyncio.sleep(20)
    assert not receiver.done(), (
        f"receiver died while idle: {receiver.exception() if receiver.done() else ''}"
    )
    await layer.send("idle-test", {"type": "wake.up"})
    message = await asyncio.wait_for(receiver, timeout=10)
    assert message == {"type": "wake.up"}
    await layer.flush()
