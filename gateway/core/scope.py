"""Which opt-outs cover a conversation: the ``opt_out_scope`` rule. Pure logic.

- ``pair`` (the default): an opt-out covers one (sender, Twilio number) pair.
- ``messaging_service``: an opt-out sent to any number of a Messaging Service
  covers the whole service, as Twilio treats services.
- ``business``: an opt-out covers every number and Messaging Service of the
  deployment, or of the brand the number belongs to when ``[brands]`` groups
  them: the FCC's revoke-all rule (47 CFR 64.1200(a)(10), in force from
  :data:`REVOKE_ALL_DATE`). A number in no brand is covered by an opt-out made
  anywhere, so a gap in ``[brands]`` never lets a message through.

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

SCOPES = ("pair", "messaging_service", "business")
ANY = "*"  # stands for every Twilio number
# From this day a revocation covers every unrelated message from the same business (FCC 24-24, as moved
# by DA 26-12): a narrower scope is then short of the rule.
REVOKE_ALL_DATE = "2027-01-31"


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
    numbers and services (those of an account with its own ``opt_out_scope``); ``brands`` groups numbers
    and services into the businesses that ``business`` scope covers one at a time."""

    mode: str = "pair"
    services: Mapping[str, frozenset[str]] = field(default_factory=dict)
    modes: Mapping[str, str] = field(default_factory=dict)
    brands: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for mode in (self.mode, *self.modes.values()):
            if mode not in SCOPES:
                raise ValueError(f"opt_out_scope must be one of {', '.join(SCOPES)}, got {mode!r}")

    @classmethod
    def build(
        cls,
        mode: str,
        services: Mapping[str, Sequence[str]],
        modes: Mapping[str, str] | None = None,
        brands: Mapping[str, Sequence[str]] | None = None,
    ) -> Scope:
        return cls(
            mode,
            {sid: frozenset(numbers) for sid, numbers in services.items()},
            dict(modes or {}),
            {name: frozenset(members) for name, members in (brands or {}).items()},
        )

    def mode_of(self, via: str) -> str:
        """The rule for a Twilio number or MG SID: its account's own, else the deployment's."""
        return self.modes.get(via, self.mode)

    def narrowest(self) -> str:
        """The narrowest rule in force anywhere in the deployment."""
        return min((self.mode, *self.modes.values()), key=SCOPES.index)

    def brand_of(self, via: str, service_hint: str | None = None) -> str | None:
        """The brand ``via`` (a Twilio number or MG SID) belongs to, directly or through its service."""
        ways = {via} if via.startswith("MG") else {via, self.service_of(via, service_hint)} - {None}
        for name, members in self.brands.items():
            if ways & members:
                return name
        return None

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
        if self.mode_of(via) == "business":
            return self._business(via, service_hint)
        if via.startswith("MG"):
            members = tuple(sorted(self.services.get(via, ()))) or (ANY,)
            return Cover(members, (via,))
        if self.mode_of(via) == "pair":
            return Cover((via,))
        service = self.service_of(via, service_hint)
        if service is None:
            return Cover((via,))
        return Cover(tuple(sorted({via, *self.services.get(service, ())})), (service,))

    def _business(self, via: str, service_hint: str | None) -> Cover:
        """Every number and service of ``via``'s brand; with no brand, every opt-out of the deployment."""
        brand = self.brand_of(via, service_hint)
        if brand is None:
            return Cover((ANY,))
        members = self.brands[brand]
        services = {member for member in members if member.startswith("MG")}
        numbers = {member for member in members if not member.startswith("MG")}
        for service in services:
            if not self.services.get(service):  # its numbers are unknown: any of them may carry an opt-out
                return Cover((ANY,))
            numbers |= self.services[service]
        return Cover(tuple(sorted(numbers)), tuple(sorted(services)))
