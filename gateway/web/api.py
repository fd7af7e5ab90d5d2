"""The HTTP API under ``/v1``: auditors read, admins resolve, senders send. JSON, or CSV on request."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from flask import Blueprint, Response, abort, current_app, g, jsonify, request, stream_with_context
from werkzeug.exceptions import TooManyRequests

from ..core import consent, events, numbers, revocation, spreadsheet
from ..core.messages import unstorable
from ..core.ratelimit import Limit, retry_after
from ..core.stats import summarise
from ..core.timestamps import parse_bound
from ..messaging import services
from ..messaging.outbound import OutboundError
from ..store import EVENT_COLUMNS, OPT_OUT_COLUMNS
from . import schemas
from .auth import require_role

bp = Blueprint("api", __name__, url_prefix="/v1")
try:
    VERSION = version("twilio-sms-gateway")
except PackageNotFoundError:  # running from a source tree that was not installed
    VERSION = "0+unknown"

MAX_LIMIT = 1000


def _wants_csv() -> bool:
    if request.args.get("format"):
        fmt = request.args["format"]
        if fmt not in ("json", "csv"):
            abort(400, description=f"format must be json or csv, got {fmt!r}")
        return fmt == "csv"
    return request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv"


def _csv(rows: Sequence[dict[str, Any]], columns: Sequence[str], filename: str) -> Response:
    return Response(
        spreadsheet.text(rows, columns),
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        abort(400, description=f"{name} must be a whole number, got {raw!r}")
    if not low <= value <= high:
        abort(400, description=f"{name} must be between {low} and {high}, got {value}")
    return value


def _number(name: str, value: str | None) -> str | None:
    """``value`` when it is empty or an E.164 number; otherwise a 400 naming ``name``."""
    if not value:
        return None
    reason = numbers.problem(value)
    if reason:
        abort(400, description=f"{name} {value!r} is not an E.164 number such as {numbers.EXAMPLE}: {reason}")
    return value


def _bound(name: str, end_of_day: bool = False) -> str | None:
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        return parse_bound(raw, end_of_day)
    except ValueError as exc:
        abort(400, description=f"{name}: {exc}")


@bp.get("/opt-outs")
@require_role("auditor")
def opt_outs():
    """Current opt-outs, filtered and paginated (``limit``, ``offset``)."""
    limit = _int_arg("limit", 100, 1, MAX_LIMIT)
    offset = _int_arg("offset", 0, 0, 10**12)
    filters = {
        "number": _number("number", request.args.get("number")),
        "twilio_number": _number("twilio_number", request.args.get("twilio_number")),
        "since": _bound("since"),
        "until": _bound("until", end_of_day=True),
    }
    as_csv = _wants_csv()
    rows = services.store().current_opt_outs(**filters, limit=limit + 1, offset=offset, accounts=g.grant.accounts)
    more = len(rows) > limit
    rows = rows[:limit]
    if as_csv:
        return _csv(rows, OPT_OUT_COLUMNS, "opt-outs.csv")
    body: dict[str, Any] = {
        "data": rows,
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if more else None,
    }
    return jsonify(body)


@bp.get("/opt-outs/<path:number>/history")
@require_role("auditor")
def history(number: str):
    """A number's consent timeline: every event for it across all Twilio numbers, oldest first, each with
    ``change`` (granted, revoked, re-granted, ...); ``records`` counts them (0: none)."""
    _number("number", number)
    as_csv = _wants_csv()
    rows = consent.timeline(services.store().history(number, accounts=g.grant.accounts))
    if as_csv:
        return _csv(rows, ["id", "change", *EVENT_COLUMNS[1:]], "history.csv")
    return jsonify({"number": number, "records": len(rows), "data": rows})


@bp.get("/audit/verify")
@require_role("auditor")
def audit_verify():
    """Walk the hash chain; 200 with ok true or false (the check itself succeeded)."""
    return jsonify(services.store().verify_ledger(accounts=g.grant.accounts).as_dict())


@bp.get("/audit/proof")
@require_role("auditor")
def audit_proof():
    """The chain as this key's accounts may see it, a JSON object a line, streamed (see ledger.shown)."""
    lines = (
        json.dumps(record, ensure_ascii=False) + "\n" for record in services.store().ledger_proof(g.grant.accounts)
    )
    return Response(stream_with_context(lines), content_type="application/x-ndjson; charset=utf-8")


