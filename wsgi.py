"""WSGI entry point for gunicorn (``gunicorn wsgi:app``); see the Procfile."""

import sys

from gateway import ConfigError, create_app

try:
    app = create_app()
except ConfigError as exc:
    sys.exit(f"gateway: refusing to start: {exc}")
