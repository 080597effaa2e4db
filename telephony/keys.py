"""Every Redis key the service uses, built in this one place.

All keys live under ``TELEPHONY_REDIS_PREFIX`` (read when a key is built, never at
import, so each test can use a prefix of its own). Nothing else formats a key: grep
for the prefix finds this module only. The channel layer's keys are its own, under
``<prefix>:asgi`` (see :func:`telephony.layers.channel_layers_config`).
"""

from __future__ import annotations

from django.conf import settings


class Keys:
    """The key names, one method each, with what the key holds."""

    @staticmethod
    def prefix() -> str:
        return str(settings.TELEPHONY_REDIS_PREFIX)

    @classmethod
    def everything(cls) -> str:
        """A SCAN pattern for every key of the service (tests flush their prefix with it)."""
        return f"{cls.prefix()}:*"

    @classmethod
    def workers(cls) -> str:
        """ZSET worker_id -> last heartbeat (epoch ms)."""
        return f"{cls.prefix()}:workers"

    @classmethod
    def worker(cls, worker_id: str) -> str:
        """JSON :class:`~telephony.protocol.Heartbeat` of one worker, TTL the heartbeat
        timeout. ``worker("*")`` is a SCAN pattern for all of them."""
        return f"{cls.prefix()}:worker:{worker_id}"

    @classmethod
    def supervisors(cls) -> str:
        """ZSET supervisor_id -> last update (epoch ms)."""
        return f"{cls.prefix()}:supervisors"

    @classmethod
    def supervisor(cls, supervisor_id: str) -> str:
        """JSON :class:`~telephony.protocol.SupervisorRecord`, TTL the heartbeat timeout."""
        return f"{cls.prefix()}:supervisor:{supervisor_id}"

    @classmethod
    def supervisors_last(cls) -> str:
        """HASH supervisor_id -> its last record, no TTL: tells a lost supervisor (record
        expired, never said it stopped) from one that stopped on purpose (entry removed)."""
        return f"{cls.prefix()}:supervisors:last"

    @classmethod
    def last_status(cls) -> str:
        """The last service status a supervisor announced (to record each change once)."""
        return f"{cls.prefix()}:state:last"

    @classmethod
    def stopped(cls) -> str:
        """Set when the last supervisor stopped on purpose; removed when one starts."""
        return f"{cls.prefix()}:stopped"

    @classmethod
    def claim(cls, request_id: str) -> str:
        """SET NX marker: this request_id was taken by one worker, once."""
        return f"{cls.prefix()}:claim:{request_id}"

    @classmethod
    def reply(cls, request_id: str) -> str:
        """LIST holding the one reply to a request, the request's ``reply_to``: the worker
        pushes it (with a TTL just past the deadline), the caller pops it with BLPOP. A
        reply nobody popped expires with the key."""
        return f"{cls.prefix()}:reply:{request_id}"

    @classmethod
    def credentials_version(cls) -> str:
        """Counter bumped at every change to a credential's life (created, deleted): a
        worker's cached "active credential of user X" is good while it is unchanged."""
        return f"{cls.prefix()}:credentials:version"

    @classmethod
    def breaker_forced(cls) -> str:
        """Operator maintenance switch for the provider circuit: "open" or "closed"."""
        return f"{cls.prefix()}:breaker:forced"

    @classmethod
    def metric_requests(cls) -> str:
        """HASH "op|outcome" -> requests handled by all workers, ever (Prometheus counter)."""
        return f"{cls.prefix()}:metrics:requests"

    @classmethod
    def metric_latency(cls) -> str:
        """HASH "op|bucket" -> count, "op|sum", "op|count": request latency histogram."""
        return f"{cls.prefix()}:metrics:latency"

    @classmethod
    def control(cls, supervisor_id: str) -> str:
        """LIST of JSON :class:`~telephony.protocol.ControlCommand` for one supervisor."""
        return f"{cls.prefix()}:control:{supervisor_id}"

    @classmethod
    def lock(cls, name: str) -> str:
        """A compare-and-delete lock (``reconciler``, ``credential_hygiene``,
        ``credential:<user_id>``), its value the holder's token."""
        return f"{cls.prefix()}:lock:{name}"

    @classmethod
    def hygiene_due(cls) -> str:
        """Set (with a TTL of the hygiene interval) by the worker that ran the last
        credential clean-up: while it exists, no other worker runs one."""
        return f"{cls.prefix()}:credential_hygiene"

    @classmethod
    def presence(cls) -> str:
        """ZSET user_id -> when a page of theirs was last seen (epoch ms), the seats'
        presence; member ``since``: when tracking began (see ``telephony.presence``)."""
        return f"{cls.prefix()}:presence"

    @classmethod
    def seat_reservations(cls) -> str:
        """ZSET request_id -> until when (epoch ms) a seat is reserved for a credential being
        created at Telnyx right now; counted as taken, dropped when done or past that time."""
        return f"{cls.prefix()}:seats:reserved"
