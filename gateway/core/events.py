"""The names written into the ledger: kinds of event and where each came from. Pure constants.

One set for every module, so the compliance decision, the storage layer and
the auditors' views cannot drift apart on a spelling.
"""

from __future__ import annotations

# Kinds of event in the hash-chained log.
OPT_OUT = "opt_out"
OPT_IN = "opt_in"
HELP = "help"
DROPPED = "dropped"  # a message from an opted-out sender, not delivered
REVOCATION_CANDIDATE = "revocation_candidate"  # reads like a revocation; an auditor decides
CANDIDATE_DISMISSED = "candidate_dismissed"
SUPPRESSED = "suppressed"  # an outbound message not sent: the recipient opted out, or gave no consent
CONSENT_GRANTED = "consent_granted"  # a consent record (gateway.consent): who agreed to what, when, how
CONSENT_WITHDRAWN = "consent_withdrawn"  # one kind of message withdrawn by other means, the rest kept

# Where an opt-out, opt-in or other event came from.
KEYWORD = "keyword"  # the gateway matched STOP/START/HELP itself
TWILIO = "twilio"  # Twilio's Advanced Opt-Out had already handled the keyword (OptOutType)
OPTED_OUT = "opted_out"  # the reason for a drop
PATTERN = "pattern"  # a revocation-candidate pattern
MANUAL = "manual"  # recorded by a person (CLI, API, console)
CARRIER = "carrier"  # Twilio refused a send with 21610: the recipient opted out upstream
IMPORT = "import"  # an opt-out list brought in from elsewhere
CLARIFICATION = "clarification"  # the answer to a clarification text: a narrower revocation

# Why an outbound message was suppressed.
NO_CONSENT = "no_consent"  # require_consent is on for its category and the recipient has no current consent

# Who asked for an outbound message (also the source of its ``suppressed`` event).
API = "api"
AGENT = "agent"
SESSION_WARNING = "session_warning"
OUTBOUND = "outbound"  # the send-time re-check of a queued message

# The events that change whether a pair may be messaged.
STATE_EVENTS = (OPT_OUT, OPT_IN)
