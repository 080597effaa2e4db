"""The record: credentials, calls, recordings, service events and webhook events.

The database, not Redis, is the record. A call row exists (``queued``) before any
request leaves the web side; replies, webhooks and the reconciler only move it forward.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models


class Credential(models.Model):
    """A Telnyx telephony credential created for one user. The SIP password is never stored."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="telephony_credentials"
    )
    telnyx_id = models.CharField(max_length=64, unique=True)
    sip_username = models.CharField(max_length=128)
    tag = models.CharField(max_length=128, db_index=True)
    expires_at = models.DateTimeField()
    token_expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Expiry of the latest token minted for it."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    deleted_at = models.DateTimeField(null=True, blank=True, db_index=True)
    deleted_reason = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "deleted_at", "expires_at"])]

    def __str__(self) -> str:
        return f"{self.sip_username} ({self.user_id})"


class CallStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    DIALING = "dialing", "Dialing"
    RINGING = "ringing", "Ringing"
    ANSWERED = "answered", "Answered"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    NO_ANSWER = "no_answer", "No answer"
    BUSY = "busy", "Busy"
    CANCELED = "canceled", "Canceled"
    UNKNOWN = "unknown", "Unknown"


class HangupSide(models.TextChoices):
    """Who ended the conversation: the agent, the customer, or we (timeouts, failures)."""

    AGENT = "agent", "Agent"
    CUSTOMER = "customer", "Customer"
    SYSTEM = "system", "System"


# A call only moves forward through these ranks; ``unknown`` (no answer from the worker)
# ranks with ``queued`` so that any real news replaces it. ``dialing`` is the agent leg
# being placed, ``ringing`` the customer leg, ``answered`` the customer picking up.
STATUS_RANK: dict[str, int] = {
    CallStatus.QUEUED: 0,
    CallStatus.UNKNOWN: 0,
    CallStatus.DIALING: 1,
    CallStatus.RINGING: 2,
    CallStatus.ANSWERED: 3,
    CallStatus.COMPLETED: 4,
    CallStatus.FAILED: 4,
    CallStatus.NO_ANSWER: 4,
    CallStatus.BUSY: 4,
    CallStatus.CANCELED: 4,
}
TERMINAL = frozenset(
    {
        CallStatus.COMPLETED,
        CallStatus.FAILED,
        CallStatus.NO_ANSWER,
        CallStatus.BUSY,
        CallStatus.CANCELED,
    }
)
UNSETTLED = frozenset({CallStatus.QUEUED, CallStatus.DIALING, CallStatus.UNKNOWN})


def can_move(current: str, new: str) -> bool:
    """True when ``new`` is news for a call in ``current``: never backwards, never past the end."""
    if current in TERMINAL:
        return False
    if new == CallStatus.UNKNOWN:
        return current == CallStatus.QUEUED
    return STATUS_RANK[new] > STATUS_RANK[current]


