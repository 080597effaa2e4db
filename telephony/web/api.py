"""What every ``/api/`` answer has in common: JSON errors with a machine code, never HTML.

``api_view`` wraps a view: method check, login check, rate limit, and the mapping of
:class:`~telephony.exceptions.TelephonyError` to its status and code. ``ApiErrorMiddleware``
is the catch-all behind it: any non-JSON error under ``/api/`` (an unknown path, a debug
404 or 500 page, a crash) becomes a JSON error, so no API client ever gets HTML or a
traceback.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.contrib.auth import middleware as auth_middleware
from django.core.cache import caches
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from telephony import exceptions as exc
from telephony.state import state_cache

logger = logging.getLogger(__name__)

MAX_JSON_BODY = 4096
API_PREFIX = "/api/"

View = Callable[..., Awaitable[HttpResponseBase]]  # streaming answers too
# What `path()` accepts (django-stubs types views as sync; async views are fine at runtime).
RoutedView = Callable[..., Any]


def error_response(err: exc.TelephonyError) -> JsonResponse:
    """The JSON body and headers for one service error."""
    response = JsonResponse({"error": err.message, "code": err.code}, status=err.status)
    if err.retry_after is not None and err.status in (429, 503):
        response["Retry-After"] = str(max(1, math.ceil(err.retry_after)))
    response["Cache-Control"] = "no-store"
    return answered_on_purpose(response)


def answered_on_purpose(response: JsonResponse) -> JsonResponse:
    """Mark an error answer of the contract as logged (the API logs it at INFO with its
    reason) so Django's ``log_response`` makes no ERROR record of it: an outage answers
    many 503s, and each record (later dropped by a filter) cost CPU per answer."""
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def plain_error(status: int, code: str, message: str) -> JsonResponse:
    response = JsonResponse({"error": message, "code": code}, status=status)
    response["Cache-Control"] = "no-store"
    return response


def json_body(request: HttpRequest) -> dict[str, Any]:
    """The request's JSON object, bounded in size; InvalidRequest otherwise."""
    length = request.META.get("CONTENT_LENGTH") or "0"
    if not length.isdigit() or int(length) > MAX_JSON_BODY:
        raise exc.InvalidRequest(
            f"The request body must be a JSON object under {MAX_JSON_BODY} bytes."
        )
    try:
        raw = request.body
    except RequestDataTooBig as e:
        raise exc.InvalidRequest("The request body is too large.") from e
    if len(raw) > MAX_JSON_BODY:
        raise exc.InvalidRequest(
            f"The request body must be a JSON object under {MAX_JSON_BODY} bytes."
        )
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError) as e:
        raise exc.InvalidRequest("The request body is not valid JSON.") from e
    if not isinstance(data, dict):
        raise exc.InvalidRequest("The request body must be a JSON object.")
    return data


