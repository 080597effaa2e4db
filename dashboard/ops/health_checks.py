"""A django-health-check (4.x) check for the telephony service.

Optional: only imported when ``health_check`` is installed (``pip install
django-health-check``); ``config/urls.py`` then mounts ``/ht/`` with it. It reads the
cached service state, like ``/api/webrtc/status``: a Redis read at most every
``TELEPHONY_STATE_CACHE_TTL``, never a round trip to a worker, so a load balancer
probing it often costs nothing and a slow worker cannot make it time out.
"""

from __future__ import annotations

import dataclasses

from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable

from telephony.state import state_cache


@dataclasses.dataclass
class TelephonyHealthCheck(HealthCheck):
    """Fails while the telephony service is not available (``ready`` or ``degraded``).

    ``degraded`` passes: calls still work, and django-health-check counts a warning as
    a failure too. The message names the state and its reason, never a secret.
    """

    async def run(self) -> None:
        state = await state_cache.aget()
        if not state.available:
            reason = f" ({state.reason})" if state.reason else ""
            raise ServiceUnavailable(f"telephony is {state.status}{reason}")
