"""Recordings in the admin: on each call's page (with a player and who listened) and a
read-only list of their own, filtered by status.

The player's source is :mod:`telephony.web.recording_views`: our own verified copy, for
users holding ``telephony.listen_recording`` only, every listen logged. Others see the
recording's facts but no player. ``preload="none"``: opening the page fetches nothing
and logs no listen; pressing play does.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import BooleanField, QuerySet, Value
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from telephony.models import Call, Recording, RecordingListen, RecordingStatus

LISTEN_PERMISSION = "telephony.listen_recording"
RECORDING_FIELDS = (
    "status",
    "player",
    "format_channels",
    "duration",
    "size",
    "sha256",
    "started_at",
    "stored_at",
    "remote_deleted_at",
    "error_code",
)


class NoWrites:
    """Rows written by the service only: no add, change or delete in the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RecordingFacts:
    """What both recording views show: the player, the format, sizes and times."""

    def recordings_for(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        # The permission rides on each row: the display methods get no request.
        allowed = request.user.has_perm(LISTEN_PERMISSION)
        return queryset.annotate(can_listen=Value(allowed, output_field=BooleanField()))

    @admin.display(description="Listen")
    def player(self, obj: Recording) -> str:
        if obj.status != RecordingStatus.STORED or not obj.storage_name:
            return "-"
        if not getattr(obj, "can_listen", False):
            return "Needs the permission to listen to call recordings"
        url = reverse("telephony:recording-audio", args=[obj.id])
        return format_html(
            '<audio controls preload="none" src="{}" data-tel-recording="{}">'
            '<a href="{}">Play</a></audio>',
            url,
            obj.id,
            url,
        )

    @admin.display(description="Format")
    def format_channels(self, obj: Recording) -> str:
        return " ".join(part for part in (obj.format, obj.channels) if part) or "-"

    @admin.display(description="Duration")
    def duration(self, obj: Recording) -> str:
        return "-" if obj.duration_seconds is None else f"{obj.duration_seconds:.1f} s"

    @admin.display(description="Size")
    def size(self, obj: Recording) -> str:
        return "-" if obj.size_bytes is None else str(filesizeformat(obj.size_bytes))


class RecordingInline(NoWrites, RecordingFacts, admin.TabularInline):
    """A call's recordings, on its page, playable by those who may listen."""

    model = Recording
    fields = RECORDING_FIELDS
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return self.recordings_for(request, super().get_queryset(request))


class RecordingListenInline(NoWrites, admin.TabularInline):
    """Who listened to a recording, and when."""

    model = RecordingListen
    fields = ("at", "user", "byte_range")
    readonly_fields = fields
    extra = 0
    can_delete = False


def listens_table(call: Call) -> SafeString | str:
    """Every listen to any of the call's recordings, newest first: who and when."""
    listens = (
        RecordingListen.objects.filter(recording__call=call)
        .select_related("user", "recording")
        .order_by("-at")[:200]
    )
    rows = [
        (
            f"{listen.at:%Y-%m-%d %H:%M:%S %Z}",
            str(listen.user or "(deleted user)"),
            listen.recording_id,
        )
        for listen in listens
    ]
    if not rows:
        return "Nobody has listened yet."
    body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
    return format_html(
        '<table class="tel-listens"><thead><tr><th scope="col">When</th>'
        '<th scope="col">Who</th><th scope="col">Recording</th></tr></thead>'
        "<tbody>{}</tbody></table>",
        body,
    )


@admin.register(Recording)
class RecordingAdmin(NoWrites, RecordingFacts, admin.ModelAdmin):
    """Every recording Telnyx made of our calls, and our copy of it."""

    list_display = ("created_at", "call", "status", "format_channels", "duration", "size")
    list_filter = ("status", "format")
    list_select_related = ("call",)
    search_fields = ("=id", "telnyx_recording_id", "call_control_id", "=call__id")
    date_hierarchy = "created_at"
    fields = (
        "id",
        "call",
        "telnyx_recording_id",
        *RECORDING_FIELDS,
        "ended_at",
        "storage_name",
        "attempts",
        "created_at",
        "deleted_at",
    )
    readonly_fields = fields
    inlines = (RecordingListenInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return self.recordings_for(request, super().get_queryset(request))
