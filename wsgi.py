"""WSGI entry point in a checkout (``gunicorn wsgi:app``), the same as an installed gateway's
``gateway.wsgi:app``, which the Procfile uses."""

from gateway import app_or_exit

app = app_or_exit()
