"""Which opt-outs cover a conversation: the ``opt_out_scope`` rule. Pure logic.

- ``pair`` (the default): an opt-out covers one (sender, Twilio number) pair.
- ``messaging_service``: an opt-out sent to any number of a Messaging Service
  covers the whole service, as Twilio treats services.

A service is known from configuration (``[messaging_services]``: SID -> its
numbers) or from the ``MessagingServiceSid`` Twilio sends with an inbound
message; opt-out records keep the service they were made under.

Sending through a Messaging Service SID is always judged service-wide, in
both scopes: Twilio picks the number at send time, so the gateway never
guesses in the sender's favour. With no numbers configured for the service,
an opt-out of any number blocks it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

SCOPES = ("pair", "messaging_service")
ANY = "*"  # stands for every Twilio number


@dataclass(frozen=True)
class Cover:
    """Opt-outs matching any of these block a conversation.

    ``numbers`` are Twilio numbers (``*`` for any); ``services`` are the
    Messaging Service SIDs recorded with opt-outs.
    """

    numbers: tuple[str, ...]
    services: tuple[str, ...] = ()


@dataclass(frozen=True)
class Scope:
    """The rule, and the Messaging Services it knows; ``modes`` overrides the rule for some Twilio
    numbers (those of an account with its own ``opt_out_scope``)."""

    mode: str = "pair"
    services: Mapping[str, frozenset[str]] = field(default_factory=dict)
    modes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for mode in (self.mode, *self.modes.values()):
            if mode not in SCOPES:
                raise ValueError(f"opt_out_scope must be one of {', '.join(SCOPES)}, got {mode!r}")

    @classmethod
    def build(cls, mode: str, services: Mapping[str, Sequence[str]], modes: Mapping[str, str] | None = None) -> Scope:
        return cls(mode, {sid: frozenset(numbers) for sid, numbers in services.items()}, dict(modes or {}))

    def service_of(self, twilio_number: str, hint: str | None = None) -> str | None:
        """The Messaging Service a Twilio number belongs to: as Twilio said, else as configured."""
        if hint:
            return hint
        for sid, numbers in self.services.items():
            if twilio_number in numbers:
                return sid
        return None

    def cover(self, via: str, service_hint: str | None = None) -> Cover:
        """What blocks a message to or from a user through ``via`` (a Twilio number or an MG SID)."""
        if via.startswith("MG"):
            members = tuple(sorted(self.services.get(via, ()))) or (ANY,)
            return Cover(members, (via,))
        if self.modes.get(via, self.mode) == "pair":
            return Cover((via,))
        service = self.service_of(via, service_hint)
        if service is None:
            return Cover((via,))
        return Cover(tuple(sorted({via, *self.services.get(service, ())})), (service,))
