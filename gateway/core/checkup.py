"""A compliance check of the deployment against the rules it must follow. Pure logic.

``gateway doctor`` runs every check; start-up runs those that need no
database and logs their findings as warnings. Each finding names the rule,
what is wrong, where, and how to fix it. A ``fail`` breaks a rule today; a
``warn`` is a risk or a rule that is not yet in force.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date
from typing import Any

from .keywords import HELP, STOP, KeywordBook, KeywordSet
from .retries import SEND_LEASE_SECONDS
from .scope import REVOKE_ALL_DATE, Scope
from .segments import analyse

FAIL, WARN = "fail", "warn"
# In the dev environment, what the operator must settle before going live (a HELP contact, the revoke-all
# scope) is shown as that, not as a failure of what they just did; in sandbox and live it fails as it is.
BEFORE_LIVE = "before-live"
BEFORE_LIVE_CHECKS = frozenset({"help-reply", "revoke-all"})
_LABELS = {FAIL: "FAIL", WARN: "WARN", BEFORE_LIVE: "BEFORE GOING LIVE"}
# What each machine of a deployment finds for itself (every other finding is the deployment's, told once).
MACHINE_CHECKS = frozenset({"clock"})

# The words that revoke consent definitively, whatever else the business offers (47 CFR 64.1200(a)(10)).
FCC_PER_SE_WORDS = ("stop", "quit", "end", "revoke", "opt out", "cancel", "unsubscribe")

_URL = re.compile(r"https?://|www\.|\b[a-z0-9-]+\.(?:com|net|org|io|co|us|ly|app|info|biz)\b", re.IGNORECASE)
_EMAIL = re.compile(r"\b[^@\s]+@[^@\s]+\.[a-z]{2,}\b", re.IGNORECASE)
_PHONE = re.compile(r"\+?\d[\d\s().-]{5,}\d")


@dataclass(frozen=True)
class Finding:
    """One thing wrong (or at risk) with the deployment."""

    level: str  # fail, warn or before-live
    check: str  # a short name: fcc-words, stop-reply, help-reply, revoke-all, candidates, ledger, clock, ...
    rule: str  # the rule it is measured against
    where: str  # what it is about: a Twilio number, a setting, the database
    problem: str
    fix: str

    def line(self) -> str:
        """One line for a terminal or a log."""
        return f"{_LABELS[self.level]} [{self.check}] {self.where}: {self.problem} ({self.rule}). Fix: {self.fix}"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def for_environment(findings: Iterable[Finding], env: str) -> list[Finding]:
    """``findings`` as the environment ``env`` (dev, sandbox, live) must read them: in dev, a finding of
    :data:`BEFORE_LIVE_CHECKS` is something to settle before going live."""
    if env != "dev":
        return list(findings)
    return [replace(f, level=BEFORE_LIVE) if f.check in BEFORE_LIVE_CHECKS else f for f in findings]


def has_contact(text: str) -> bool:
    """Whether ``text`` gives a way to reach a person: a phone number, an email address or a URL."""
    return bool(_PHONE.search(text) or _EMAIL.search(text) or _URL.search(text))


def keyword_findings(book: KeywordBook, numbers: Iterable[str], brands: Mapping[str, str]) -> list[Finding]:
    """The keyword sets and replies in force for each Twilio number (``default`` for numbers with no
    set of their own); ``brands`` maps a number to the brand its HELP reply must name."""
    findings: list[Finding] = []
    numbers = sorted({number for number in numbers if not number.startswith("MG")})
    for where, keywords in _sets(book, numbers):
        missing = [word for word in FCC_PER_SE_WORDS if keywords.match(word) != STOP]
        if missing:
            findings.append(
                Finding(
                    FAIL,
                    "fcc-words",
                    "FCC 47 CFR 64.1200(a)(10): these words revoke consent whatever the business offers",
                    where,
                    f"the stop keywords lack {', '.join(repr(word) for word in missing)}",
                    "add them to the stop list of the keywords file",
                )
            )
        findings.extend(_stop_reply(where, keywords.replies[STOP]))
        findings.extend(_help_contact(where, keywords.replies[HELP], keywords.source))
    for number in numbers:
        brand = brands.get(number)
        if brand and _loose(brand) not in _loose(book.for_number(number).replies[HELP]):
            findings.append(
                Finding(
                    FAIL, "help-reply", _CTIA, number, f"the HELP reply does not name the brand {brand!r}", "name it"
                )
            )
    return findings


def _sets(book: KeywordBook, numbers: Sequence[str]) -> list[tuple[str, KeywordSet]]:
    """Each keyword set in force, once: the default (if some number, or no number, uses it), then each
    number's own."""
    default = [("default keywords", book.default)]
    if numbers and all(number in book.per_number for number in numbers):
        default = []
    return default + [(number, book.per_number[number]) for number in sorted(book.per_number)]


