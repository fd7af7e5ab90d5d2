"""gunicorn settings for the gateway: ``gunicorn gateway.wsgi:app --config python:gateway.gunicorn_conf``
(as the Procfile does), from a checkout or an installed package.

Prometheus counters live in per-process files so that ``GET /metrics`` adds
up every worker. This file runs before the app is imported, which is when
prometheus-client decides on that mode. Without PROMETHEUS_MULTIPROC_DIR a
fresh private directory is made for this server; set it (to a directory
shared with ``gateway worker`` on the same machine) to also see the send
worker's counters.
"""

import os
import tempfile

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="gateway-metrics-")
os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)


def child_exit(server, worker):
    """A dead worker's live gauges must not be reported; its counters still count."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_starting(server):
    """Check the settings and the database in the master, before any worker boots.

    Without --preload every worker would find the same problem at once, and
    gunicorn, halting on the first, trips over the next (a traceback after
    the reason). With --preload the master has already loaded the app.
    """
    if not server.cfg.preload_app:
        from . import app_or_exit
        from .messaging import services

        services.of(app_or_exit()).store.close()  # each worker opens its own connections
