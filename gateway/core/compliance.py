"""The compliance decision for one inbound message.

Pure logic: given the keyword the body matched, the pair's current opt-out
state and whether Twilio's Advanced Opt-Out already handled the keyword,
decide the new state, the event to log, the reply and whether to queue the
message for the agent. The storage layer applies the decision atomically.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from . import events
from .keywords import HELP, START, STOP


@dataclass(frozen=True)
class Decision:
    """What to do with one inbound message."""

    outcome: str  # opt_out, already_opted_out, opt_in, help, queued, candidate, dropped, clarified
    event: str | None  # event type to append, None when nothing is intercepted
    source: str | None
    opted_out: bool  # the pair's state after this message
    state_changed: bool
    reply: str | None  # reply text, None for an empty <Response/>
    enqueue: bool  # store for the agent session handler
    candidate: str | None = None  # name of the revocation pattern that flagged it
    # A STOP answered with the clarification text: the categories of the consents it ends, to ask about.
    asks: tuple[str, ...] = ()
    # The answer to a clarification: (its id, the categories the person meant to stop).
    narrows: tuple[int, tuple[str, ...]] | None = None


def clarify(decision: Decision, categories: set[str], text: str) -> Decision:
    """A STOP that changes the state and would be confirmed, for a number with consent in more than one
    category, is answered with the clarification ``text`` instead (still the one text of the revocation),
    asking about ``categories``; every category stays revoked until an answer comes."""
    if decision.event != events.OPT_OUT or not decision.state_changed or decision.reply is None or len(categories) < 2:
        return decision
    return replace(decision, reply=text, asks=tuple(sorted(categories)))


def narrow(clarification_id: int, categories: tuple[str, ...]) -> Decision:
    """The answer to a clarification: the pair may be messaged again, except for ``categories``, whose
    consents stay ended (``require_consent`` keeps stopping them). No text: the revocation had its one."""
    return Decision(
        outcome="clarified",
        event=events.OPT_IN,
        source=events.CLARIFICATION,
        opted_out=False,
        state_changed=True,
        reply=None,
        enqueue=False,
        narrows=(clarification_id, categories),
    )


def upstream_kind(opt_out_type: str | None) -> str | None:
    """Map Twilio's ``OptOutType`` parameter to a keyword kind, if known."""
    if not opt_out_type:
        return None
    kind = opt_out_type.strip().casefold()
    return kind if kind in (STOP, START, HELP) else None


def decide(
    kind: str | None,
    opted_out: bool,
    replies: Mapping[str, str],
    upstream: bool = False,
    candidate: str | None = None,
) -> Decision:
    """Decide the handling of a message.

    ``kind`` is the matched keyword kind (or None); ``upstream`` says Twilio
    already replied (Advanced Opt-Out), so we record but never reply again;
    ``candidate`` names the revocation pattern a non-keyword message matched:
    it is still delivered, flagged, and logged for an auditor to resolve.
    """
    source = events.TWILIO if upstream else events.KEYWORD

    def reply(text_kind: str, wanted: bool = True) -> str | None:
        return replies[text_kind] if wanted and not upstream else None

    if kind == STOP:
        return Decision(
            outcome="already_opted_out" if opted_out else "opt_out",
            event=events.OPT_OUT,
            source=source,
            opted_out=True,
            state_changed=not opted_out,
            # Only the STOP that changes the state is confirmed.
            reply=reply(STOP, wanted=not opted_out),
            enqueue=False,
        )
    if kind == START:
        return Decision(
            outcome="opt_in",
            event=events.OPT_IN,
            source=source,
            opted_out=False,
            state_changed=opted_out,
            reply=reply(START),
            enqueue=False,
        )
    if kind == HELP:
        return Decision(
            outcome="help",
            event=events.HELP,
            source=source,
            opted_out=opted_out,
            state_changed=False,
            reply=reply(HELP),
            enqueue=False,
        )
    if opted_out:
        return Decision(
            outcome="dropped",
            event=events.DROPPED,
            source=events.OPTED_OUT,
            opted_out=True,
            state_changed=False,
            reply=None,
            enqueue=False,
        )
    return Decision(
        outcome="candidate" if candidate else "queued",
        event=events.REVOCATION_CANDIDATE if candidate else None,
        source=events.PATTERN if candidate else None,
        opted_out=False,
        state_changed=False,
        reply=None,
        enqueue=True,
        candidate=candidate,
    )
