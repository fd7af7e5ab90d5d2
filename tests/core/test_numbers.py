import re

import pytest
from phonenumbers import ValidationResult

from gateway.core import numbers
from gateway.core.numbers import EXAMPLE, InvalidNumber, e164, is_e164, problem


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("+14155550100", None),
        ("+15005550006", None),  # Twilio's test numbers are possible, if not valid
        ("+447700900123", None),
        ("+12005550100", None),
        ("+1200000049", "too short for its country"),
        (None, "a phone number is required"),
        ("", "a phone number is required"),
        (14155550100, "a phone number is required"),
        ("14155550100", "it must start with + and the country code"),
        ("+", "it is not a phone number"),
        ("+abc", "it is not a phone number"),
        ("+999123456789", "it is not a phone number"),
        ("+1415555", "too short for its country"),
        ("+1415555010000", "too long for its country"),
        ("+1 415 555 0100", "write it without spaces, punctuation or leading zeros"),
        ("+1(415)5550100", "write it without spaces, punctuation or leading zeros"),
        ("+4407700900123", "write it without spaces, punctuation or leading zeros"),
    ],
)
def test_problem(value, reason):
    assert problem(value) == reason
    assert is_e164(value) is (reason is None)


def test_e164_returns_the_number_or_names_the_field():
    assert e164(EXAMPLE) == EXAMPLE
    with pytest.raises(InvalidNumber) as info:
        e164("555-0100", "to_number")
    assert str(info.value) == (
        "to_number '555-0100' is not an E.164 number such as +14155550100: it must start with + and the country code"
    )
    with pytest.raises(InvalidNumber, match=r"^number None is not"):
        e164(None)


def test_every_impossible_length_has_its_own_reason():
    """So the fallback reason is never reached: each result phonenumbers can give is named."""
    from gateway.core.numbers import _WHY

    possible = {ValidationResult.IS_POSSIBLE, ValidationResult.IS_POSSIBLE_LOCAL_ONLY}
    results = {value for name, value in vars(ValidationResult).items() if name.isupper()}
    assert results - possible == set(_WHY)


@pytest.mark.parametrize(
    ("typed", "region", "expected"),
    [
        ("+14155550100", "US", "+14155550100"),
        ("+1 415 555 0100", "US", "+14155550100"),
        ("(415) 555-0100", "US", "+14155550100"),
        ("415-555-0100", "US", "+14155550100"),
        ("  4155550100 ", "US", "+14155550100"),
        ("1 415 555 0100", "US", "+14155550100"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("(416) 555-0100", "CA", "+14165550100"),
        ("+44 20 7946 0958", "US", "+442079460958"),  # a country code wins over the region
    ],
)
def test_from_typed(typed, region, expected):
    assert numbers.from_typed(typed, region) == expected


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "enter a phone number"),
        ("hello", "'hello' is not a phone number such as +14155550100 or (415) 555-0100"),
        ("1-800-FLOWERS", "is not a phone number such as"),  # letters: nothing to look up
        ("415", "'415' is not a phone number (read as a number of US): too short for its country"),
        ("+1 415 555", "'+1 415 555' is not a phone number: too short for its country"),
    ],
)
def test_from_typed_refuses_what_is_no_number(typed, message):
    with pytest.raises(numbers.InvalidNumber, match=re.escape(message)):
        numbers.from_typed(typed, "US")


def test_regions():
    assert numbers.is_region("US") and numbers.is_region("GB") and not numbers.is_region("XX")
    assert not numbers.is_region("us") and not numbers.is_region(None)