@bp.get("/stats")
@require_role("auditor")
def stats():
    """Outbound delivery figures (sent, delivered, ... delivery rate) in total, per Twilio number and per day."""
    since, until = _bound("since"), _bound("until", end_of_day=True)
    counts = services.store().outbound_counts(since, until, accounts=g.grant.accounts)
    return jsonify({"since": since, "until": until, **summarise(counts)})


@bp.get("/revocation-candidates")
@require_role("auditor")
def revocation_candidates():
    """Candidates with their age in business days; ``status`` open (default), confirmed, dismissed, all."""
    status = request.args.get("status", "open")
    if status not in revocation.STATUSES:
        abort(400, description=f"status must be open, confirmed, dismissed or all, got {status!r}")
    detector = current_app.config["REVOCATION"]
    found = services.store().revocation_candidates(status, accounts=g.grant.accounts)
    rows = revocation.with_deadlines(found, detector.business_days_to_honour)
    return jsonify({"data": rows, "business_days_to_honour": detector.business_days_to_honour})


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    """The request's JSON body, checked against its declared shape (:mod:`gateway.schemas`); else a 4xx."""
    if not request.is_json:
        abort(415, description="send the body as JSON, with Content-Type: application/json")
    try:
        body = json.loads(request.get_data(cache=True) or b"null")
    except RecursionError:
        abort(400, description="the JSON body is nested too deeply")
    except ValueError as exc:  # also bytes that are not UTF-8
        abort(400, description=f"the body is not valid JSON: {str(exc).splitlines()[0][:120]}")
    try:
        body = schemas.check(schema, body)
    except schemas.ShapeError as exc:
        abort(400, description=str(exc))
    for name, value in _strings(body):
        problem = unstorable(value)
        if problem:
            abort(400, description=f"{name} {problem}")
    return body


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a JSON value, with where it is (``variables.name``)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3.1 document of this API, generated from the declarations the requests are checked against."""
    return jsonify(schemas.document(VERSION))


@bp.post("/revocation-candidates/<int:candidate_id>/<any(confirm, dismiss):action>")
@require_role("admin")
def resolve_candidate(candidate_id: int, action: str):
    """Confirm (the pair is opted out) or dismiss a candidate; ``by`` required, ``note`` required to dismiss."""
    fields = _body(schemas.CONFIRM if action == "confirm" else schemas.DISMISS)
    if candidate_id > schemas.MAX_ID:
        abort(404, description=f"no revocation candidate {candidate_id}")
    by, note = fields["by"].strip(), (fields.get("note") or "").strip() or None
    try:
        result = services.store().resolve_candidate(
            candidate_id, action == "confirm", by, note, accounts=g.grant.accounts
        )
    except LookupError as exc:
        abort(404, description=str(exc.args[0]))
    except ValueError as exc:
        abort(409, description=str(exc.args[0]))
    return jsonify(result)


@bp.post("/<any('opt-outs', 'opt-ins'):kind>")
@require_role("admin")
def manual_record(kind: str):
    """Record a revocation (``/v1/opt-outs``) or renewed consent (``/v1/opt-ins``) received by other means."""
    fields = _body(schemas.MANUAL)
    for name in ("number", "twilio_number"):
        _number(name, fields[name])
    store = services.store()
    if not g.grant.sees(store.account_of(fields["twilio_number"])):  # as if the number were not the gateway's
        abort(404, description="twilio_number: not one of the numbers of this key's accounts")
    result = store.record_manual(
        fields["number"], fields["twilio_number"], kind == "opt-outs", fields["reason"].strip(), fields["by"].strip()
    )
    return jsonify(result), 201


def _rate_limit(name: str) -> None:
    """Spend one of the calling key's tokens for ``name``, or answer 429 with Retry-After."""
    limit = Limit(current_app.config["RATE_LIMIT_PER_SECOND"], current_app.config["RATE_LIMIT_BURST"])
    wait = services.store().take_token(f"{name}:{g.api_key_hash}", limit, time.time())
    if wait:
        g.outcome = "rate_limited"
        seconds = retry_after(wait)
        raise TooManyRequests(
            description=f"this key may send {limit.rate:g} requests per second (bursts of {limit.burst}); "
            f"retry after {seconds}s",
            retry_after=seconds,
        )


