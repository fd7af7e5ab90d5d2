"""The WSGI entry point of an installed gateway: ``gunicorn gateway.wsgi:app`` (see the Procfile).

A refusal to start (a missing or invalid setting, a database that cannot be
opened or migrated) is one line on stderr and exit status 4, on which
gunicorn stops the whole server instead of starting workers again and again.
"""

from . import app_or_exit

app = app_or_exit()
