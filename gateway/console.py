"""The auditors' web console, under ``/console``: server-rendered pages.

Sign-in takes an auditor or admin API key; the session cookie holds only the
key's hash and role and is Secure, HttpOnly and SameSite=Strict. Every form
carries a CSRF token. The key is re-checked on every request, so revoking it
ends the session at once.
"""

from __future__ import annotations

import csv
import functools
import hmac
import io
import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Request,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface, SessionMixin

from . import chart, keys, numbers, revocation, schemas, services
from .messages import has_nul
from .store import EVENT_COLUMNS, OPT_OUT_COLUMNS
from .timestamps import parse_bound

bp = Blueprint("console", __name__, url_prefix="/console")
PAGE_SIZE = 50
MAX_PAGE = 10**9  # beyond every record, and within what the databases take as an offset
CHART_DAYS = 30


class SessionInterface(SecureCookieSessionInterface):
    """Signed cookie sessions for the console only.

    Nothing outside ``/console`` has a session, so the webhooks and the API
    do not pay for a cookie serializer on every request.
    """

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        if request.path != bp.url_prefix and not request.path.startswith(bp.url_prefix + "/"):
            return self.make_null_session(app)
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Never on a server error: whatever the request did to the session (a sign-in half done) is dropped."""
        if response.status_code >= 500:
            return
        super().save_session(app, session, response)


# Where a sign-in may send the browser on: a path of this console, in plain characters, and nothing else.
SAFE_NEXT = re.compile(r"/console(/[A-Za-z0-9._~+-]+)*/?(\?[A-Za-z0-9._~=&%+-]*)?")


def safe_next(target: str) -> str | None:
    """``target`` when it is a same-site path under ``/console`` made of safe characters; else None."""
    if SAFE_NEXT.fullmatch(target) and "/.." not in target and "/./" not in target:
        return target
    return None


@bp.after_request
def _security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


@bp.app_context_processor
def _template_helpers() -> dict[str, Any]:
    return {"csrf_token": csrf_token}


@bp.before_request
def _check_csrf() -> None:
    if request.method == "POST":
        sent = request.form.get("csrf_token", "")
        expected = session.get("csrf", "")
        if not expected or not hmac.compare_digest(sent, expected):
            abort(400, description="the form has expired or did not come from this console; reload and try again")


def signed_in(view: Callable) -> Callable:
    """Require a session whose key is still active; admins may do everything auditors may."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key_hash = session.get("key_hash")
        active = dict(services.store().active_api_keys())
        role = active.get(key_hash) if key_hash else None
        if not keys.allows(role, "auditor"):
            session.pop("key_hash", None)
            return redirect(url_for("console.sign_in", next=request.full_path.rstrip("?")))
        g.console_role = role
        return view(*args, **kwargs)

    return wrapper


def _admin_only() -> None:
    if not keys.allows(g.console_role, "admin"):
        abort(403, description="only admin keys may resolve candidates")


@bp.get("/")
def index():
    return redirect(url_for("console.opt_outs"))


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    error = None
    if request.method == "POST":
        key = request.form.get("key", "").strip()
        role = keys.find_role(key, services.store().active_api_keys()) if key else None
        if keys.allows(role, "auditor"):
            session.clear()
            session.permanent = True
            session["key_hash"] = keys.hash_key(key)
            # Only this console's own paths: never an open redirect, never a header.
            return redirect(safe_next(request.args.get("next", "")) or url_for("console.opt_outs"))
        g.outcome = "sign_in_refused"
        error = "That key is not valid for the console (it needs the auditor or admin role)."
    return render_template("console/sign_in.html", error=error), 401 if error else 200


@bp.post("/sign-out")
def sign_out():
    session.clear()
    return redirect(url_for("console.sign_in"))


