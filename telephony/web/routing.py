"""Routes for the ASGI router in ``config.asgi``.

WebSocket routes serve browsers. Channel routes are deliberately empty: the ``telephony``
channel is consumed by ``telephony_worker``, not by ``runworker``, because the plain
Channels worker prefetches without bound and handles one message at a time.
"""

from __future__ import annotations

from typing import Any

from django.urls import URLPattern, path

from telephony.web.consumers import TelephonyConsumer

websocket_urlpatterns: list[URLPattern] = [
    path("ws/webrtc/", TelephonyConsumer.as_asgi()),
]
channel_routes: dict[str, Any] = {}
