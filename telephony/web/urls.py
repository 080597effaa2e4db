"""URLs under /api/webrtc/."""

from django.urls import path

from telephony.web import recording_views, views, webhook_views

app_name = "telephony"

urlpatterns = [
    path("status", views.status_view, name="status"),
    path("credential", views.credential_view, name="credential"),
    path("presence", views.presence_view, name="presence"),
    path("call", views.call_create_view, name="call"),
    path("call/<str:call_id>", views.call_detail_view, name="call-detail"),
    path("call/<str:call_id>/hangup", views.call_hangup_view, name="call-hangup"),
    path("call/<str:call_id>/recording", views.call_recording_view, name="call-recording"),
    path(
        "recordings/<uuid:recording_id>/audio",
        recording_views.recording_audio_view,
        name="recording-audio",
    ),
    path("openapi.json", views.openapi_view, name="openapi"),
    path("webhooks/telnyx", webhook_views.telnyx_webhook, name="webhook"),
]
