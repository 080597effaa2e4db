"""Destination validation with phonenumbers, before anything is sent."""

from __future__ import annotations

import pytest

from telephony.exceptions import DestinationNotAllowed, InvalidNumber
from telephony.numbers import validate_destination

US_CA = ["US", "CA"]


@pytest.mark.parametrize("raw", ["+12025550143", " +12025550143 ", "+14165550199", "+18005550100"])
def test_numbers__accepts_e164_in_allowed_countries(raw: str) -> None:
    assert validate_destination(raw, allowed_countries=US_CA) == raw.strip()


@pytest.mark.parametrize(
    "raw",
    [
        "2025550143",
        "+1 202 555 0143",
        "+1-202-555-0143",
        "",
        "+",
        "+123",
        "abc",
        "+1202555014399999",
        12025550143,
        None,
        ["+12025550143"],
    ],
)
def test_numbers__refuses_what_is_not_e164(raw: object) -> None:
    with pytest.raises(InvalidNumber):
        validate_destination(raw, allowed_countries=US_CA)


def test_numbers__refuses_invalid_numbers() -> None:
    with pytest.raises(InvalidNumber):
        validate_destination("+11005550143", allowed_countries=US_CA)


def test_numbers__refuses_countries_not_allowed() -> None:
    with pytest.raises(DestinationNotAllowed, match="GB"):
        validate_destination("+442071838750", allowed_countries=US_CA)
    assert validate_destination("+442071838750", allowed_countries=["GB"]) == "+442071838750"


def test_numbers__refuses_premium_rate() -> None:
    with pytest.raises(DestinationNotAllowed, match="premium"):
        validate_destination("+19005550123", allowed_countries=US_CA)
