"""Running the gateway: serve, worker, init-db, and simulate (a signed webhook, as Twilio sends it)."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence

import click

from .. import settings
from ..core import checkup
from ..messaging import services
from ..messaging.worker import Worker
from ..settings import ConfigError
from ..store import StoreUnavailable
from ..web.signature import sign
from .options import E164
from .root import cli, instance_path, store_of

DEFAULT_URL = "http://127.0.0.1:8000/twilio/sms"


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
def serve(host: str, port: int) -> None:
    """Run the gateway locally (development server).

    Without TWILIO_AUTH_TOKEN a local development token is generated once,
    kept in the instance folder and printed; `gateway simulate` signs with it.
    Real Twilio traffic is signed with your account's auth token: set
    TWILIO_AUTH_TOKEN for that. In production run gunicorn (see the Procfile).
    """
    from werkzeug.serving import run_simple

    from .. import create_app, report_start

    try:
        app = create_app({"ALLOW_DEV_TOKEN": True, "REPORT_START": False})
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if app.config["DEV_TOKEN"]:
        click.echo(
            f"TWILIO_AUTH_TOKEN is not set: using the local development token "
            f"{app.config['AUTH_TOKENS'][0]}\n"
            f"(kept in {os.path.join(app.instance_path, settings.DEV_TOKEN_FILE)}). "
            "Requests from real Twilio will be rejected until you set TWILIO_AUTH_TOKEN "
            "to your account's auth token.",
            err=True,
        )
    click.echo(f"Gateway webhook: http://{host}:{port}/twilio/sms", err=True)
    click.echo(
        f"Console:         http://{host}:{port}/console (sign in with a key: gateway keys create --role auditor)",
        err=True,
    )
    report_start(app)  # after the banner: the first screen says where things are, then what to settle
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the gateway logs each request itself
    run_simple(host, port, app, threaded=True, use_reloader=False)


@cli.command("init-db")
def init_db() -> None:
    """Create the database, or migrate it to the current schema.

    Safe to run from several machines at once (the first migrates, the
    others wait and find it done): the release phase of a Heroku-style
    platform runs it before the new version serves.
    """
    store = store_of(readonly=False)
    version = store.init_schema()
    click.echo(f"Database ready: {store.describe()}, schema version {version}")


def _params(pairs: Sequence[str]) -> list[tuple[str, str]]:
    result = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--param")
        result.append((key, value))
    return result


@cli.command()
@click.argument("body")
@click.option("--from", "from_number", required=True, type=E164, help="Sender's number (E.164), e.g. +14155550100.")
@click.option("--to", "to_number", required=True, type=E164, help="Your Twilio number (E.164) the message was sent to.")
@click.option(
    "--url",
    default=DEFAULT_URL,
    show_default=True,
    help="Webhook URL exactly as Twilio would call it (an ngrok URL works).",
)
@click.option(
    "--token",
    envvar="TWILIO_AUTH_TOKEN",
    help="Auth token to sign with [default: $TWILIO_AUTH_TOKEN, else the local development token].",
)
@click.option("--sid", help="MessageSid to send [default: a new random SM... id]; repeat one to test duplicates.")
@click.option(
    "--account-sid",
    envvar="TWILIO_ACCOUNT_SID",
    help="AccountSid to send: with [accounts], the account whose --token signs "
    "[default: $TWILIO_ACCOUNT_SID, else AC followed by 32 zeros].",
)
@click.option(
    "--param",
    "extra",
    multiple=True,
    metavar="KEY=VALUE",
    help="Extra form parameter, e.g. OptOutType=STOP. Repeatable.",
)
def simulate(
    body: str,
    from_number: str,
    to_number: str,
    url: str,
    token: str | None,
    sid: str | None,
    account_sid: str | None,
    extra: Sequence[str],
) -> None:
    """Send a correctly signed inbound SMS webhook and print the TwiML reply.

    BODY is the message text. The request is signed exactly as Twilio signs
    it, over --url and every form parameter.
    """
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise click.BadParameter("must be an http:// or https:// URL", param_hint="--url")
    given = token
    token = token or settings.dev_token(instance_path(), create=False)
    if not token:
        raise click.ClickException(
            "no token to sign with: set TWILIO_AUTH_TOKEN or --token, "
            "or start `gateway serve` once to create the development token"
        )
    params = [
        ("MessageSid", sid or "SM" + secrets.token_hex(16)),
        ("AccountSid", account_sid or "AC" + "0" * 32),
        ("From", from_number),
        ("To", to_number),
        ("Body", body),
        ("NumMedia", "0"),
        *_params(extra),
    ]
    signature = sign(url, params, token)
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url,
        data=urllib.parse.urlencode(params).encode(),
        headers={"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
            click.echo(response.read().decode())
    except urllib.error.HTTPError as exc:
        hint = ""
        if exc.code == 403 and not given:
            hint = (
                "; it was signed with this machine's local development token, as neither --token nor "
                "TWILIO_AUTH_TOKEN is set here: if the server runs with TWILIO_AUTH_TOKEN, set the same in this shell"
            )
        raise click.ClickException(f"HTTP {exc.code}: {exc.read().decode(errors='replace').strip()}{hint}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise click.ClickException(f"cannot reach {url}: {reason} (is `gateway serve` running?)") from None


@cli.command()
@click.option("--once", is_flag=True, help="One round (sessions, deliveries, sends) of what is due now, then exit.")
@click.option(
    "--interval",
    default=0.05,
    show_default=True,
    type=click.FloatRange(0.01, 60),
    help="Seconds to wait when nothing is due (a cheap read, no write, each time).",
)
def worker(once: bool, interval: float) -> None:
    """Send queued outbound SMS through Twilio, deliver queued inbound
    messages to the agent and time out idle sessions (warning, then
    session.closed), until stopped (SIGTERM or Ctrl-C).

    Several workers may run at once: messages are leased in the database, so
    each is handled by one worker, and a crashed worker's lease runs out.
    Delivery to the agent is at least once and in order per conversation.
    """
    from .. import create_app, report_start

    try:  # the web server gives the start-up report; the worker, only what concerns its own machine
        app = create_app({"ALLOW_DEV_TOKEN": True, "REPORT_START": False})
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    report_start(app, only=checkup.MACHINE_CHECKS)
    outbound, forwarder = services.of(app).outbound, services.of(app).forwarder
    if not outbound.can_send:
        click.echo(f"worker: not sending SMS, {outbound.why_disabled()}", err=True)
    elif outbound.console:
        click.echo("worker: SMS backend is console: messages are printed here, not sent", err=True)
    if not forwarder.enabled:
        click.echo(
            "worker: not delivering to an agent (set GATEWAY_AGENT_URL or GATEWAY_AGENT_HANDLER); "
            "messages wait in the queue",
            err=True,
        )
    if not outbound.can_send and not forwarder.enabled:
        click.echo("worker: idle (nothing to send or deliver; sessions still time out)", err=True)
    runner = Worker(app, interval)
    if once:
        with app.app_context():
            try:
                done = runner.round()
            except StoreUnavailable as exc:
                raise click.ClickException(str(exc)) from None
        click.echo(
            f"worker: {done.delivered} delivery(ies) and {done.sent} message(s) attempted; "
            f"{done.warned} session(s) warned, {done.closed} closed",
            err=True,
        )
        return
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    runner.run(stopping)
