"""SupervisorStore reads typed records: a malformed heartbeat or command never stops the
supervision loop; it reads as absent (or is dropped) and is logged once."""

from __future__ import annotations

import logging

from telephony.connections import get_redis
from telephony.keys import Keys
from telephony.protocol import ControlCommand, Heartbeat, SupervisorRecord
from telephony.supervisor.store import SupervisorStore


def test_store__exchange_decodes_beats_and_commands_and_skips_malformed_ones(caplog) -> None:
    store = SupervisorStore("h:1", heartbeat_timeout=3.0)
    r = get_redis()
    r.set(Keys.worker("h:2"), Heartbeat(id="h:2", pid=2, beat_at=5, handled=7).encode())
    r.set(Keys.worker("h:3"), '{"id": "h:3", "beat_at": "soon"}')
    scale = ControlCommand.new("scale", user_id=1, at=1, n=2)
    r.rpush(Keys.control("h:1"), '{"cmd": "reboot", "at": 1}', scale.encode(), "junk")
    record = SupervisorRecord(id="h:1", state="running", desired=2)
    try:
        with caplog.at_level(logging.WARNING, logger="telephony.supervisor.store"):
            beats, commands = store.exchange(
                worker_ids=["h:2", "h:3", "h:4"], record=record, forget=[], clear_stopped=False
            )
            again, _ = store.exchange(
                worker_ids=["h:3"], record=None, forget=[], clear_stopped=False
            )
        assert beats[0] is not None and (beats[0].handled, beats[0].beat_at) == (7, 5)
        assert beats[1:] == [None, None] and again == [None]  # malformed reads as absent
        assert commands == [scale]
        logged = [rec.getMessage() for rec in caplog.records]
        assert sum("h:3" in line for line in logged) == 1, logged  # once, not every pass
        assert sum("control command" in line for line in logged) == 2
        assert SupervisorRecord.decode(r.get(Keys.supervisor("h:1"))) == record
    finally:
        store.close()