def _stop_reply(where: str, reply: str, what: str = "STOP confirmation") -> list[Finding]:
    rule = "FCC 47 CFR 64.1200(a)(12): one confirmation text, only confirming, no marketing"
    findings = []
    if _URL.search(reply):
        findings.append(Finding(FAIL, "stop-reply", rule, where, f"the {what} contains a link", "remove the link"))
    encoding = analyse(reply)
    if encoding.encoding != "GSM-7" or encoding.units > 160:
        findings.append(
            Finding(
                FAIL,
                "stop-reply",
                rule,
                where,
                f"the {what} is {encoding.units} {encoding.encoding} units, not one plain text of "
                "at most 160 GSM-7 characters",
                "shorten it to a plain confirmation",
            )
        )
    return findings


_CTIA = "CTIA Messaging Principles: HELP names the program or brand and a way to reach a person"


HELP_EXAMPLE = "Acme: help at support@acme.example or +1 415 555 0100. Reply STOP to unsubscribe."


def _help_contact(where: str, reply: str, source: str = "") -> list[Finding]:
    if has_contact(reply):
        return []
    if source.startswith("gateway/settings/defaults/"):  # the packaged reply: the operator's own file must say it
        fix = (
            f'set help = "{HELP_EXAMPLE}" under [replies] in your keywords file (config/keywords.toml, which '
            'keywords_file = "keywords.toml" in config/gateway.toml names)'
        )
    else:
        fix = f"add a contact to the help reply in {source or 'the keywords file'}, e.g. {HELP_EXAMPLE!r}"
    return [
        Finding(
            FAIL,
            "help-reply",
            _CTIA,
            where,
            "the HELP reply gives no phone number, email address or URL",
            fix,
        )
    ]


def _loose(text: str) -> str:
    return text.casefold().replace("-", " ").replace("_", " ")


def scope_findings(scope: Scope, today: date) -> list[Finding]:
    """The opt-out scope against the revoke-all rule: a warning before it is in force, a failure after."""
    narrowest = scope.narrowest()
    if narrowest == "business":
        return []
    in_force = today.isoformat() >= REVOKE_ALL_DATE
    return [
        Finding(
            FAIL if in_force else WARN,
            "revoke-all",
            f"FCC 47 CFR 64.1200(a)(10) revoke-all, in force from {REVOKE_ALL_DATE}: a revocation covers every "
            "unrelated message from the business",
            "opt_out_scope",
            f"the scope is {narrowest!r}"
            + ("" if in_force else f", narrower than the rule will require from {REVOKE_ALL_DATE}"),
            'set opt_out_scope = "business" (and [brands] if the deployment serves several businesses)',
        )
    ]


def callback_findings(senders: Sequence[str], status_callback_url: str | None) -> list[Finding]:
    """Senders with no status callback: Twilio's delivery reports (and its 21610 refusals) go unseen."""
    if not senders or status_callback_url:
        return []
    return [
        Finding(
            WARN,
            "status-callback",
            "delivery tracking: a send refused because the recipient opted out upstream is recorded from the "
            "status callback",
            ", ".join(senders),
            "senders are configured but no status callback URL is",
            "set public_url (the callback is public_url + /twilio/status) or status_callback_url",
        )
    ]


def candidate_findings(overdue: Sequence[Mapping[str, Any]], days_to_honour: int) -> list[Finding]:
    """Revocation candidates past their due date: a revocation in other words not honoured in time."""
    if not overdue:
        return []
    first = min(str(candidate["due_by"]) for candidate in overdue)
    return [
        Finding(
            FAIL,
            "candidates",
            f"FCC 47 CFR 64.1200(a)(10): a revocation in other words is honoured within {days_to_honour} business days",
            "revocation candidates",
            f"{len(overdue)} open candidate(s) past their due date (the oldest due {first})",
            "resolve them: gateway optouts candidates, then confirm or dismiss each",
        )
    ]


