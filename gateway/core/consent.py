"""Consent records: who agreed to receive which messages from whom, when, how, to what wording. Pure logic.

In a TCPA dispute the business carries the burden of proving consent. A
consent record names the person's number, the business's sender (a Twilio
number, a Messaging Service SID, or ``*`` for the whole business), the
category of messages it covers, how it was given, when, the exact wording
the person agreed to, the evidence, and who recorded it. Each grant is an
event in the same hash chain as opt-outs; a revocation ends every consent it
covers (see :func:`senders_ended`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import numbers
from .keywords import normalize
from .messages import unstorable
from .scope import ANY, Scope
from .timestamps import parse_bound

# How a consent was given.
METHODS = ("web_form", "keyword", "paper", "verbal", "import", "api")
KEYWORD = "keyword"  # the method of a consent given by texting START
BUSINESS = "*"  # a consent (or sender) that stands for every number and service of the business
CATEGORY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
MAX_WORDING = 4000
MAX_EVIDENCE = 8000


@dataclass(frozen=True)
class Grant:
    """One consent, as given; ``given_at`` is a stored UTC timestamp."""

    number: str
    sender: str
    category: str
    method: str
    given_at: str
    wording: str
    recorded_by: str
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def detail(self, consent_id: int | None = None) -> str:
        """The event's detail: what the chain keeps of this grant (with the consent's id once known)."""
        return json.dumps(
            {
                "consent_id": consent_id,
                "category": self.category,
                "method": self.method,
                "given_at": self.given_at,
                "wording": self.wording,
                "evidence": dict(self.evidence),
                "recorded_by": self.recorded_by,
            },
            ensure_ascii=False,
            sort_keys=True,
        )


@dataclass(frozen=True)
class Rules:
    """The deployment's consent settings: the categories it knows, those a send needs a current consent
    for (``require_consent``), those a START grants, and the category of a send that names none."""

    categories: tuple[str, ...] = ("marketing", "informational")
    required: tuple[str, ...] = ()
    keyword: tuple[str, ...] = ("informational",)
    default: str = "informational"

    def __post_init__(self) -> None:
        for name, chosen in (("require_consent", self.required), ("keyword_consent_categories", self.keyword)):
            unknown = [c for c in chosen if c not in self.categories]
            if unknown:
                raise ValueError(
                    f"{name}: {unknown[0]!r} is not one of consent_categories ({', '.join(self.categories)})"
                )
        if self.default not in self.categories:
            raise ValueError(
                f"default_category: {self.default!r} is not one of consent_categories ({', '.join(self.categories)})"
            )

    def needs_consent(self, category: str | None) -> bool:
        return category is not None and category in self.required


@dataclass(frozen=True)
class Clarification:
    """The optional clarification text sent instead of the STOP confirmation to a number with consent in
    several categories, and the answers it offers: each answer word names the categories the person meant
    to stop."""

    text: str
    choices: Mapping[str, tuple[str, ...]]

    @classmethod
    def build(cls, text: str, choices: Mapping[str, Sequence[str]], rules: Rules) -> Clarification:
        """Checked against ``rules``: every category offered must be one ``require_consent`` names, or the
        gateway could not keep stopping it once the other kinds resume."""
        if not text.strip():
            raise ValueError("clarification_text: empty")
        if not choices:
            raise ValueError("clarification_choices: offer at least one answer (WORD = [categories])")
        found = {}
        for word, categories in choices.items():
            if not normalize(word) or not isinstance(categories, list | tuple) or not categories:
                raise ValueError(f"clarification_choices: {word!r} needs a list of categories")
            for category in categories:
                if category not in rules.required:
                    raise ValueError(
                        f"clarification_choices.{word}: {category!r} must be in require_consent "
                        f"({', '.join(rules.required) or 'empty'}): only then can it stay stopped while the "
                        "other kinds resume"
                    )
            found[normalize(word)] = tuple(categories)
        return cls(text.strip(), found)

    def answer(self, body: str) -> tuple[str, ...] | None:
        """The categories an answer means to stop, if ``body`` is one of the offered answers."""
        return self.choices.get(normalize(body))


def sender_problem(sender: str) -> str | None:
    """Why ``sender`` is not a Twilio number, a Messaging Service SID or ``*``, if it is not."""
    if sender == BUSINESS or SERVICE_SID.match(sender) or numbers.is_e164(sender):
        return None
    return "is not a Twilio number (E.164), a Messaging Service SID (MG + 32 hex characters) or * (the whole business)"


def grant(
    fields: Mapping[str, Any], categories: Sequence[str], now: str, recorded_by: str, method: str | None = None
) -> Grant:
    """A :class:`Grant` from submitted fields (JSON, a CSV row, CLI options), or ValueError naming the field.

    Fields: ``number``, ``sender``, ``category``, ``method`` (unless given),
    ``wording``, optional ``given_at`` (ISO 8601 or a date; now when absent;
    never in the future) and ``evidence`` (an object of text values).
    """
    if not isinstance(fields, Mapping):
        raise ValueError("expected an object with number, sender, category, method and wording")
    known = {"number", "sender", "category", "method", "given_at", "wording", "evidence"}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r}; a consent has {', '.join(sorted(known))}")
    number = _text(fields, "number")
    problem = numbers.problem(number)
    if problem:
        raise ValueError(f"number: {number!r} is not an E.164 number such as {numbers.EXAMPLE}: {problem}")
    sender = _text(fields, "sender")
    if sender_problem(sender):
        raise ValueError(f"sender: {sender!r} {sender_problem(sender)}")
    category = _text(fields, "category")
    if category not in categories:
        raise ValueError(f"category: {category!r} is not one of the configured categories: {', '.join(categories)}")
    method = method or _text(fields, "method")
    if method not in METHODS:
        raise ValueError(f"method: {method!r} is not one of {', '.join(METHODS)}")
    wording = _text(fields, "wording")
    if len(wording) > MAX_WORDING:
        raise ValueError(f"wording: at most {MAX_WORDING} characters, got {len(wording)}")
    given_at = now
    if fields.get("given_at") not in (None, ""):
        try:
            given_at = parse_bound(str(fields["given_at"]))
        except ValueError as exc:
            raise ValueError(f"given_at: {exc}") from None
        if given_at > now:
            raise ValueError(f"given_at: {fields['given_at']!r} is in the future")
    return Grant(number, sender, category, method, given_at, wording, recorded_by, _evidence(fields.get("evidence")))


def _text(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name}: required, a non-empty string")
    problem = unstorable(value)
    if problem:
        raise ValueError(f"{name}: {problem}")
    return value.strip()


def _evidence(value: Any) -> dict[str, str]:
    """Evidence: an object of short text values (form URL, IP address, user agent, document reference)."""
    if value in (None, ""):
        return {}
    if isinstance(value, str):  # a CSV cell or a CLI option holds JSON
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError('evidence: expected a JSON object such as {"form_url": "https://..."}') from None
    if not isinstance(value, Mapping) or not all(isinstance(v, str | int | float) for v in value.values()):
        raise ValueError("evidence: expected an object of text values (form_url, ip, user_agent, document, ...)")
    evidence = {str(k): str(v) for k, v in value.items()}
    for key, text in evidence.items():
        if unstorable(key) or unstorable(text):
            raise ValueError(f"evidence: {key!r} {unstorable(key) or unstorable(text)}")
    if len(json.dumps(evidence)) > MAX_EVIDENCE:
        raise ValueError(f"evidence: at most {MAX_EVIDENCE} characters of JSON")
    return evidence


def senders_ended(scope: Scope, via: str, service_hint: str | None = None) -> tuple[str, ...] | None:
    """The consent senders a revocation through ``via`` ends (None: every consent of the number).

    Whatever the opt-out covers (the scope), plus whatever covers ``via``:
    the business (``*``), ``via`` itself and its Messaging Service. A consent
    to a wider sender than the revocation is ended whole: the gateway never
    keeps messaging on a consent the person has partly taken back.
    """
    cover = scope.cover(via, service_hint)
    if ANY in cover.numbers:
        return None
    service = via if via.startswith("MG") else scope.service_of(via, service_hint)
    return tuple(sorted({BUSINESS, via, *cover.numbers, *cover.services, *([service] if service else [])}))


def senders_covering(scope: Scope, sender: str) -> tuple[str, ...]:
    """The consent senders that allow a send through ``sender`` (a Twilio number or MG SID): itself, its
    Messaging Service, and the whole business. A consent to one number never allows a send through a
    service, which may pick another number."""
    service = scope.service_of(sender)  # None for a service SID: it is no service's number
    return tuple(sorted({BUSINESS, sender, *([service] if service else [])}))


def categories_setting(value: Any, where: str) -> tuple[str, ...]:
    """A list of category names, checked (for the configuration)."""
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and CATEGORY.match(v) for v in value):
        raise ValueError(f"{where}: expected a list of category names (a-z, 0-9 and _, starting with a letter)")
    return tuple(dict.fromkeys(value))


def brief(event: Mapping[str, Any]) -> Any:
    """An event's detail for a terminal table: a consent grant as one short line; others as they are."""
    detail = event.get("detail")
    if event.get("event") != "consent_granted" or not isinstance(detail, Mapping):
        return detail
    wording = str(detail.get("wording") or "")
    shown = wording if len(wording) <= 40 else wording[:39] + "…"
    return f"{detail.get('category')} (consent {detail.get('consent_id')}): “{shown}”"