class Call(models.Model):
    """One outbound call placed by a user through the service: two legs, one conversation.

    The agent leg (``agent_call_control_id``) rings the agent's browser; once the agent
    answers, the customer leg (``call_control_id``, the PSTN number) is dialled linked to
    it and bridged on answer. Each leg's end is recorded so a leg left up after the other
    ended (a worker died before hanging it up) is found and hung up by the reconciler.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="telephony_calls"
    )
    to_number = models.CharField(max_length=20)
    from_number = models.CharField(max_length=20, blank=True)
    status = models.CharField(
        max_length=16, choices=CallStatus.choices, default=CallStatus.QUEUED, db_index=True
    )
    request_id = models.UUIDField(null=True, blank=True)
    deadline = models.DateTimeField(null=True, blank=True)
    # The customer leg (the PSTN call); the agent leg has its own id below.
    call_control_id = models.CharField(max_length=128, blank=True, db_index=True)
    call_session_id = models.CharField(max_length=128, blank=True)
    agent_call_control_id = models.CharField(max_length=128, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    dialed_at = models.DateTimeField(null=True, blank=True, help_text="Agent leg placed.")
    agent_answered_at = models.DateTimeField(null=True, blank=True)
    ringing_at = models.DateTimeField(null=True, blank=True, help_text="Customer leg placed.")
    answered_at = models.DateTimeField(null=True, blank=True, help_text="Customer answered.")
    ended_at = models.DateTimeField(null=True, blank=True)
    agent_ended_at = models.DateTimeField(null=True, blank=True)
    customer_ended_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Talk time: customer answer to end."
    )
    hangup_cause = models.CharField(max_length=64, blank=True)
    hangup_side = models.CharField(max_length=16, blank=True, choices=HangupSide.choices)
    hangup_requested = models.BooleanField(default=False)
    error_code = models.CharField(max_length=64, blank=True)
    # Recording (TELEPHONY_RECORDING): whether Telnyx is recording the conversation now
    # (the softphone's indicator), and the last ``call.recording.error`` Telnyx reported.
    is_recording = models.BooleanField(default=False)
    recording_error = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The reconciler's passes select by status and age.
            models.Index(fields=["status", "updated_at"], name="telephony_call_status_upd"),
            # The analytics page (dashboard/analytics): a date range, per outcome or per agent.
            models.Index(fields=["created_at", "status"], name="telephony_call_created_st"),
            models.Index(fields=["user", "created_at"], name="telephony_call_user_created"),
        ]
        permissions = [("listen_recording", "Can listen to call recordings")]

    def __str__(self) -> str:
        return f"{self.to_number} {self.status}"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def time_to_answer_seconds(self) -> float | None:
        """From the customer leg being placed to the customer answering."""
        if self.ringing_at is None or self.answered_at is None:
            return None
        return round(max(0.0, (self.answered_at - self.ringing_at).total_seconds()), 3)

    def public(self) -> dict[str, Any]:
        """The ``call`` object of the HTTP API."""
        return {
            "id": str(self.id),
            "status": self.status,
            "to": self.to_number,
            "from": self.from_number or None,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "answered_at": self.answered_at.isoformat() if self.answered_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "duration_seconds": self.duration_seconds,
            "hangup_cause": self.hangup_cause or None,
            "error_code": self.error_code or None,
            "ringing_at": self.ringing_at.isoformat() if self.ringing_at else None,
            "time_to_answer_seconds": self.time_to_answer_seconds,
            "hangup_side": self.hangup_side or None,
            "recording": self.is_recording,
        }


class RecordingStatus(models.TextChoices):
    """``pending``: Telnyx saved it, our copy is not verified yet (a worker fetches it).
    ``stored``: our verified copy is in the ``recordings`` storage. ``failed``: it could not
    be fetched (``error_code`` says why). ``deleted``: removed by retention or by hand."""

    PENDING = "pending", "Pending"
    STORED = "stored", "Stored"
    FAILED = "failed", "Failed"
    DELETED = "deleted", "Deleted"


class Recording(models.Model):
    """A recording Telnyx made of a call, and our own verified copy of its file.

    Created from ``call.recording.saved`` (one row per Telnyx recording id, so a replayed
    webhook changes nothing). A worker streams the file into the ``recordings`` storage,
    checking its size and sha256; Telnyx's download links live 10 minutes, so a worker that
    finds them expired asks ``GET /v2/recordings/{id}`` for fresh ones. ``lease_until`` is
    the claim of the worker fetching it now; a lapsed lease means it died and another
    worker resumes.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Null: Telnyx recorded a call we have no row for; kept anyway (never lose a record).
    call = models.ForeignKey(
        Call, null=True, blank=True, on_delete=models.SET_NULL, related_name="recordings"
    )
    telnyx_recording_id = models.CharField(max_length=128, unique=True)
    call_control_id = models.CharField(max_length=128, blank=True)
    call_session_id = models.CharField(max_length=128, blank=True)
    # The spec's call.recording.saved carries no recording id: the leg (and start time)
    # find it through GET /v2/recordings?filter[call_leg_id]=... when fresh links are due.
    call_leg_id = models.CharField(max_length=128, blank=True)
    channels = models.CharField(max_length=8, blank=True, help_text="single or dual")
    format = models.CharField(max_length=8, help_text="mp3 or wav")
    status = models.CharField(
        max_length=16,
        choices=RecordingStatus.choices,
        default=RecordingStatus.PENDING,
        db_index=True,
    )
    started_at = models.DateTimeField(null=True, blank=True, help_text="Recording started.")
    ended_at = models.DateTimeField(null=True, blank=True, help_text="Recording ended.")
    duration_seconds = models.FloatField(null=True, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    storage_name = models.CharField(max_length=255, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    lease_until = models.DateTimeField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    stored_at = models.DateTimeField(null=True, blank=True)
    remote_deleted_at = models.DateTimeField(
        null=True, blank=True, help_text="Telnyx's copy deleted."
    )
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "lease_until"], name="telephony_rec_status")]

    def __str__(self) -> str:
        return f"{self.telnyx_recording_id} {self.status}"


class RecordingListen(models.Model):
    """One fetch of a recording's audio by a user: who listened, and when."""

    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="listens")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(auto_now_add=True)
    byte_range = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.recording_id} {self.user_id} {self.at:%Y-%m-%d %H:%M:%S}"


class ServiceEvent(models.Model):
    """A transition of the service (worker started, crashed, restarted, state changed ...)."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=48, db_index=True)
    state = models.CharField(max_length=16, blank=True)
    supervisor_id = models.CharField(max_length=128, blank=True)
    worker_id = models.CharField(max_length=128, blank=True)
    message = models.TextField(blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("control_service", "Can restart, reset and switch the telephony service")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.kind}"


class WebhookEvent(models.Model):
    """A Telnyx webhook, stored once per event id so that replays are no-ops."""

    event_id = models.CharField(max_length=64, unique=True)
    event_type = models.CharField(max_length=64, db_index=True)
    occurred_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    call = models.ForeignKey(Call, null=True, blank=True, on_delete=models.SET_NULL)
    payload = models.JSONField(default=dict)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"