def ledger_findings(ok: bool, summary: str) -> list[Finding]:
    """The ledger's verification."""
    if ok:
        return []
    return [
        Finding(
            FAIL,
            "ledger",
            "records: the business carries the burden of proof, and a broken chain weakens it",
            "event ledger",
            summary,
            "restore the database from a backup taken before the break; gateway audit verify names the event",
        )
    ]


def durability_findings(unsafe: Mapping[str, str]) -> list[Finding]:
    """Database server settings (``unsafe``: name and value) under which a crash loses what it acknowledged."""
    return [
        Finding(
            FAIL,
            "durability",
            "records: an opt-out is kept from the moment it is acknowledged",
            "database server",
            f"it runs with {name} = {value}: a crash of its machine can lose or corrupt records the gateway "
            "already acknowledged, opt-outs among them",
            f"set {name} = on in postgresql.conf (or ALTER SYSTEM) and reload the server",
        )
        for name, value in sorted(unsafe.items())
    ]


def filesystem_findings(filesystem: str | None, database: str) -> list[Finding]:
    """An SQLite ``database`` on a network ``filesystem`` (``nfs4``, ``cifs``, ...; None: a local disk)."""
    if filesystem is None:
        return []
    return [
        Finding(
            FAIL,
            "filesystem",
            "records: an opt-out is kept from the moment it is acknowledged",
            database,
            f"it is on a network filesystem ({filesystem}): SQLite's locks and its WAL need every process on one "
            "machine, so gateways on two machines sharing it corrupt it, and the file server decides whether an "
            "fsync reached its disk",
            "keep the SQLite file on a local disk of one machine, or use PostgreSQL (DATABASE_URL=postgresql://...)",
        )
    ]


CLOCK_TOLERANCE = 1.0  # seconds: a clock kept by NTP is within milliseconds


def clock_findings(offset: float | None, settings: Mapping[str, Any]) -> list[Finding]:
    """This machine's clock against the database server's (``offset``: seconds the server's is ahead; None:
    SQLite, one machine). Instances stamp records with their own clocks, and a worker whose clock is ahead
    takes a lease another still holds: at half the shortest lease, two machines off in opposite directions
    could send one message twice (a failure); beyond a second, records' times disagree (a warning)."""
    if offset is None or abs(offset) <= CLOCK_TOLERANCE:
        return []
    leases = {
        "GATEWAY_AGENT_LEASE_SECONDS": settings["AGENT_LEASE_SECONDS"],
        "GATEWAY_CONSENT_SYNC_LEASE_SECONDS": settings["CONSENT_SYNC_LEASE_SECONDS"],
        "the outbound send lease": SEND_LEASE_SECONDS,
    }
    name, lease = min(leases.items(), key=lambda item: item[1])
    off = f"{abs(offset):.1f} s {'behind' if offset > 0 else 'ahead of'} the database server's"
    failed = abs(offset) >= lease / 2
    return [
        Finding(
            FAIL if failed else WARN,
            "clock",
            "records: each record's time is when it happened, and a leased message is handled by one worker",
            "this machine's clock",
            f"{off}: at half of {name} ({lease:g} s) or more, another machine may take a message this one is "
            "still sending or delivering"
            if failed
            else f"{off}: records stamped here and on other machines disagree",
            "keep every gateway machine's clock synchronised (NTP: timedatectl set-ntp true, or chrony)",
        )
    ]


def database_findings(reason: str) -> list[Finding]:
    """The database could not be read, so its records were not checked."""
    return [
        Finding(
            FAIL,
            "database",
            "records: opt-outs and consent must be kept and provable",
            "database",
            reason,
            "start the database, or run gateway init-db",
        )
    ]


def configuration_findings(settings: Mapping[str, Any], today: date) -> list[Finding]:
    """Every check that needs only the settings (see :mod:`gateway.config`): start-up runs these."""
    scope: Scope = settings["SCOPE"]
    senders = list(settings["SENDERS"])
    numbers = [*senders, *(n for members in scope.services.values() for n in members)]
    brands = {n: scope.brand_of(n) for n in numbers}
    clarification = settings.get("CLARIFICATION")
    return [
        *keyword_findings(settings["KEYWORDS"], numbers, {n: b for n, b in brands.items() if b}),
        *(_stop_reply("clarification_text", clarification.text, "clarification") if clarification else []),
        *scope_findings(scope, today),
        *callback_findings(senders, settings.get("STATUS_CALLBACK_URL")),
    ]