async def check_rate(scope: str, user_id: int, rate: str) -> None:
    """Fixed-window limit in Django's cache (Redis); raises RateLimited with retry_after.

    A cache failure lets the request through: the state check that follows answers 503
    when Redis is really gone, and a rate limiter must never be why calling is down.
    """
    count, _, per = rate.partition("/")
    window = {"s": 1, "m": 60, "h": 3600, "d": 86400}.get(per[:1] or "m", 60)
    now = time.time()
    slot = int(now // window)
    key = f"ratelimit:{scope}:{user_id}:{slot}"
    cache = caches["default"]
    try:
        await cache.aadd(key, 0, timeout=window + 1)
        used = await cache.aincr(key)
    except Exception as e:  # any cache failure: fail open, loudly
        logger.warning("[Telephony API] rate limit check skipped: %s", type(e).__name__)
        return
    if used > int(count):
        raise exc.RateLimited(retry_after=window - (now % window))


def api_view(
    *methods: str,
    login: bool = True,
    rate: tuple[str, str] | None = None,
    needs_service: bool = False,
) -> Callable[[View], RoutedView]:
    """Decorate an async API view with method, login and rate checks and JSON errors.

    ``rate`` is ``(scope, setting name)``, e.g. ``("call", "TELEPHONY_RATE_LIMIT_CALL")``.
    ``needs_service`` answers 503 right after the login and CSRF checks when the service
    is known to be unavailable: the fastest possible "no", before any other work.
    """

    def decorate(view: View) -> RoutedView:
        @functools.wraps(view)
        async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            try:
                if request.method not in methods:
                    response = plain_error(405, "method_not_allowed", "Method not allowed.")
                    response["Allow"] = ", ".join(methods)
                    return response
                if login:
                    user: Any = getattr(request, PRELOADED_USER, None) or await request.auser()
                    if not user.is_authenticated:
                        raise exc.NotAuthenticated()
                    request.user = user
                    if request.method not in ("GET", "HEAD", "OPTIONS"):
                        # After the login check, so anonymous callers get 401, not 403.
                        rejected = _csrf.process_view(request, None, (), {})  # type: ignore[arg-type]
                        if rejected is not None:
                            return rejected
                    if needs_service:
                        state = await state_cache.aget()
                        if not state.available:
                            raise exc.ServiceUnavailable(reason=state.reason or state.status)
                    if rate is not None:
                        await check_rate(rate[0], int(user.pk), str(getattr(settings, rate[1])))
                return await view(request, *args, **kwargs)
            except exc.TelephonyError as e:
                if e.status >= 500:
                    logger.info(
                        "[Telephony API] %s %s -> %s (%s)",
                        request.method,
                        request.path,
                        e.code,
                        e.reason,
                    )
                return error_response(e)

        return csrf_exempt(wrapper)

    return decorate


_csrf = CsrfViewMiddleware(lambda request: HttpResponse())
PRELOADED_USER = "_telephony_user"


class AuthenticationMiddleware(auth_middleware.AuthenticationMiddleware):
    """Django's, plus: for an API request the user is read right here, in the thread hop
    Django's middleware takes anyway, so that ``api_view``'s login check needs no hop of
    its own (the session and the user are database reads: ``request.auser()`` would make
    two more hops). Other requests keep Django's lazy ``request.user``."""

    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)
        if request.path.startswith(API_PREFIX):
            try:
                setattr(request, PRELOADED_USER, auth_middleware.get_user(request))
            except Exception:  # the database, say: api_view reads it again, and an error
                # there is answered as JSON (an exception here would be Django's HTML 500)
                logger.debug("[Telephony API] user not read in the middleware", exc_info=True)


class ApiErrorMiddleware:
    """Turns any non-JSON error under /api/ into ``{"error", "code"}``: never HTML."""

    sync_capable = True
    async_capable = True

    CODES = {
        400: "invalid_request",
        401: "not_authenticated",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        413: "invalid_request",
        429: "rate_limited",
    }

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return self._fix(request, self.get_response(request))

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        return self._fix(request, await self.get_response(request))

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith(API_PREFIX):
            return None
        logger.error(
            "[Telephony API] %s %s crashed", request.method, request.path, exc_info=exception
        )
        return plain_error(500, "internal_error", "Something went wrong on our side.")

    def _fix(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if (
            request.path.startswith(API_PREFIX)
            and response.status_code >= 400
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            status = response.status_code
            code = self.CODES.get(status, "internal_error" if status >= 500 else "invalid_request")
            phrase = (
                HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
            )
            fixed = plain_error(status, code, f"{phrase}.")
            for header in ("Allow", "Retry-After"):
                if header in response:
                    fixed[header] = response[header]
            return fixed
        return response


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: JSON under /api/, Django's page elsewhere."""
    if request.path.startswith(API_PREFIX):
        return plain_error(
            403, "forbidden", "CSRF check failed: send the csrftoken cookie's value in X-CSRFToken."
        )
    from django.views.csrf import csrf_failure as default

    return default(request, reason=reason)
