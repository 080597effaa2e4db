"""What ``TELEPHONY_RECORDING`` asks of a call, read when used (tests change the settings).

Shared by the worker (which tells Telnyx) and the web side (which answers the on-demand
toggle and sets the recording flag the softphone shows). Telnyx records the customer leg,
dual channel: the customer on one channel, the bridged agent on the other.

- ``off``: nothing is recorded.
- ``all``: every conversation, from the customer's answer. Telnyx's Dial takes ``record``
  (``record-from-answer``) but has no consent beep; only ``record_start`` has
  ``play_beep``. So without ``TELEPHONY_RECORDING_BEEP`` the customer leg is dialled with
  ``record``, and with it the worker sends ``record_start`` when the customer answers.
- ``on_demand``: the agent starts and stops it (``POST /api/webrtc/call/<id>/recording``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

OFF, ALL, ON_DEMAND = "off", "all", "on_demand"
CHANNELS = "dual"


def recording_policy() -> str:
    """``off``, ``all`` or ``on_demand`` (settings.py refuses anything else at start-up)."""
    return str(getattr(settings, "TELEPHONY_RECORDING", OFF) or OFF)


def recording_format() -> str:
    """``mp3`` or ``wav``."""
    return str(getattr(settings, "TELEPHONY_RECORDING_FORMAT", "mp3") or "mp3")


def recording_beep() -> bool:
    """Whether Telnyx plays its consent beep when a recording starts."""
    return bool(getattr(settings, "TELEPHONY_RECORDING_BEEP", False))


def records_on_dial() -> bool:
    """``all`` without the beep: the customer leg's Dial carries ``record``."""
    return recording_policy() == ALL and not recording_beep()


def starts_on_answer() -> bool:
    """``all`` with the beep: ``record_start`` (``play_beep``) when the customer answers."""
    return recording_policy() == ALL and recording_beep()


def dial_record_options() -> dict[str, Any]:
    """The Dial fields that record the customer leg from its answer, or none."""
    if not records_on_dial():
        return {}
    return {
        "record": "record-from-answer",
        "record_channels": CHANNELS,
        "record_format": recording_format(),
    }
