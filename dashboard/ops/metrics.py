"""``GET /metrics``: the Prometheus exposition of :mod:`telephony.web.metrics`.

Access: a client address in ``TELEPHONY_METRICS_ALLOWED_IPS`` (addresses or networks;
default loopback only), or ``Authorization: Bearer <TELEPHONY_METRICS_TOKEN>`` when a
token is set. Anything else gets a plain-text 403. Settings are read per request.

The address is ``REMOTE_ADDR`` as the ASGI server reports it. Behind a reverse proxy
that is the proxy (or, with daphne's ``--proxy-headers``, whatever ``X-Forwarded-For``
says): there, use the token or let the proxy guard the path.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_http_methods
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from telephony.web.metrics import registry

logger = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(allowed: tuple[str, ...]) -> tuple[Network, ...]:
    nets = []
    for item in allowed:
        item = item.strip()
        if not item:
            continue
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            logger.warning("[Telephony Metrics] ignoring bad TELEPHONY_METRICS_ALLOWED_IPS entry")
    return tuple(nets)


def ip_allowed(addr: str, allowed: list[str] | tuple[str, ...]) -> bool:
    """Is ``addr`` inside one of the ``allowed`` addresses or networks?"""
    try:
        ip = ipaddress.ip_address(addr.strip())
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in _networks(tuple(allowed)))


def token_ok(request: HttpRequest, token: str) -> bool:
    """A ``Bearer`` token equal to ``token`` (compared in constant time); never when unset."""
    if not token:
        return False
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)


def metrics_allowed(request: HttpRequest) -> bool:
    """The token opens /metrics from anywhere; otherwise the client address decides."""
    allowed = list(getattr(settings, "TELEPHONY_METRICS_ALLOWED_IPS", ["127.0.0.1", "::1"]))
    token = str(getattr(settings, "TELEPHONY_METRICS_TOKEN", ""))
    return token_ok(request, token) or ip_allowed(request.META.get("REMOTE_ADDR", ""), allowed)


@require_http_methods(["GET", "HEAD"])
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format, read from Redis and the database at this scrape."""
    if not metrics_allowed(request):
        logger.info("[Telephony Metrics] refused client=%s", request.META.get("REMOTE_ADDR", "?"))
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain; charset=utf-8")
    response = HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
