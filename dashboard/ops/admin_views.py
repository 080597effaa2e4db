"""The "Telephony health" page inside the Django admin, its JSON and its actions.

Mounted under ``/admin/telephony/`` by ``dashboard.ops.admin_urls``; every view is wrapped in
``admin.site.admin_view``, so anyone who is not active staff is sent to the admin login
(the JSON too), responses are never cached and POSTs are CSRF-checked.

Actions (rolling restart, reset, the provider circuit switch) also need the permission
``telephony.control_service``; without it they answer 403 and do nothing. Each asks for
a confirmation first: a JavaScript ``confirm()`` on the page, or, without JavaScript, a
confirmation page like the admin's delete confirmation. The control functions write the
audit event naming the user.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse

from dashboard.ops.health import health_snapshot
from telephony import control
from telephony import exceptions as exc

logger = logging.getLogger(__name__)

CONTROL_PERMISSION = "telephony.control_service"
POLL_MS = 2500  # polling while the WebSocket is down
WS_PATH = "/ws/webrtc/"


@dataclass(frozen=True)
class Action:
    """One operator action: what the confirmation says and what it does."""

    title: str
    question: str
    detail: str
    button: str
    done: str
    run: Callable[[int], list[str]]


ACTIONS: dict[str, Action] = {
    "restart": Action(
        title="Rolling restart",
        question="Restart every telephony worker?",
        detail="Each supervisor starts a replacement for one worker at a time and stops the "
        "old one only once the new one serves; the old one finishes its requests first. "
        "From the failed state it resets first.",
        button="Yes, restart the workers",
        done="Rolling restart requested",
        run=lambda uid: control.request_restart(user_id=uid),
    ),
    "reset": Action(
        title="Reset",
        question="Reset the restart window?",
        detail="Supervisors forget past crashes; a supervisor that gave up (failed) starts "
        "its missing workers again.",
        button="Yes, reset",
        done="Reset requested",
        run=lambda uid: control.request_reset(user_id=uid),
    ),
    "breaker_open": Action(
        title="Force the provider circuit open",
        question="Refuse every call to the phone provider?",
        detail="For maintenance or a provider outage: the service turns unavailable at "
        "once and callers get a clean 503 until the circuit is set back to automatic.",
        button="Yes, force it open",
        done="Provider circuit forced open",
        run=lambda uid: control.force_breaker("open", user_id=uid),
    ),
    "breaker_closed": Action(
        title="Force the provider circuit closed",
        question="Ignore provider failures?",
        detail="Workers keep calling the provider whatever its failure rate, until the "
        "circuit is set back to automatic.",
        button="Yes, force it closed",
        done="Provider circuit forced closed",
        run=lambda uid: control.force_breaker("closed", user_id=uid),
    ),
    "breaker_auto": Action(
        title="Provider circuit back to automatic",
        question="Let the circuit breakers decide again?",
        detail="Each worker's breaker opens and closes by the provider's failure and "
        "slow-call rates again.",
        button="Yes, back to automatic",
        done="Provider circuit back to automatic",
        run=lambda uid: control.force_breaker(None, user_id=uid),
    ),
}


def can_control(user: Any) -> bool:
    """May this user restart, reset and switch the service?"""
    return bool(user.is_active and user.is_staff and user.has_perm(CONTROL_PERMISSION))


def health_page(request: HttpRequest) -> HttpResponse:
    """The page: rendered on the server (it works without JavaScript), then kept live by
    ``static/dashboard/health.js`` from the JSON endpoint."""
    snapshot = health_snapshot(can_control=can_control(request.user))
    context = {
        **admin.site.each_context(request),
        "title": "Telephony health",
        "snapshot": snapshot,
        "actions": ACTIONS,
        "json_url": reverse("telephony_health:data"),
        "ws_path": WS_PATH,
        "poll_ms": POLL_MS,
    }
    return TemplateResponse(request, "dashboard/health.html", context)


def health_data(request: HttpRequest) -> JsonResponse:
    """The page's data as JSON (shape: docs/OBSERVABILITY.md)."""
    response = JsonResponse(health_snapshot(can_control=can_control(request.user)))
    response["Cache-Control"] = "no-store"
    return response


def health_action(request: HttpRequest, action: str) -> HttpResponse:
    """Confirm (GET, or POST without ``confirmed=yes``), then do it (POST) and go back."""
    spec = ACTIONS.get(action)
    if spec is None:
        raise Http404("No such action.")
    if not can_control(request.user):
        logger.warning(
            "[Telephony Health] action=%s refused: user=%s lacks %s",
            action, request.user.get_username(), CONTROL_PERMISSION,
        )  # fmt: skip
        raise PermissionDenied(f"You need the permission {CONTROL_PERMISSION}.")
    page = reverse("telephony_health:page")
    if request.method != "POST" or request.POST.get("confirmed") != "yes":
        context = {
            **admin.site.each_context(request),
            "title": spec.title,
            "action": spec,
            "action_name": action,
            "page_url": page,
        }
        return TemplateResponse(request, "dashboard/health_confirm.html", context)
    user_id = request.user.pk
    assert isinstance(user_id, int)  # can_control() admitted a saved, active staff user
    try:
        targets = spec.run(user_id)
    except exc.ServiceUnavailable as e:
        logger.warning(
            "[Telephony Health] action=%s by user=%s failed: %s",
            action, request.user.get_username(), e.reason,
        )  # fmt: skip
        messages.error(request, f"{spec.title} failed: {e.message}")
        return redirect(page)
    logger.info(
        "[Telephony Health] action=%s by user=%s (id=%s) reached=%s",
        action, request.user.get_username(), user_id, ",".join(targets) or "none",
    )  # fmt: skip
    if action.startswith("breaker_"):
        messages.success(request, f"{spec.done}; workers apply it at their next heartbeat.")
    elif targets:
        n = len(targets)
        messages.success(request, f"{spec.done}; {n} supervisor{'s' if n != 1 else ''} told.")
    else:
        messages.warning(request, f"{spec.title}: no live supervisor was reached.")
    return redirect(page)
