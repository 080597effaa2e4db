"""``POST /api/webrtc/webhooks/telnyx``: Telnyx's signed call webhooks.

Thin on purpose: read a bounded body, verify it, hand the event to
:mod:`telephony.web.webhooks` (which records it and forwards it to the workers without
waiting: a webhook is acknowledged even when no worker is alive). Refusals answer 400
(413 for an oversized body) with ``{"error", "code"}`` and store nothing; accepted
events, replays included, answer 204. Never imports the Telnyx SDK.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from telephony.exceptions import PayloadTooLarge, WebhookRejected
from telephony.web.api import error_response, plain_error
from telephony.web.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    areceive_event,
    max_body_bytes,
    parse_event,
    verify_signature,
)

logger = logging.getLogger(__name__)


def _body(request: HttpRequest) -> bytes:
    limit = max_body_bytes()
    length = request.META.get("CONTENT_LENGTH") or ""
    if length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"The body must be at most {limit} bytes.", reason="too_large")
    try:
        body = request.body
    except RequestDataTooBig:
        raise PayloadTooLarge(reason="too_large") from None
    if len(body) > limit:
        raise PayloadTooLarge(f"The body must be at most {limit} bytes.", reason="too_large")
    return body


@csrf_exempt
async def telnyx_webhook(request: HttpRequest) -> HttpResponse:
    """Verify, store once, apply, forward; 204 for anything Telnyx signed, replays included."""
    if request.method != "POST":
        response = plain_error(405, "method_not_allowed", "Method not allowed.")
        response["Allow"] = "POST"
        return response
    try:
        body = _body(request)
        verify_signature(
            body,
            signature=request.headers.get(SIGNATURE_HEADER),
            timestamp=request.headers.get(TIMESTAMP_HEADER),
            public_key=str(settings.TELNYX_PUBLIC_KEY or ""),
        )
        event = parse_event(body)
    except WebhookRejected as e:
        logger.warning(
            "[Telephony Webhooks] refused a webhook from %s: %s (%s)",
            request.META.get("REMOTE_ADDR", "?"), e.code, e.reason,
        )  # fmt: skip
        return error_response(e)
    await areceive_event(event)
    return HttpResponse(status=204)
