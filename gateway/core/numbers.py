"""Phone numbers in E.164, checked one way everywhere: API, CLI, console, configuration, imports. Pure.

A number is accepted when it is written exactly as E.164 (``+``, country
code, subscriber number; no spaces or punctuation) and libphonenumber finds
it possible for its country (its length fits). Possible, not "valid": the
test numbers Twilio and the examples use (``+15005550006``, 555 numbers) must pass.
"""

from __future__ import annotations

import phonenumbers
from phonenumbers import ValidationResult

EXAMPLE = "+14155550100"
DEFAULT_REGION = "US"  # where a number typed without its country code is read (the default_region setting)
_WHY = {
    ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    ValidationResult.TOO_SHORT: "too short for its country",
    ValidationResult.TOO_LONG: "too long for its country",
    ValidationResult.INVALID_LENGTH: "wrong length for its country",
}


class InvalidNumber(ValueError):
    """Not an E.164 number; the message names the field and says why."""


def problem(value: object) -> str | None:
    """Why ``value`` is not an E.164 number, or None when it is one."""
    if not isinstance(value, str) or not value:
        return "a phone number is required"
    if not value.startswith("+"):
        return "it must start with + and the country code"
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return "it is not a phone number"
    reason = phonenumbers.is_possible_number_with_reason(parsed)
    if reason not in (ValidationResult.IS_POSSIBLE, ValidationResult.IS_POSSIBLE_LOCAL_ONLY):
        return _WHY.get(reason, "not a possible number")
    if phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) != value:
        return "write it without spaces, punctuation or leading zeros"
    return None


def e164(value: object, field: str = "number") -> str:
    """``value`` when it is an E.164 number; otherwise :class:`InvalidNumber` naming ``field``."""
    reason = problem(value)
    if reason is not None:
        raise InvalidNumber(f"{field} {value!r} is not an E.164 number such as {EXAMPLE}: {reason}")
    return value  # type: ignore[return-value]


def is_e164(value: object) -> bool:
    return problem(value) is None


def from_typed(text: str, region: str = DEFAULT_REGION) -> str:
    """The E.164 form of a number as a person types it into a search box: ``+1 415 555 0100``, ``(415)
    555-0100`` (read as a number of ``region``, an ISO 3166 code), ``+14155550100``. Records stay E.164: this
    is only for finding them. :class:`InvalidNumber` says why ``text`` is no number."""
    text = text.strip()
    if not text:
        raise InvalidNumber("enter a phone number")
    if problem(text) is None:
        return text
    if any(character.isalpha() for character in text):  # a vanity number or a word: nothing to look up
        raise InvalidNumber(f"{text!r} is not a phone number such as {EXAMPLE} or (415) 555-0100")
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise InvalidNumber(f"{text!r} is not a phone number such as {EXAMPLE} or (415) 555-0100") from None
    reason = phonenumbers.is_possible_number_with_reason(parsed)
    if reason not in (ValidationResult.IS_POSSIBLE, ValidationResult.IS_POSSIBLE_LOCAL_ONLY):
        country = "" if text.startswith("+") else f" (read as a number of {region})"
        raise InvalidNumber(f"{text!r} is not a phone number{country}: {_WHY.get(reason, 'not a possible number')}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def is_region(code: object) -> bool:
    """Whether ``code`` is a region (ISO 3166 alpha-2) libphonenumber knows the numbering of."""
    return isinstance(code, str) and code in phonenumbers.SUPPORTED_REGIONS
