"""The /api/webrtc/ views: thin async views over the service client."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse

from telephony import exceptions as exc
from telephony import presence
from telephony.web.api import answered_on_purpose, api_view, json_body
from telephony.web.client import get_telephony_service
from telephony.web.openapi import openapi_document

service = get_telephony_service()


@api_view("GET", "HEAD", login=False)
async def status_view(request: HttpRequest) -> JsonResponse:
    """Service state from the cached reading: no worker round trip, never cached downstream."""
    state = await service.astatus()
    response = JsonResponse(state.public(), status=200 if state.available else 503)
    response["Cache-Control"] = "no-store"
    if not state.available:
        response["Retry-After"] = "5"
        answered_on_purpose(response)
    return response


@api_view("POST", rate=("credential", "TELEPHONY_RATE_LIMIT_CREDENTIAL"), needs_service=True)
async def credential_view(request: HttpRequest) -> JsonResponse:
    """A WebRTC login token for the logged-in user."""
    credential = await service.agenerate_credential(request.user)
    response = JsonResponse({"credential": credential}, status=201)
    response["Cache-Control"] = "no-store"
    return response


@api_view("POST")
async def presence_view(request: HttpRequest) -> HttpResponse:
    """The page is open (its WebSocket is down): keeps the user's telephony seat."""
    try:
        await presence.atouch(int(request.user.pk or 0))
    except Exception as e:  # Redis unreachable: nothing can be recorded anywhere
        raise exc.ServiceUnavailable(reason="redis_unreachable") from e
    response = HttpResponse(status=204)
    response["Cache-Control"] = "no-store"
    return response


@api_view("POST", rate=("call", "TELEPHONY_RATE_LIMIT_CALL"), needs_service=True)
async def call_create_view(request: HttpRequest) -> JsonResponse:
    """Place a call to ``{"to": "+E164"}``."""
    body = json_body(request)
    if set(body) - {"to"}:
        raise exc.InvalidRequest(f"Unknown field(s): {', '.join(sorted(set(body) - {'to'}))}.")
    if "to" not in body:
        raise exc.InvalidRequest('The field "to" is required.')
    call = await service.amake_call(request.user, body["to"])
    return JsonResponse({"call": call}, status=201)


@api_view("GET")
async def call_detail_view(request: HttpRequest, call_id: str) -> JsonResponse:
    """One of the user's calls (another user's call is not found)."""
    return JsonResponse({"call": await service.acall_status(request.user, call_id)})


@api_view("POST")
async def call_hangup_view(request: HttpRequest, call_id: str) -> JsonResponse:
    """Hang up one of the user's calls."""
    return JsonResponse({"call": await service.ahangup(request.user, call_id)})


@api_view("POST", rate=("record", "TELEPHONY_RATE_LIMIT_CALL"))
async def call_recording_view(request: HttpRequest, call_id: str) -> JsonResponse:
    """Start or stop recording one of the user's calls: ``{"recording": true|false}``."""
    body = json_body(request)
    if set(body) != {"recording"} or not isinstance(body["recording"], bool):
        raise exc.InvalidRequest('The body must be {"recording": true} or {"recording": false}.')
    call = await service.arecord(request.user, call_id, recording=body["recording"])
    return JsonResponse({"call": call})


@api_view("GET", login=False)
async def openapi_view(request: HttpRequest) -> JsonResponse:
    """The OpenAPI 3 description of this API."""
    return JsonResponse(openapi_document(request.build_absolute_uri("/")))
