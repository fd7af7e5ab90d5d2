"""The auditors' web console, under ``/console``: server-rendered pages.

Sign-in takes an auditor or admin API key; the session cookie holds only the
key's hash and role and is Secure, HttpOnly and SameSite=Strict. Every form
carries a CSRF token. The key is re-checked on every request, so revoking it
ends the session at once.
"""

from __future__ import annotations

import functools
import hmac
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
from werkzeug.exceptions import HTTPException

from ..core import consent, keys, numbers, revocation, spreadsheet, timestamps
from ..core.messages import has_nul
from ..core.timestamps import parse_bound
from ..messaging import services
from ..store import EVENT_COLUMNS, LIST_KEY, OPT_OUT_COLUMNS
from . import chart, logs, schemas

bp = Blueprint("console", __name__, url_prefix="/console")
PAGE_SIZE = 50
CHART_DAYS = 30
CURSOR_SEPARATOR = "|"  # in no timestamp and no E.164 number


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


@bp.errorhandler(HTTPException)
def _error_page(error: HTTPException) -> Response | HTTPException:
    """A refusal in the console is a page of the console: its layout, the reason, and a way on."""
    if error.code is None or error.code >= 500:
        return error
    return Response(
        render_template("console/error.html", code=error.code, name=error.name, reason=logs.reason_of(error)),
        status=error.code,
        headers={name: value for name, value in error.get_headers() if name.lower() != "content-type"},
    )


@bp.after_request
def _security_headers(response: Response) -> Response:
    # A self-contained page (the evidence page) carries its own style, allowed by this response's nonce only.
    styles = "'self'" + (f" 'nonce-{g.style_nonce}'" if g.get("style_nonce") else "")
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src {styles}; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
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


@bp.app_template_filter("readable")
def _readable(stamp: str | None) -> str:
    return timestamps.readable(stamp)


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
        active = {stored: (role, accounts) for stored, role, accounts in services.store().active_api_keys()}
        role, accounts = active.get(key_hash, (None, None)) if key_hash else (None, None)
        if not keys.allows(role, "auditor"):
            session.pop("key_hash", None)
            return redirect(url_for("console.sign_in", next=request.full_path.rstrip("?")))
        g.grant = keys.Grant.stored(role, accounts)
        return view(*args, **kwargs)

    return wrapper


def _admin_only() -> None:
    if not keys.allows(g.grant.role, "admin"):
        abort(403, description="only admin keys may resolve candidates")


@bp.get("/")
def index():
    return redirect(url_for("console.opt_outs"))


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    error = None
    if request.method == "POST":
        key = request.form.get("key", "").strip()
        grant = keys.find(key, services.store().active_api_keys()) if key else None
        if keys.allows(grant.role if grant else None, "auditor"):
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


def _typed(text: str) -> str:
    """A number as a person typed it, in E.164 (national forms read in ``default_region``); InvalidNumber."""
    return numbers.from_typed(text, current_app.config["DEFAULT_REGION"])


def _filters() -> tuple[dict[str, str | None], list[str]]:
    values = {name: (request.args.get(name) or "").strip() or None for name in ("number", "twilio_number")}
    problems = []
    for name in ("number", "twilio_number"):
        if values[name]:
            try:
                values[name] = _typed(values[name])
            except numbers.InvalidNumber as exc:
                problems.append(f"{name}: {exc}")
                values[name] = None
    for name, end in (("since", False), ("until", True)):
        raw = (request.args.get(name) or "").strip()
        try:
            values[name] = parse_bound(raw, end) if raw else None
        except ValueError as exc:
            values[name] = None
            problems.append(f"{name}: {exc}")
    return values, problems


def _cursor(name: str, problems: list[str]) -> tuple[str, str, str] | None:
    """A place in the opt-out list from the query string: the :data:`LIST_KEY` of a row, or None."""
    raw = request.args.get(name)
    if not raw:
        return None
    parts = tuple(raw.split(CURSOR_SEPARATOR))
    try:
        # Only compared, as parameters, with stored values: any short text without NUL is safe to try.
        if len(parts) != len(LIST_KEY) or has_nul(*parts) or max(map(len, parts)) > 64:
            raise ValueError
        timestamps.parse(parts[0])
    except ValueError:
        problems.append(f"{name}: not a place in this list; showing the first page")
        return None
    return parts  # type: ignore[return-value]


def _page_url(**changes: str) -> str:
    """This list with its filters, at another page."""
    args = {k: v for k, v in request.args.to_dict(flat=True).items() if k not in ("after", "before", "page")}
    return url_for("console.opt_outs", **args, **changes)