def timeline(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A number's events as a consent timeline: each with ``change``, what it did to consent.

    ``granted`` (a first consent of that category and sender), ``re-granted``
    (after a revocation or a withdrawal of its category), ``revoked`` (an
    opt-out: it ends the consents it covers), ``withdrawn`` (one category),
    ``opted in``; other events (HELP, dropped, suppressed) keep their kind.
    """
    granted_at: dict[tuple[str, str], int] = {}  # (sender, category) -> position of its latest grant
    withdrawn_at: dict[str, int] = {}  # category -> position of its latest withdrawal
    last_revocation: int | None = None
    rows = []
    for position, event in enumerate(events):
        kind = event["event"]
        change = kind.replace("_", " ")
        if kind == "consent_granted":
            key = (event["twilio_number"], str((event.get("detail") or {}).get("category")))
            ends = [at for at in (last_revocation, withdrawn_at.get(key[1])) if at is not None]
            change = "re-granted" if key in granted_at and any(granted_at[key] < at for at in ends) else "granted"
            granted_at[key] = position
        elif kind == "opt_out":
            change, last_revocation = "revoked", position
        elif kind == "consent_withdrawn":
            change = "withdrawn"
            withdrawn_at[str((event.get("detail") or {}).get("category"))] = position
        elif kind == "opt_in":
            change = "opted in"
        rows.append({**event, "change": change})
    return rows


# -- keeping Twilio's list in step (the Consent Management API) ---------------------------------

BATCH = 25  # items Twilio takes in one request
# How each way of giving consent is named to Twilio (its sources: website, offline, opt-in-message,
# opt-out-message, others).
TWILIO_SOURCES = {
    "web_form": "website",
    "keyword": "opt-in-message",
    "paper": "offline",
    "verbal": "offline",
    "import": "others",
    "api": "others",
}


@dataclass(frozen=True)
class SyncItem:
    """One consent change for Twilio: ``status`` opt-in or opt-out of ``contact_id`` for ``sender_id``."""

    contact_id: str
    sender_id: str
    status: str
    source: str
    date_of_consent: str | None
    event_id: int

    @property
    def correlation_id(self) -> str:
        """The same 32 hex characters for the same event and sender, however often it is queued or sent:
        Twilio's upsert then makes a repeated push harmless."""
        return hashlib.sha256(f"{self.event_id}:{self.sender_id}:{self.status}".encode()).hexdigest()[:32]

    def payload(self, correlation_id: str) -> dict[str, str]:
        item = {
            "contact_id": self.contact_id,
            "correlation_id": correlation_id,
            "sender_id": self.sender_id,
            "status": self.status,
            "source": self.source,
        }
        if self.date_of_consent:
            item["date_of_consent"] = self.date_of_consent
        return item


def sync_senders(scope: Scope, senders: Sequence[str], via: str, seen_by_twilio: bool) -> tuple[str, ...]:
    """The configured senders to tell Twilio of a change made through ``via`` (a Twilio number, an MG SID
    or ``*``): every sender the scope covers (all of them for ``*``), less ``via`` when Twilio saw the change
    itself (a STOP or START it carried)."""
    if via == BUSINESS:
        covered = set(senders)
    else:
        cover = scope.cover(via)
        wide = ANY in cover.numbers
        covered = {s for s in senders if wide or s in cover.numbers or s in cover.services or s == via}
        covered.add(via)
    if seen_by_twilio:
        covered.discard(via)
    return tuple(sorted(covered))
