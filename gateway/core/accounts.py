"""The Twilio accounts one gateway serves, and which one a request or a sender belongs to. Pure logic.

Twilio signs every webhook and status callback with the auth token of the
account that owns the number, and names that account in the ``AccountSid``
parameter. With one account (today's single-account settings) its tokens
check every request, as they always have. With several (an ``[accounts]``
table), a request is checked only against the tokens of the account it
names: an unknown or missing ``AccountSid`` gets no token at all, so it fails
closed and is never tried against another account's token.

Each sender (number or Messaging Service SID) belongs to exactly one account,
and a message leaves with the credentials of the account that owns its sender.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
DEFAULT = "default"  # the name of the account the single-account settings describe


@dataclass(frozen=True)
class Account:
    """One Twilio account (or subaccount): its name here, its SID, its auth tokens and its senders.

    ``numbers`` are its other Twilio numbers (those of its Messaging Services):
    a reply from one of them leaves with this account's credentials too.
    """

    name: str
    sid: str | None
    tokens: tuple[str, ...]
    senders: tuple[str, ...] = ()
    numbers: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """How logs and metrics name the account: never a token or a phone number."""
        return self.name


@dataclass(frozen=True)
class Accounts:
    """Every account of the deployment; ``routed`` when requests are matched to one by ``AccountSid``."""

    accounts: tuple[Account, ...]
    routed: bool = False

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for account in self.accounts:
            sid = f"SID {account.sid}" if account.sid else None
            for key in (f"name {account.name}", sid, *account.senders, *account.numbers):
                if key is None:
                    continue
                if key in seen:
                    raise ValueError(f"{key} belongs to both account {seen[key]!r} and account {account.name!r}")
                seen[key] = account.name
        if self.routed and any(account.sid is None for account in self.accounts):
            raise ValueError("with several accounts, every account needs its Account SID")

    @classmethod
    def single(cls, sid: str | None, tokens: Sequence[str], senders: Iterable[str]) -> Accounts:
        """Today's settings: one account whose tokens check every request."""
        return cls((Account(DEFAULT, sid, tuple(tokens), tuple(senders)),))

    @property
    def senders(self) -> tuple[str, ...]:
        """Every sender of every account, in order: the first is the default sender."""
        return tuple(sender for account in self.accounts for sender in account.senders)

    def by_sid(self, sid: str | None) -> Account | None:
        """The account with this SID, or None."""
        return next((account for account in self.accounts if sid and account.sid == sid), None)

    def label_of(self, sid: str | None) -> str:
        """How metrics name an account: its name here, else its SID's last 6 characters ("none" without one).

        Never a token or a phone number; pass only SIDs Twilio signed or the database holds (each label
        value is a time series kept for ever).
        """
        found = self.by_sid(sid)
        return found.label if found else (sid[-6:] if sid else "none")

    def named(self, given: str) -> Account | None:
        """The account called ``given`` here, or with that SID (an account without a SID has no records of its own)."""
        return next((a for a in self.accounts if a.sid and given in (a.name, a.sid)), None)

    def for_request(self, sid: str | None) -> Account | None:
        """The account whose tokens check a request naming ``sid`` (None: refuse it).

        With one account that is the account, whatever the request names (as
        before accounts existed); with several, only the account with that SID.
        """
        if not self.routed:
            return self.accounts[0]
        return self.by_sid(sid)

    def owner_of(self, sender: str) -> Account | None:
        """The account a sender belongs to; with one account, that account."""
        found = next((a for a in self.accounts if sender in a.senders or sender in a.numbers), None)
        if found is None and not self.routed:
            return self.accounts[0]
        return found
