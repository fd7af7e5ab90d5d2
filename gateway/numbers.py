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
