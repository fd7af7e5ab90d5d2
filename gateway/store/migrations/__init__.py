"""The schema, as versioned migrations per backend (``sqlite.py``, ``postgres.py``).

Both backends hold the same tables with the same columns and the same
values (timestamps as ISO 8601 text, flags as 0/1 integers, JSON as text),
so records copy between them unchanged and the ledger's hashes match.
"""

# Every table of records, in the order ``gateway db copy`` fills them, with the
# columns that order their rows (a stable order, so a copy can be compared row
# by row). Not here: schema_version and health_probe, which hold no records.
TABLES = {
    "events": "id",
    "ledger_head": "id",
    "opt_outs": "number, twilio_number",
    "inbound_messages": "id",
    "revocation_candidates": "id",
    "api_keys": "id",
    "outbound_messages": "id",
    "status_callbacks": "message_sid, status",
    "pairs": "number, twilio_number",
    "rate_buckets": "bucket",
    "sessions": "id",
    "consents": "id",
    "consent_sync": "id",
    "clarifications": "id",
}

# The tables that gained an ``account`` column when accounts came (SQLite 8, PostgreSQL 4): fixed, as a
# migration must be.
ACCOUNTS_ADDED_TO = ("events", "opt_outs", "inbound_messages", "revocation_candidates", "outbound_messages", "sessions")
# The tables whose records belong to one Twilio account (the ``account`` column, an Account SID;
# empty for records made before accounts were recorded, or without one).
ACCOUNT_TABLES = (*ACCOUNTS_ADDED_TO, "consents", "consent_sync", "clarifications")
