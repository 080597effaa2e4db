"""Admin pages for the telephony record: credentials, calls, service and webhook events
(recordings: :mod:`telephony.admin_recordings`).

Everything here is read-only. These rows are written by the service (workers, webhooks,
the reconciler, ``cleanup_credentials``); a hand-edited status or Telnyx id would make
the record lie, and a deleted row would orphan a live credential at Telnyx. No secret
can be shown because none is stored: SIP passwords and login tokens never reach the
database.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from telephony.admin_recordings import RecordingInline, listens_table
from telephony.models import Call, Credential, ServiceEvent, WebhookEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    """View-only: no add, change or delete, for staff and superusers alike."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class CredentialStateFilter(admin.SimpleListFilter):
    """Active, token in use, expired or deleted: what an operator asks first."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("active", "Active"),
            ("in_use", "Token in use"),
            ("expired", "Expired"),
            ("deleted", "Deleted"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        now = timezone.now()
        live = Q(deleted_at__isnull=True)
        filters = {
            "active": live & Q(expires_at__gt=now),
            "in_use": live & Q(expires_at__gt=now, token_expires_at__gt=now),
            "expired": live & Q(expires_at__lte=now),
            "deleted": Q(deleted_at__isnull=False),
        }
        value = self.value()
        return queryset.filter(filters[value]) if value in filters else queryset


@admin.register(Credential)
class CredentialAdmin(ReadOnlyAdmin):
    """Telnyx telephony credentials created for users (never their SIP password)."""

    list_display = (
        "sip_username",
        "user",
        "state",
        "created_at",
        "expires_at",
        "token_expires_at",
        "deleted_at",
        "deleted_reason",
    )
    list_filter = (CredentialStateFilter, "user", "tag", "deleted_reason")
    list_select_related = ("user",)
    search_fields = ("sip_username", "telnyx_id", "user__username", "user__email")
    date_hierarchy = "created_at"
    fields = (
        "user",
        "telnyx_id",
        "sip_username",
        "tag",
        "created_at",
        "expires_at",
        "token_expires_at",
        "deleted_at",
        "deleted_reason",
    )
    readonly_fields = fields

    @admin.display(description="State")
    def state(self, obj: Credential) -> str:
        now = timezone.now()
        if obj.deleted_at:
            return "deleted"
        if obj.expires_at <= now:
            return "expired"
        if obj.token_expires_at and obj.token_expires_at > now:
            return "token in use"
        return "active"


class WebhookEventInline(admin.TabularInline):
    """The Telnyx events that made up a call's history."""

    model = WebhookEvent
    fields = ("event_type", "occurred_at", "received_at", "hangup_source", "event_id")
    readonly_fields = fields
    ordering = ("occurred_at", "received_at")
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Hangup source")
    def hangup_source(self, obj: WebhookEvent) -> str:
        payload = (obj.payload.get("data") or {}).get("payload") or {}
        return str(payload.get("hangup_source") or "-")


@admin.register(Call)
class CallAdmin(ReadOnlyAdmin):
    """Outbound calls placed through the service, with the webhooks that moved them."""

    list_display = (
        "created_at",
        "user",
        "to_number",
        "status",
        "duration_seconds",
        "hangup_cause",
        "error_code",
    )
    list_filter = ("status", "user", "hangup_cause", "error_code")
    list_select_related = ("user",)
    search_fields = (
        "=id",
        "to_number",
        "call_control_id",
        "agent_call_control_id",
        "user__username",
        "user__email",
    )
    date_hierarchy = "created_at"
    fields = (
        "id",
        "user",
        "to_number",
        "from_number",
        "status",
        "error_code",
        "hangup_cause",
        "hangup_side",
        "hangup_requested",
        "created_at",
        "dialed_at",
        "agent_answered_at",
        "ringing_at",
        "answered_at",
        "ended_at",
        "agent_ended_at",
        "customer_ended_at",
        "duration_seconds",
        "is_recording",
        "recording_error",
        "listens",
        "updated_at",
        "deadline",
        "request_id",
        "agent_call_control_id",
        "call_control_id",
        "call_session_id",
    )
    readonly_fields = fields
    inlines = (RecordingInline, WebhookEventInline)

    @admin.display(description="Recording listens")
    def listens(self, obj: Call) -> str:
        return listens_table(obj)


@admin.register(ServiceEvent)
class ServiceEventAdmin(ReadOnlyAdmin):
    """The service's transitions: workers started, crashed, restarted; state changes."""

    list_display = ("created_at", "kind", "state", "supervisor_id", "worker_id", "message")
    list_filter = ("kind", "state")
    search_fields = ("message", "worker_id", "supervisor_id")
    date_hierarchy = "created_at"
    fields = (
        "created_at",
        "kind",
        "state",
        "supervisor_id",
        "worker_id",
        "user",
        "message",
        "data_json",
    )
    readonly_fields = fields

    @admin.display(description="Data")
    def data_json(self, obj: ServiceEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.data, indent=2, sort_keys=True))


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    """Every Telnyx webhook we accepted, once per event id."""

    list_display = ("received_at", "event_type", "occurred_at", "call", "event_id")
    list_filter = ("event_type",)
    list_select_related = ("call",)
    search_fields = ("=event_id", "event_type", "call__call_control_id")
    date_hierarchy = "received_at"
    fields = ("event_id", "event_type", "occurred_at", "received_at", "call", "payload_json")
    readonly_fields = fields

    @admin.display(description="Payload")
    def payload_json(self, obj: WebhookEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2, sort_keys=True))
