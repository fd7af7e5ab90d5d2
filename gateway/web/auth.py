"""Bearer-key authentication for the HTTP API (``Authorization: Bearer <key>``)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import abort, g, request

from ..core import keys
from ..messaging import services


def require_role(role: str) -> Callable:
    """Decorate a view: no or unknown key is 401, a key without ``role`` is 403.

    The key's grant (role and accounts) is ``g.grant`` for the view.
    """

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            header = request.headers.get("Authorization", "")
            scheme, _, key = header.strip().partition(" ")
            if scheme.lower() != "bearer" or not key.strip():
                g.outcome = "unauthenticated"
                abort(401, description=_malformed(header))
            key = key.strip()
            found = keys.find(key, services.store().active_api_keys())
            if found is None:
                g.outcome = "unauthenticated"
                abort(401, description="unknown or revoked API key")
            if not keys.allows(found.role, role):
                g.outcome = "forbidden"
                abort(403, description=f"this key's role ({found.role}) may not do this; it needs {role}")
            g.grant = found
            g.api_key_hash = keys.hash_key(key)  # names the key (rate limits) without the secret
            return view(*args, **kwargs)

        return wrapper

    return decorator


def _malformed(header: str) -> str:
    """Why an Authorization header carries no usable key, in one line that never repeats the key."""
    text = header.strip()
    if not text:
        return "missing API key: send Authorization: Bearer <key>"
    if text.startswith(keys.PREFIX):
        return "the Authorization header holds a key without its scheme: send Authorization: Bearer <key>"
    scheme = text.split(" ", 1)[0]
    if scheme.lower() == "bearer":
        return "the Authorization header says Bearer but holds no key: send Authorization: Bearer <key>"
    if len(scheme) <= 20 and scheme.isalpha():  # a scheme's name (Basic, Token), never part of a key
        return f"the Authorization header uses the {scheme} scheme: send Authorization: Bearer <key>"
    return "the Authorization header is not of the form Bearer <key>: send Authorization: Bearer <key>"