def _filters() -> tuple[dict[str, str | None], list[str]]:
    values = {name: (request.args.get(name) or "").strip() or None for name in ("number", "twilio_number")}
    problems = []
    for name in ("number", "twilio_number"):
        reason = numbers.problem(values[name]) if values[name] else None
        if reason:
            problems.append(f"{name}: {values[name]!r} is not an E.164 number such as {numbers.EXAMPLE}: {reason}")
            values[name] = None
    for name, end in (("since", False), ("until", True)):
        raw = (request.args.get(name) or "").strip()
        try:
            values[name] = parse_bound(raw, end) if raw else None
        except ValueError as exc:
            values[name] = None
            problems.append(f"{name}: {exc}")
    return values, problems


@bp.get("/opt-outs")
@signed_in
def opt_outs():
    filters, problems = _filters()
    page = min(max(1, request.args.get("page", 1, type=int) or 1), MAX_PAGE)
    rows = services.store().current_opt_outs(**filters, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    today = datetime.now(UTC).date()
    series = chart.daily_series(
        services.store().daily_state_changes((today - timedelta(days=CHART_DAYS - 1)).isoformat()), today, CHART_DAYS
    )
    return render_template(
        "console/opt_outs.html",
        rows=rows[:PAGE_SIZE],
        page=page,
        more=len(rows) > PAGE_SIZE,
        args=request.args,
        problems=problems,
        chart=chart.bar_chart(series),
        series=series,
    )


@bp.get("/opt-outs.csv")
@signed_in
def opt_outs_csv():
    filters, problems = _filters()
    if problems:
        abort(400, description="; ".join(problems))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=OPT_OUT_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(services.store().current_opt_outs(**filters))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Response(
        buffer.getvalue(),
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="opt-outs-{stamp}.csv"'},
    )


@bp.get("/numbers")
@signed_in
def find_number():
    number = (request.args.get("number") or "").strip()
    if not number:
        flash("Enter a phone number to see its history.")
        return redirect(url_for("console.opt_outs"))
    reason = numbers.problem(number)
    if reason:
        flash(f"{number!r} is not an E.164 number such as {numbers.EXAMPLE}: {reason}.", "error")
        return redirect(url_for("console.opt_outs"))
    return redirect(url_for("console.timeline", number=number))


@bp.get("/numbers/<path:number>")
@signed_in
def timeline(number: str):
    reason = numbers.problem(number)
    if reason:
        abort(400, description=f"{number!r} is not an E.164 number such as {numbers.EXAMPLE}: {reason}")
    events = services.store().history(number)
    current = services.store().current_opt_outs(number=number)
    return render_template(
        "console/timeline.html", number=number, events=events, current=current, columns=EVENT_COLUMNS
    )


@bp.get("/integrity")
@signed_in
def integrity():
    return render_template("console/integrity.html", result=services.store().verify_ledger())


@bp.get("/candidates")
@signed_in
def candidates():
    status = request.args.get("status", "open")
    if status not in revocation.STATUSES:
        abort(400, description="status must be open, confirmed, dismissed or all")
    detector = current_app.config["REVOCATION"]
    rows = revocation.with_deadlines(services.store().revocation_candidates(status), detector.business_days_to_honour)
    return render_template(
        "console/candidates.html",
        rows=rows,
        status=status,
        can_resolve=keys.allows(g.console_role, "admin"),
        days=detector.business_days_to_honour,
    )


@bp.post("/candidates/<int:candidate_id>/<any(confirm, dismiss):action>")
@signed_in
def resolve(candidate_id: int, action: str):
    _admin_only()
    if candidate_id > schemas.MAX_ID:
        flash(f"no revocation candidate {candidate_id}", "error")
        return redirect(url_for("console.candidates"))
    person = request.form.get("by", "").strip()
    note = request.form.get("note", "").strip() or None
    if has_nul(person, note):
        flash("Names and notes must not contain NUL characters.", "error")
        return redirect(url_for("console.candidates"))
    if not person or (action == "dismiss" and not note):
        flash("Say who you are" + (" and why it is not a revocation." if action == "dismiss" else "."), "error")
        return redirect(url_for("console.candidates"))
    try:
        services.store().resolve_candidate(candidate_id, action == "confirm", person, note)
    except (LookupError, ValueError) as exc:
        flash(str(exc.args[0]), "error")
    else:
        flash(f"Candidate {candidate_id} {action}ed by {person}.")
    return redirect(url_for("console.candidates"))
