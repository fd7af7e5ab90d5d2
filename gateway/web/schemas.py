"""The HTTP API's shapes: one declaration per operation, for checking requests and for the OpenAPI document. Pure.

Each operation declares its query parameters, its JSON body (a JSON Schema,
draft 2020-12, the dialect of OpenAPI 3.1) and its answers. The API checks
every request body against the declaration (:func:`check`), and
``GET /v1/openapi.json`` is :func:`document`, built from the same table, so
what is published cannot drift from what is accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

MAX_ID = 2**63 - 1  # the largest id either database keeps

# -- pieces ---------------------------------------------------------------------

PHONE = {"type": "string", "description": "An E.164 phone number.", "examples": ["+14155550100"]}
TEXT = {"type": "string", "minLength": 1, "maxLength": 2000, "pattern": r"\S"}  # not empty, not only spaces
MAYBE_TEXT = {"type": ["string", "null"]}
STAMP = {
    "type": "string",
    "description": "UTC, ISO 8601 with microseconds.",
    "examples": ["2026-11-23T07:36:38.863423Z"],
}
ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "The HTTP status in words."},
        "message": {"type": "string", "description": "What was wrong, in one line."},
    },
}


def _record(properties: Mapping[str, Any], required: tuple[str, ...] | None = None) -> dict[str, Any]:
    return {"type": "object", "required": list(required or properties), "properties": dict(properties)}


OPT_OUT = _record(
    {
        "number": PHONE,
        "twilio_number": PHONE,
        "opted_out_at": STAMP,
        "source": {"type": "string"},
        "message_sid": MAYBE_TEXT,
    }
)
EVENT = _record(
    {
        "id": {"type": "integer"},
        "event": {"type": "string", "examples": ["opt_out"]},
        "number": {"type": "string"},
        "twilio_number": {"type": "string"},
        "at": STAMP,
        "source": {"type": "string"},
        "state_changed": {"type": "boolean"},
        "message_sid": MAYBE_TEXT,
        "body": MAYBE_TEXT,
        "detail": {"type": ["object", "null"]},
        "hash": {"type": "string"},
    }
)
TIMELINE_EVENT = {
    **EVENT,
    "properties": {
        **EVENT["properties"],
        "change": {
            "type": "string",
            "description": "What the event did to consent: granted, re-granted, revoked, opted in; else its kind.",
            "examples": ["revoked"],
        },
    },
    "required": [*EVENT["required"], "change"],
}
FIGURES = {
    **{name: {"type": "integer"} for name in ("sent", "delivered", "undelivered", "failed", "suppressed", "pending")},
    "logged": {"type": "integer", "description": "Printed by the console SMS backend (development), never sent."},
    "segments": {"type": "integer"},
    "delivery_rate": {"type": ["number", "null"]},
}
CANDIDATE = _record(
    {
        "id": {"type": "integer"},
        "number": {"type": "string"},
        "twilio_number": {"type": "string"},
        "body": MAYBE_TEXT,
        "pattern": {"type": "string"},
        "message_sid": {"type": "string"},
        "received_at": STAMP,
        "status": {"enum": ["open", "confirmed", "dismissed"]},
        "resolved_by": MAYBE_TEXT,
        "resolved_at": MAYBE_TEXT,
        "resolution_note": MAYBE_TEXT,
        "age_business_days": {"type": "integer"},
        "due_by": {"type": "string"},
        "overdue": {"type": "boolean"},
    }
)
RECORDED = _record({"event_id": {"type": "integer"}, "state_changed": {"type": "boolean"}, "at": STAMP})

# -- request bodies -----------------------------------------------------------------


def _body(properties: Mapping[str, Any], required: tuple[str, ...], **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": dict(properties),
        "required": list(required),
        "additionalProperties": False,
        **extra,
    }


MANUAL = _body(
    {
        "number": {**PHONE, "description": "The person's number."},
        "twilio_number": {**PHONE, "description": "The Twilio number the revocation or consent concerns."},
        "reason": {**TEXT, "description": "How it was received, e.g. 'phone call to support, ticket 4411'."},
        "by": {**TEXT, "description": "Who is recording it."},
    },
    ("number", "twilio_number", "reason", "by"),
)
CONSENT = _body(
    {
        "number": {**PHONE, "description": "The person's number."},
        "sender": {
            "type": "string",
            "description": "The business's sender the consent is to: a Twilio number, a Messaging Service SID, "
            "or * for the whole business.",
            "examples": ["+15005550006", "*"],
        },
        "category": {
            "type": "string",
            "description": "One of consent_categories, e.g. marketing.",
            "examples": ["marketing"],
        },
        "method": {"enum": ["web_form", "paper", "verbal", "import", "api"], "description": "How it was given."},
        "given_at": {**STAMP, "description": "When it was given (UTC; a date or ISO 8601); now when absent."},
        "wording": {**TEXT, "maxLength": 4000, "description": "The exact wording the person agreed to."},
        "evidence": {
            "type": "object",
            "additionalProperties": {"type": "string", "maxLength": 2000},
            "description": "Form URL, IP address, user agent, document reference, ...",
            "examples": [{"form_url": "https://acme.example/join", "ip": "203.0.113.7"}],
        },
    },
    ("number", "sender", "category", "method", "wording"),
)
WITHDRAWAL = _body(
    {
        "number": {**PHONE, "description": "The person's number."},
        "category": {"type": "string", "description": "The kind of message withdrawn (one require_consent names)."},
        "sender": {"type": "string", "description": "The sender it is withdrawn from; * (the default) for every one."},
        "reason": {**TEXT, "description": "How it was received, e.g. 'email to support, ticket 88'."},
        "by": {**TEXT, "description": "Who is recording it."},
    },
    ("number", "category", "reason", "by"),
)
CONSENT_RECORD = _record(
    {
        "id": {"type": "integer"},
        "number": PHONE,
        "sender": {"type": "string"},
        "category": {"type": "string"},
        "method": {"type": "string"},
        "given_at": STAMP,
        "wording": {"type": "string"},
        "evidence": {"type": "object"},
        "recorded_by": {"type": "string"},
        "recorded_at": STAMP,
        "event_id": {"type": "integer"},
        "ended_at": {"type": ["string", "null"]},
        "ended_by_event_id": {"type": ["integer", "null"]},
    }
)
CONFIRM = _body({"by": TEXT, "note": {"type": "string", "maxLength": 2000}}, ("by",))
DISMISS = _body({"by": TEXT, "note": {**TEXT, "description": "Why it is not a revocation."}}, ("by", "note"))
OUTBOUND = _body(
    {
        "to_number": {**PHONE, "description": "The recipient."},
        "content": {"type": "string", "maxLength": 1600, "description": "The text; or give template."},
        "template": {"type": "string", "description": "A template's name (NAME.toml in the templates folder)."},
        "variables": {
            "type": "object",
            "additionalProperties": {"type": ["string", "number"]},
            "description": "The template's tokens and their values.",
        },
        "agent_number": {"type": "string", "description": "One of this environment's senders; the first by default."},
        "category": {
            "type": "string",
            "description": "What kind of message (one of consent_categories; default_category when absent): "
            "with require_consent on for it, a recipient with no current consent is suppressed (reason no_consent).",
        },
    },
    ("to_number",),
    oneOf=[{"required": ["content"]}, {"required": ["template"]}],
)
# What to say when a combination (oneOf) fails, where the schema alone would be cryptic: with both, with neither.
COMBINATIONS = {
    id(OUTBOUND): (
        "give content or template (with variables), not both",
        "give the text as content, or a template with variables",
    )
}

# -- operations -------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # OpenAPI form, under /v1
    summary: str
    role: str | None  # the API key role it needs; None: open
    answer: tuple[int, str, dict[str, Any]]  # status, description, JSON schema
    body: dict[str, Any] | None = None
    query: tuple[tuple[str, dict[str, Any], str], ...] = ()  # (name, schema, description)
    path_parameters: tuple[tuple[str, dict[str, Any]], ...] = ()
    errors: tuple[int, ...] = ()
    csv: bool = False  # also answers text/csv (?format=csv or Accept)
    extra: dict[str, Any] = field(default_factory=dict)
    media: str | None = None  # the answer is this streamed media type, not JSON


FORMAT = ("format", {"enum": ["json", "csv"]}, "json (the default) or csv; or ask with Accept: text/csv.")
SINCE = ("since", {"type": "string", "examples": ["2026-11-01"]}, "On or after: a date or ISO 8601 date-time (UTC).")
UNTIL = ("until", {"type": "string", "examples": ["2026-11-30"]}, "On or before; a bare date is that whole day.")
ADMIN_BODY_ERRORS = (400, 401, 403, 415)

OPERATIONS = (
    Operation(
        "get",
        "/opt-outs",
        "Current opt-outs, oldest first, filtered and paginated.",
        "auditor",
        (
            200,
            "A page of opt-outs.",
            _record(
                {
                    "data": {"type": "array", "items": OPT_OUT},
                    "limit": {"type": "integer"},
                    "offset": {"type": "integer"},
                    "next_offset": {"type": ["integer", "null"]},
                }
            ),
        ),
        query=(
            ("number", PHONE, "Only this sender number."),
            ("twilio_number", PHONE, "Only this Twilio number."),
            SINCE,
            UNTIL,
            ("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "Rows per page."),
            ("offset", {"type": "integer", "minimum": 0, "maximum": 10**12, "default": 0}, "Rows to skip."),
            FORMAT,
        ),
        errors=(400, 401, 403),
        csv=True,
    ),
    Operation(
        "get",
        "/opt-outs/{number}/history",
        "Every event for one number across all Twilio numbers, oldest first; records counts them (0: none).",
        "auditor",
        (
            200,
            "The number's history.",
            _record(
                {"number": PHONE, "records": {"type": "integer"}, "data": {"type": "array", "items": TIMELINE_EVENT}}
            ),
        ),
        query=(FORMAT,),
        path_parameters=(("number", PHONE),),
        errors=(400, 401, 403, 404),
        csv=True,
    ),
    Operation(
        "post",
        "/consents",
        "Record a consent: who agreed to which messages from which sender, when, how, to what wording, with "
        "evidence; a chained event.",
        "recorder",
        (201, "The consent record.", CONSENT_RECORD),
        body=CONSENT,
        errors=(400, 401, 403, 404, 415),
    ),
    Operation(
        "post",
        "/consents/withdrawals",
        "Record that a number withdrew its consent to one kind of message (a category require_consent names), "
        "keeping the others: a chained event that ends the matching consents.",
        "recorder",
        (
            201,
            "The withdrawal.",
            _record(
                {"event_id": {"type": "integer"}, "ended": {"type": "array", "items": {"type": "integer"}}, "at": STAMP}
            ),
        ),
        body=WITHDRAWAL,
        errors=(400, 401, 403, 404, 415),
    ),
    Operation(
        "get",
        "/consents",
        "A number's consents, oldest first, each with when and by which revocation it ended (if it did).",
        "auditor",
        (
            200,
            "The number's consents.",
            _record(
                {"number": PHONE, "records": {"type": "integer"}, "data": {"type": "array", "items": CONSENT_RECORD}}
            ),
        ),
        query=(
            ("number", PHONE, "The person's number (required)."),
            ("current", {"enum": ["true", "false"]}, "true: only consents that have not ended."),
        ),
        errors=(400, 401, 403),
    ),
    Operation(
        "get",
        "/audit/verify",
        "Walk the hash chain: ok true, or the first broken event (the check itself succeeded either way).",
        "auditor",
        (
            200,
            "The verification.",
            _record(
                {
                    "ok": {"type": "boolean"},
                    "events_checked": {"type": "integer"},
                    "other_accounts_events_checked": {"type": "integer"},
                    "head": {"type": "string"},
                    "broken_event": {"type": ["integer", "null"]},
                    "reason": MAYBE_TEXT,
                }
            ),
        ),
        errors=(401, 403),
    ),
    Operation(
        "get",
        "/audit/proof",
        "A proof of the chain for this key's accounts, to check offline (gateway audit check-proof): one JSON "
        "object a line, the head first, then every event, whole if it is the key's accounts', else by its digest.",
        "auditor",
        (200, "The proof, as JSON lines.", {}),
        errors=(401, 403),
        media="application/x-ndjson",
    ),
    Operation(
        "get",
        "/stats",
        "Outbound delivery figures in total, per Twilio number and per day.",
        "auditor",
        (
            200,
            "The figures.",
            _record(
                {
                    "since": MAYBE_TEXT,
                    "until": MAYBE_TEXT,
                    "totals": _record(FIGURES),
                    "by_twilio_number": {"type": "array", "items": _record({"twilio_number": PHONE, **FIGURES})},
                    "by_day": {"type": "array", "items": _record({"day": {"type": "string"}, **FIGURES})},
                }
            ),
        ),
        query=(SINCE, UNTIL),
        errors=(400, 401, 403),
    ),
    Operation(
        "get",
        "/revocation-candidates",
        "Messages that read like a revocation, with their age in business days and due date.",
        "auditor",
        (
            200,
            "The candidates.",
            _record({"data": {"type": "array", "items": CANDIDATE}, "business_days_to_honour": {"type": "integer"}}),
        ),
        query=(("status", {"enum": ["open", "confirmed", "dismissed", "all"], "default": "open"}, "Which ones."),),
        errors=(400, 401, 403),
    ),
    *(
        Operation(
            "post",
            f"/revocation-candidates/{{candidate_id}}/{action}",
            summary,
            "admin",
            (
                200,
                "The resolution, a chained event.",
                _record({**RECORDED["properties"], "candidate": {"type": "integer"}, "status": {"type": "string"}}),
            ),
            body=body,
            path_parameters=(("candidate_id", {"type": "integer", "minimum": 1, "maximum": MAX_ID}),),
            errors=(*ADMIN_BODY_ERRORS, 404, 409),
        )
        for action, summary, body in (
            ("confirm", "Confirm a candidate as a revocation: the pair is opted out (source manual).", CONFIRM),
            ("dismiss", "Dismiss a candidate: it was not a revocation; the reason is recorded.", DISMISS),
        )
    ),
    *(
        Operation(
            "post",
            f"/{kind}",
            summary,
            "admin",
            (201, "The record, a chained event.", RECORDED),
            body=MANUAL,
            errors=(*ADMIN_BODY_ERRORS, 404),
        )
        for kind, summary in (
            ("opt-outs", "Record a revocation received by other means (a call, an email)."),
            ("opt-ins", "Record consent given again by other means."),
        )
    ),
    Operation(
        "post",
        "/outbound-sms",
        "Queue one SMS: content, or a template with variables. Suppressed (still 202) when the recipient opted out.",
        "sender",
        (
            202,
            "Queued, or suppressed.",
            _record(
                {
                    "id": {"type": "integer"},
                    "status": {"enum": ["queued", "suppressed"]},
                    "encoding": {"type": "string"},
                    "segments": {"type": "integer"},
                    "sender": {"type": "string"},
                    "reason": {"enum": ["opted_out", "no_consent", None], "description": "Why it was suppressed."},
                },
                ("id", "status", "encoding", "segments", "sender"),
            ),
        ),
        body=OUTBOUND,
        errors=(400, 401, 403, 415, 429, 501, 503),
    ),
)

ERROR_DESCRIPTIONS = {
    400: "The request is invalid; the message says what to fix.",
    401: "No API key, or an unknown or revoked one.",
    403: "The key's role may not do this.",
    404: "No such record (or, with an empty path parameter, no such path).",
    409: "The record was already resolved.",
    415: "The body is not JSON (send Content-Type: application/json).",
    429: "Over the key's rate limit; see Retry-After.",
    501: "Sending is not set up on this gateway (no Twilio account, token or sender number for this environment): "
    "the operator must configure it, and no retry helps.",
    503: "The database cannot store now; retry later.",
}

# -- checking -----------------------------------------------------------------------------


class ShapeError(ValueError):
    """A body that does not have its declared shape; the message names the field and what was expected."""


# One validator for every body an operation declares: a new operation cannot forget its own.
_VALIDATORS = {id(op.body): Draft202012Validator(op.body) for op in OPERATIONS if op.body is not None}
_KINDS = {
    "string": "a string",
    "object": "an object",
    "array": "an array",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def _kind(value: object) -> str:
    for kind, name in ((dict, "an object"), (list, "an array"), (str, "a string"), (bool, "true or false")):
        if isinstance(value, kind):
            return name
    if isinstance(value, (int, float)):
        return "a number"
    return "null"


def check(schema: dict[str, Any], body: object) -> dict[str, Any]:
    """``body`` if it has the shape ``schema`` declares; otherwise :class:`ShapeError` in one line."""
    errors = list(_VALIDATORS[id(schema)].iter_errors(body))
    if not errors:
        return body  # type: ignore[return-value]
    wrong_types = [error for error in errors if error.validator == "type"]  # the most telling, wherever they are
    raise ShapeError(_describe(schema, best_match(wrong_types or errors)))


def _describe(schema: dict[str, Any], error: ValidationError) -> str:
    path = ".".join(str(part) for part in error.absolute_path)
    where = path or "the body"
    if error.validator == "type":
        expected = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        if not path:
            return f"expected a JSON object body, got {_kind(error.instance)}"
        return f"{where} must be {' or '.join(_KINDS[kind] for kind in expected)}, got {_kind(error.instance)}"
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in error.instance]
        return f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} required"
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"unknown field(s): {', '.join(extra)}"
    if error.validator in ("minLength", "pattern"):
        return f"{where} must not be empty"
    if error.validator == "maxLength":
        return f"{where} is {len(error.instance)} characters; at most {error.validator_value}"
    if error.validator in ("oneOf", "anyOf", "not") and id(schema) in COMBINATIONS:
        both, neither = COMBINATIONS[id(schema)]
        required = [name for option in error.validator_value for name in option.get("required", ())]
        return both if all(name in error.instance for name in required) else neither
    if error.validator in ("oneOf", "anyOf", "not"):
        return f"{where} does not match its declared shape"
    if error.validator == "enum":
        return f"{where} must be one of {', '.join(map(str, error.validator_value))}, got {error.instance!r}"
    return f"{where}: {error.message}"


# -- the document ------------------------------------------------------------------------------


def document(version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``/v1``, from :data:`OPERATIONS`."""
    paths: dict[str, dict[str, Any]] = {}
    for operation in OPERATIONS:
        status, description, schema = operation.answer
        content: dict[str, Any] = {"application/json": {"schema": schema}}
        if operation.media:
            content = {operation.media: {"schema": {"type": "string"}}}
        if operation.csv:
            content["text/csv"] = {"schema": {"type": "string"}}
        responses: dict[str, Any] = {str(status): {"description": description, "content": content}}
        for code in operation.errors:
            responses[str(code)] = {
                "description": ERROR_DESCRIPTIONS[code],
                "content": {"application/json": {"schema": ERROR}},
            }
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": schema}
            for name, schema in operation.path_parameters
        ] + [
            {"name": name, "in": "query", "required": False, "schema": schema, "description": text}
            for name, schema, text in operation.query
        ]
        entry: dict[str, Any] = {
            "summary": operation.summary,
            "operationId": f"{operation.method}{operation.path}".replace("/", "_").replace("{", "").replace("}", ""),
            "responses": responses,
        }
        if parameters:
            entry["parameters"] = parameters
        if operation.body is not None:
            entry["requestBody"] = {"required": True, "content": {"application/json": {"schema": operation.body}}}
        if operation.role:
            entry["security"] = [{"apiKey": []}]
            entry["description"] = f"Needs an API key with the {operation.role} role (admins may do what auditors may)."
        paths.setdefault(f"/v1{operation.path}", {})[operation.method] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "SMS compliance gateway for Twilio",
            "version": version,
            "description": "Opt-out records for auditors, manual records for admins, the outbound SMS API for senders.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "gateway keys create --role ..."}
            }
        },
    }
