"""Keyword normalisation and matching for STOP / START / HELP.

Pure logic: no Flask, no storage. The normalisation is fixed and documented in
the README; it is applied for matching only, the original body is always kept.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

STOP = "stop"
START = "start"
HELP = "help"
KINDS = (STOP, START, HELP)

# Characters Python's str.strip() keeps but which render as nothing.
_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff\u180e"
_TRAILING_PUNCTUATION = ".!?,;"
_INNER_SPACE = re.compile(r"[\s" + _ZERO_WIDTH + r"]+")


def _strip(text: str) -> str:
    """Strip whitespace (Unicode spaces included) and zero-width characters."""
    start, end = 0, len(text)
    while start < end and (text[start].isspace() or text[start] in _ZERO_WIDTH):
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] in _ZERO_WIDTH):
        end -= 1
    return text[start:end]


def normalize(body: str) -> str:
    """Return the matching form of an SMS body.

    NFKC, strip (Unicode spaces, no-break space, zero-width characters),
    casefold, drop exactly one trailing character of ``. ! ? , ;``, strip
    again. Runs of inner whitespace become one space so "opt  out" is "opt out".
    """
    text = _strip(unicodedata.normalize("NFKC", body)).casefold()
    if text and text[-1] in _TRAILING_PUNCTUATION:
        text = _strip(text[:-1])
    return _INNER_SPACE.sub(" ", text)


@dataclass(frozen=True)
class KeywordSet:
    """The keywords and replies in force for one Twilio number."""

    keywords: Mapping[str, frozenset[str]]
    replies: Mapping[str, str]
    source: str = field(default="", compare=False)  # where its replies are set: a file and its table
    _index: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, str] = {}
        for kind in KINDS:
            for word in self.keywords.get(kind, ()):
                if word in index and index[word] != kind:
                    raise ValueError(f"keyword {word!r} is in both the {index[word]} and {kind} sets")
                index[word] = kind
        object.__setattr__(self, "_index", index)

    @classmethod
    def build(cls, keywords: Mapping[str, Iterable[str]], replies: Mapping[str, str], source: str = "") -> KeywordSet:
        """Build a set from configured words, normalising each one; ``source`` says where its replies are set."""
        normalised = {}
        for kind in KINDS:
            words = set()
            for word in keywords.get(kind, ()):
                if not isinstance(word, str) or not normalize(word):
                    raise ValueError(f"{kind} keyword {word!r} is empty or not a string")
                words.add(normalize(word))
            normalised[kind] = frozenset(words)
        if not normalised[STOP]:
            raise ValueError("the stop keyword set must not be empty")
        for kind in KINDS:
            reply = replies.get(kind)
            if not isinstance(reply, str) or not reply.strip():
                raise ValueError(f"the {kind} reply must be a non-empty string")
        return cls(normalised, dict(replies), source)

    def match(self, body: str) -> str | None:
        """Return ``stop``, ``start``, ``help`` or None for an original body."""
        return self._index.get(normalize(body))


@dataclass(frozen=True)
class KeywordBook:
    """Default keyword set plus optional per-Twilio-number overrides."""

    default: KeywordSet
    per_number: Mapping[str, KeywordSet] = field(default_factory=dict)

    def for_number(self, twilio_number: str) -> KeywordSet:
        return self.per_number.get(twilio_number, self.default)
