"""The read-only HTTP API for auditors, under ``/v1``. JSON, or CSV on request."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, request

from .auth import require_role
from .store import EVENT_COLUMNS, OPT_OUT_COLUMNS, Store
from .timestamps import parse_bound

bp = Blueprint("api", __name__, url_prefix="/v1")

MAX_LIMIT = 1000


def _store() -> Store:
    return current_app.extensions["gateway.store"]


def _wants_csv() -> bool:
    if request.args.get("format"):
        fmt = request.args["format"]
        if fmt not in ("json", "csv"):
            abort(400, description=f"format must be json or csv, got {fmt!r}")
        return fmt == "csv"
    return request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv"


def _csv(rows: Sequence[dict[str, Any]], columns: Sequence[str], filename: str) -> Response:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return Response(
        buffer.getvalue(),
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
        "number": request.args.get("number") or None,
        "twilio_number": request.args.get("twilio_number") or None,
        "since": _bound("since"),
        "until": _bound("until", end_of_day=True),
    }
    as_csv = _wants_csv()
    rows = _store().current_opt_outs(**filters, limit=limit + 1, offset=offset)
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
    """Every event for one number across all Twilio numbers, oldest first."""
    as_csv = _wants_csv()
    rows = _store().history(number)
    if as_csv:
        return _csv(rows, EVENT_COLUMNS, "history.csv")
    return jsonify({"number": number, "data": rows})


@bp.get("/audit/verify")
@require_role("auditor")
def audit_verify():
    """Walk the hash chain; 200 with ok true or false (the check itself succeeded)."""
    return jsonify(_store().verify_ledger().as_dict())