@bp.get("/opt-outs")
@signed_in
def opt_outs():
    filters, problems = _filters()
    filters["accounts"] = g.grant.accounts
    after, before = _cursor("after", problems), _cursor("before", problems)
    last = request.args.get("page") == "last" and not (after or before)
    store = services.store()
    rows = store.current_opt_outs(**filters, limit=PAGE_SIZE, after=after, before=before, last=last)
    total = store.count_opt_outs(**filters)
    if last:
        start = max(0, total - len(rows))
    elif rows:
        start = store.count_opt_outs(**filters, before=tuple(rows[0][k] for k in LIST_KEY))
    else:
        start = total if after else 0
    key = CURSOR_SEPARATOR.join
    earlier, later = start > 0, start + len(rows) < total
    links = {
        "First": _page_url() if earlier else None,
        "Previous": _page_url(before=key(rows[0][k] for k in LIST_KEY)) if earlier and rows else None,
        "Next": _page_url(after=key(rows[-1][k] for k in LIST_KEY)) if later and rows else None,
        "Last": _page_url(page="last") if later else None,
    }
    today = datetime.now(UTC).date()
    series = chart.daily_series(
        store.daily_state_changes((today - timedelta(days=CHART_DAYS - 1)).isoformat(), g.grant.accounts),
        today,
        CHART_DAYS,
    )
    return render_template(
        "console/opt_outs.html",
        rows=rows,
        start=start,
        total=total,
        links=links,
        args=request.args,
        problems=problems,
        charts=[chart.bar_chart(series, name="wide"), chart.bar_chart(series, 380, 240, name="narrow")],
        series=series,
    )


@bp.get("/opt-outs.csv")
@signed_in
def opt_outs_csv():
    filters, problems = _filters()
    if problems:
        abort(400, description="; ".join(problems))
    rows = services.store().iter_opt_outs(**filters, accounts=g.grant.accounts)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Response(
        spreadsheet.lines(rows, OPT_OUT_COLUMNS),
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="opt-outs-{stamp}.csv"'},
    )


@bp.get("/numbers")
@signed_in
def find_number():
    typed = (request.args.get("number") or "").strip()
    if not typed:
        flash("Enter a phone number to see its history.")
        return redirect(url_for("console.opt_outs"))
    try:
        number = _typed(typed)
    except numbers.InvalidNumber as exc:
        flash(f"{exc}.", "error")
        return redirect(url_for("console.opt_outs", lookup=typed))  # the box keeps what was typed
    return redirect(url_for("console.timeline", number=number))


@bp.get("/numbers/<path:number>")
@signed_in
def timeline(number: str):
    reason = numbers.problem(number)
    if reason:
        abort(400, description=f"{number!r} is not an E.164 number such as {numbers.EXAMPLE}: {reason}")
    store = services.store()
    events = consent.timeline(store.history(number, accounts=g.grant.accounts))
    current = store.current_opt_outs(number=number, accounts=g.grant.accounts)
    consents = store.consents(number, current=True, accounts=g.grant.accounts)
    return render_template(
        "console/timeline.html",
        number=number,
        events=events,
        current=current,
        consents=consents,
        columns=EVENT_COLUMNS,
    )


@bp.get("/numbers/<path:number>/evidence")
@signed_in
def evidence(number: str):
    """One number's consent timeline as a self-contained page for a legal file: every event with its chain
    hashes, the consents, and the ledger's verification as of now."""
    reason = numbers.problem(number)
    if reason:
        abort(400, description=f"{number!r} is not an E.164 number such as {numbers.EXAMPLE}: {reason}")
    store = services.store()
    g.style_nonce = secrets.token_urlsafe(16)
    return render_template(
        "console/evidence.html",
        style_nonce=g.style_nonce,
        number=number,
        events=consent.timeline(store.history(number, accounts=g.grant.accounts, links=True)),
        consents=store.consents(number, accounts=g.grant.accounts),
        result=store.verify_ledger(accounts=g.grant.accounts),
        produced_at=timestamps.utcnow(),
    )


@bp.get("/integrity")
@signed_in
def integrity():
    return render_template("console/integrity.html", result=services.store().verify_ledger(accounts=g.grant.accounts))


@bp.get("/candidates")
@signed_in
def candidates():
    status = request.args.get("status", "open")
    if status not in revocation.STATUSES:
        abort(400, description="status must be open, confirmed, dismissed or all")
    detector = current_app.config["REVOCATION"]
    found = services.store().revocation_candidates(status, accounts=g.grant.accounts)
    rows = revocation.with_deadlines(found, detector.business_days_to_honour)
    return render_template(
        "console/candidates.html",
        rows=rows,
        status=status,
        can_resolve=keys.allows(g.grant.role, "admin"),
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
        services.store().resolve_candidate(candidate_id, action == "confirm", person, note, g.grant.accounts)
    except (LookupError, ValueError) as exc:
        flash(str(exc.args[0]), "error")
    else:
        flash(f"Candidate {candidate_id} {action}ed by {person}.")
    return redirect(url_for("console.candidates"))
