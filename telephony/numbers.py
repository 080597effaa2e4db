"""Destination validation, done on the web side before anything is sent to a worker."""

from __future__ import annotations

from collections.abc import Iterable

import phonenumbers
from phonenumbers import PhoneNumberType

from telephony.exceptions import DestinationNotAllowed, InvalidNumber

# Numbers a CRM user may ring: real subscriber lines. Premium rate, shared cost, UAN,
# pagers, "unknown" and the like are refused; they are where toll fraud lives.
ALLOWED_TYPES = frozenset(
    {
        PhoneNumberType.FIXED_LINE,
        PhoneNumberType.MOBILE,
        PhoneNumberType.FIXED_LINE_OR_MOBILE,
        PhoneNumberType.TOLL_FREE,
        PhoneNumberType.VOIP,
        PhoneNumberType.PERSONAL_NUMBER,
    }
)


def validate_destination(raw: object, *, allowed_countries: Iterable[str]) -> str:
    """Return the number in E.164, or raise ``InvalidNumber``/``DestinationNotAllowed``."""
    if not isinstance(raw, str):
        raise InvalidNumber("The number must be a string in E.164 format, like +12025550143.")
    text = raw.strip()
    if not text.startswith("+") or not text[1:].isdigit() or not 8 <= len(text) <= 16:
        raise InvalidNumber("The number must be in E.164 format, like +12025550143.")
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException as e:
        raise InvalidNumber("The number could not be parsed as E.164.") from e
    if not phonenumbers.is_valid_number(number):
        raise InvalidNumber("The number is not a valid phone number.")
    region = phonenumbers.region_code_for_number(number)
    allowed = {c.strip().upper() for c in allowed_countries if c.strip()}
    if region not in allowed:
        raise DestinationNotAllowed(f"Calls to {region or 'this country'} are not allowed.")
    if phonenumbers.number_type(number) not in ALLOWED_TYPES:
        raise DestinationNotAllowed("Calls to premium-rate or special numbers are not allowed.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