@bp.post("/outbound-sms")
@require_role("sender")
def outbound_sms():
    """Queue one SMS: ``to_number`` and ``content``, or ``template`` and ``variables``; 202."""
    _rate_limit("outbound-sms")
    body = _body(schemas.OUTBOUND)
    variables = body.get("variables") or {}
    sender = services.outbound()
    if not sender.enabled:  # the operator's to fix, not the client's, and no retry helps: not a 503
        abort(501, description=f"sending is not set up on this gateway: {sender.why_disabled()}")
    try:
        result = sender.queue(
            body.get("to_number"),
            content=body.get("content"),
            template=body.get("template"),
            variables=variables,
            agent_number=body.get("agent_number"),
            source=events.API,
            accounts=g.grant.accounts,
            category=body.get("category"),
        )
    except OutboundError as exc:
        abort(400, description=str(exc))
    g.outcome = result["status"]
    fields = ("id", "status", "encoding", "segments", "sender", "reason")
    return jsonify({key: result[key] for key in fields if key in result}), 202


@bp.post("/consents")
@require_role("recorder")
def record_consent():
    """Record one consent grant (see gateway.consent); 201 with the record."""
    fields = _body(schemas.CONSENT)
    store = services.store()
    try:
        grant = consent.grant(fields, store.consent_rules.categories, store.clock(), store.api_key_name(g.api_key_hash))
    except ValueError as exc:
        abort(400, description=str(exc))
    if grant.sender == consent.BUSINESS and g.grant.accounts is not None:
        abort(403, description="sender *: a key limited to some accounts may record consent only to their senders")
    if not g.grant.sees(store.account_of(grant.sender) if grant.sender != consent.BUSINESS else None):
        abort(404, description="sender: not one of the numbers of this key's accounts")
    recorded = store.record_consent(grant)
    (row,) = [c for c in store.consents(grant.number) if c["id"] == recorded["id"]]
    return jsonify(row), 201


@bp.post("/consents/withdrawals")
@require_role("recorder")
def withdraw_consent():
    """Record a withdrawal of one category; 201, 400 for a category require_consent does not name, 404 when
    no current consent matches."""
    fields = _body(schemas.WITHDRAWAL)
    _number("number", fields["number"])
    sender = fields.get("sender") or consent.BUSINESS
    if consent.sender_problem(sender):
        abort(400, description=f"sender: {sender!r} {consent.sender_problem(sender)}")
    store = services.store()
    if sender == consent.BUSINESS and g.grant.accounts is not None:
        abort(403, description="sender *: a key limited to some accounts may withdraw only from their senders")
    if sender != consent.BUSINESS and not g.grant.sees(store.account_of(sender)):
        abort(404, description="sender: not one of the numbers of this key's accounts")
    try:
        result = store.withdraw_consent(
            fields["number"], fields["category"], sender, fields["reason"].strip(), fields["by"].strip()
        )
    except ValueError as exc:
        abort(400, description=str(exc.args[0]))
    except LookupError as exc:
        abort(404, description=str(exc.args[0]))
    return jsonify(result), 201


@bp.get("/consents")
@require_role("auditor")
def list_consents():
    """A number's consents, oldest first (``current=true``: only those that have not ended)."""
    number = _number("number", request.args.get("number"))
    if number is None:
        abort(400, description="number is required, an E.164 number such as " + numbers.EXAMPLE)
    current = request.args.get("current", "false")
    if current not in ("true", "false"):
        abort(400, description=f"current must be true or false, got {current!r}")
    rows = services.store().consents(number, current=current == "true", accounts=g.grant.accounts)
    return jsonify({"number": number, "records": len(rows), "data": rows})
