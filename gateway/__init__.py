"""SMS compliance gateway for Twilio: the Flask application factory."""

from __future__ import annotations

import logging
import sys
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import settings
from .core import checkup, revocation
from .settings import ConfigError
from .store import StoreUnavailable, from_settings, local_file
from .web import logs

__all__ = ["ConfigError", "app_or_exit", "create_app", "report_start"]

# gunicorn stops the whole server, master and every worker, when a worker
# exits with this status ("App failed to load") instead of starting it again
# and again; a master that exits with it says the same.
APP_LOAD_ERROR = 4
STARTUP = "gateway.startup"  # app.extensions: (where the records are, the start-up findings)
_reported = False  # this process, or the one it was forked from, has given the start-up report


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the gateway app: settings, logging, proxy handling, storage, routes.

    ``test_config`` overrides every other configuration layer. Raises
    :class:`ConfigError` naming the setting when one is missing or invalid.
    The web layer is imported here, not with the package: ``import gateway``
    stays cheap, and loads no metrics before gunicorn's settings have chosen
    where they are kept (``gateway.gunicorn_conf``).
    """
    from .messaging import services
    from .web import api, console, health, metrics, statuscallback, webhook

    app = Flask(
        __name__,
        instance_path=settings.instance_folder(),
        template_folder="web/templates",
        static_folder="web/static",
    )
    app.config.update(settings.load(test_config, instance_path=app.instance_path))
    logs.configure(app)
    today = datetime.now(UTC).date()
    findings = checkup.configuration_findings(app.config, today)

    hops = app.config["TRUST_PROXY"]
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops)

    store = from_settings(app.config)
    try:
        store.init_schema()
        # Overdue candidates are one query; of the ledger, the newest events (`gateway doctor` walks it all).
        days = app.config["REVOCATION"].business_days_to_honour
        candidates = revocation.with_deadlines(store.revocation_candidates("open"), days, today)
        findings += checkup.candidate_findings([c for c in candidates if c["overdue"]], days)
        end = store.verify_ledger_end()
        findings += checkup.ledger_findings(end.ok, end.summary())
        findings += checkup.durability_findings(store.unsafe_settings())
        findings += checkup.filesystem_findings(store.network_filesystem(), store.describe())
        findings += checkup.clock_findings(store.clock_offset(), app.config)
    except Exception as exc:
        reason = exc.reason if isinstance(exc, StoreUnavailable) else str(exc)
        raise ConfigError(f"DATABASE_URL: cannot open or migrate {store.describe()}: {reason}") from exc
    finally:
        store.close()  # workers forked after this open their own connections
    app.extensions[STARTUP] = (store.describe(), checkup.for_environment(findings, app.config["ENV"]))
    if (test_config or {}).get("REPORT_START", True):
        report_start(app)
    services.init_app(app, store)

    app.register_blueprint(webhook.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(statuscallback.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(console.bp)
    app.session_interface = console.SessionInterface()
    metrics.init_app(app)
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_PATH="/console",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=8),
    )
    return app


def report_start(app: Flask, only: Collection[str] | None = None) -> None:
    """Log what a start of the deployment must tell its operator, once: where the records are, and each
    start-up finding (in dev, what to settle before going live). With ``only``, just the findings of those
    checks: what concerns a process's own machine (``gateway worker``: its clock, by which it holds leases)."""
    where, findings = app.extensions[STARTUP]
    if only is not None:
        for finding in findings:
            if finding.check in only:
                logging.getLogger("gateway.checkup").warning("%s", finding.line())
        return
    logging.getLogger("gateway").info("records: %s; instance folder %s", where, app.instance_path)
    for finding in findings:
        logging.getLogger("gateway.checkup").warning("%s", finding.line())
    if app.config["SECRET_KEY_FILE"] and local_file(app.config["DATABASE_URL"]) is None:  # a database of many
        logging.getLogger("gateway").warning(
            "GATEWAY_SECRET_KEY is not set: the console signs its sessions with a key of this machine's (%s), so "
            "with %s shared by several instances, or a disk that a restart wipes, auditors are signed out whenever "
            "a request reaches another instance or the key is made anew; set GATEWAY_SECRET_KEY to one value "
            "(32 characters or more) on every instance",
            app.config["SECRET_KEY_FILE"],
            where,
        )


def app_or_exit() -> Flask:
    """:func:`create_app`, or the one-line reason on stderr and exit status 4 (see ``APP_LOAD_ERROR``).

    For servers: ``gateway.wsgi``, and ``gateway.gunicorn_conf``, which checks
    in the master before any worker boots. The start-up report is given once
    per server: the workers gunicorn forks from a process that gave it do
    not give it again.
    """
    global _reported
    try:
        app = create_app({"REPORT_START": False})
    except ConfigError as exc:
        print(f"gateway: refusing to start: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(APP_LOAD_ERROR) from None
    if not _reported:
        report_start(app)
        _reported = True
    return app
