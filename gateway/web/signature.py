"""Proof that a webhook request came from Twilio (``X-Twilio-Signature``).

Twilio signs the exact URL it called plus the form parameters with the
account's auth token. Behind ngrok or a reverse proxy the URL the app sees
differs from the one Twilio called, which is the most common integration
failure, so a rejection names the URL that was checked and how to fix it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from flask import abort, current_app, g, request
from twilio.request_validator import RequestValidator, compare

from ..core.accounts import Account
from ..settings import dev_token

HEADER = "X-Twilio-Signature"

log = logging.getLogger(__name__)


def validation_url(request_url: str, public_url: str | None, path: str, query_string: str) -> str:
    """Return the URL Twilio is taken to have signed.

    With a configured public base URL the request path and query are appended
    to it; otherwise the URL the request arrived at (after ProxyFix, when the
    proxy is trusted) is used as it is.
    """
    if public_url:
        url = public_url.rstrip("/") + path
        return f"{url}?{query_string}" if query_string else url
    return request_url


def is_valid(url: str, params: Any, signature: str | None, tokens: Sequence[str]) -> bool:
    """True when ``signature`` matches ``url`` and ``params`` under any token.

    Fails closed: no token, no signature or any error means invalid. The
    signature over ``url`` exactly as given is tried first under each token
    (one HMAC, the common case); then twilio's own validation, which also
    tries ``url`` with its default port added and removed (two more).
    """
    if not signature or not tokens:
        return False
    validators = [RequestValidator(token) for token in tokens if token]
    try:
        if any(compare(validator.compute_signature(url, params), signature) for validator in validators):
            return True
        return any(validator.validate(url, params, signature) for validator in validators)
    except Exception:  # a malformed URL or header must not open the door
        log.exception("signature validation raised; treating as invalid")
        return False


class _FormParams(dict):
    """Repeated form fields as RequestValidator reads a multi-value form."""

    def getlist(self, key: str) -> list[str]:
        return self[key]


def sign(url: str, params: Sequence[tuple[str, str]], token: str) -> str:
    """The X-Twilio-Signature Twilio sends for ``params`` posted to ``url``.

    ``params`` are (name, value) pairs; repeated names are kept, as Twilio does.
    """
    multi: dict[str, list[str]] = {}
    for key, value in params:
        multi.setdefault(key, []).append(value)
    return RequestValidator(token).compute_signature(url, _FormParams(multi))


@dataclass(frozen=True)
class Check:
    """The outcome for one request: valid or not, the URL(s) checked, and the account whose tokens were used.

    ``account`` is None when the request names no account this gateway serves
    (with several accounts): then no token was tried at all.
    """

    valid: bool
    url: str
    account: Account | None = None


def _raw_target(environ: dict) -> tuple[str, str]:
    """Path (with the mount prefix) and query exactly as the client sent them.

    The request line is what Twilio derived from the URL it signs, so it is
    used verbatim where the server provides it (gunicorn, werkzeug), rather
    than a re-quoted form of the decoded path.
    """
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
    if raw.startswith("/"):
        path, _, query = raw.partition("?")
    else:
        path = quote(environ.get("PATH_INFO", ""), safe="/:@!$&'()*+,;=-._~%")
        query = environ.get("QUERY_STRING", "")
    script_name = quote(environ.get("SCRIPT_NAME", ""), safe="/:@!$&'()*+,;=-._~%")
    if script_name and path.startswith(script_name + "/"):
        script_name = ""  # the server mounted the app itself; the raw path already has the prefix
    return script_name + path, query


def check_request(given: str | None = None) -> Check:
    """Check the current Flask request against the configured tokens.

    ``given`` is a URL the gateway itself handed to Twilio for this request
    (a status callback): Twilio signs that URL, wherever the request then
    arrives from (a proxy may rewrite host, scheme and path), so it is tried
    first; the URL the request arrived at (or the public URL) after it.
    """
    config, req = current_app.config, request._get_current_object()  # one context lookup, not one per use
    path, query = _raw_target(req.environ)
    url = validation_url(
        f"{req.scheme}://{req.host}{path}" + (f"?{query}" if query else ""),
        config.get("PUBLIC_URL"),
        path,
        query,
    )
    form = req.form
    account = config["ACCOUNTS"].for_request(form.get("AccountSid"))
    signature, tokens = req.headers.get(HEADER), account.tokens if account else ()
    for candidate in dict.fromkeys(filter(None, (given, url))):
        if is_valid(candidate, form, signature, tokens):
            return Check(True, candidate, account)
    return Check(False, " or ".join(dict.fromkeys(filter(None, (given, url)))), account)


def diagnosis(result: Check) -> str:
    """What most likely made a signed request fail, for the log (never for the caller): a signature that
    verifies under this machine's local development token (``gateway simulate`` from a shell without the
    server's TWILIO_AUTH_TOKEN), or for the URL a proxy's X-Forwarded-* headers name (a proxy not trusted);
    else the two causes it cannot tell apart. Only said, never accepted: the request stays refused."""
    config, req = current_app.config, request._get_current_object()
    signature, form = req.headers.get(HEADER), req.form
    urls = result.url.split(" or ")
    local = None if config.get("DEV_TOKEN") else dev_token(current_app.instance_path, create=False)
    if local and local not in (result.account.tokens if result.account else ()):
        if any(is_valid(url, form, signature, [local]) for url in urls):
            return (
                "it was signed with this machine's local development token, not the server's auth token: "
                "`gateway simulate` ran in a shell without the server's TWILIO_AUTH_TOKEN; set it there (or "
                "pass --token)"
            )
    forwarded = _forwarded_url(req)
    tokens = result.account.tokens if result.account else ()
    if forwarded and forwarded not in urls and is_valid(forwarded, form, signature, tokens):
        return (
            f"it was signed for {forwarded}, the URL a proxy in front of the gateway forwarded (X-Forwarded-* "
            "headers), which the gateway does not trust: set GATEWAY_TRUST_PROXY to the number of proxies, or "
            "GATEWAY_PUBLIC_URL to that base URL"
        )
    return (
        "either the token differs (Twilio signs with the auth token of the account that owns the number; while "
        "rotating it, set TWILIO_SECONDARY_AUTH_TOKEN too), or Twilio calls another URL (ngrok, a proxy or a "
        "load balancer: set GATEWAY_PUBLIC_URL to that base URL or GATEWAY_TRUST_PROXY to the number of proxies)"
    )


def _forwarded_url(req: Any) -> str | None:
    """The URL a proxy's X-Forwarded-Proto and -Host say the client called, if they say one."""
    proto, host = req.headers.get("X-Forwarded-Proto"), req.headers.get("X-Forwarded-Host")
    if not (proto or host):
        return None
    proto = (proto or req.scheme).split(",")[0].strip()
    host = (host or req.host).split(",")[0].strip()
    prefix = (req.headers.get("X-Forwarded-Prefix") or "").split(",")[0].strip().rstrip("/")
    path, query = _raw_target(req.environ)
    return f"{proto}://{host}{prefix}{path}" + (f"?{query}" if query else "")


def twilio_signed(view: Callable) -> Callable:
    """Decorate a view so only correctly signed Twilio requests reach it (else 403)."""
    return _guarded(view, None)


def twilio_signed_at(setting: str) -> Callable[[Callable], Callable]:
    """Like :func:`twilio_signed`, for a URL the gateway gave Twilio itself: the ``setting`` that holds it."""
    return lambda view: _guarded(view, setting)


def _guarded(view: Callable, setting: str | None) -> Callable:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = check_request(current_app.config.get(setting) if setting else None)
        if not result.valid:
            g.outcome, g.account = "forbidden", "unverified"  # never a label an unsigned request chose
            if not request.headers.get(HEADER):
                log.warning("rejected %s %s: no X-Twilio-Signature", request.method, request.path)
                abort(403, description="missing X-Twilio-Signature")
            if result.account is None:
                named = request.form.get("AccountSid")
                log.warning(
                    "rejected %s %s: %s; add the account under [accounts] in the configuration file "
                    "(GATEWAY_CONFIG_FILE) with its auth token, or point the number's webhook elsewhere",
                    request.method,
                    request.path,
                    f"AccountSid {named[:40]!r} is not one of this gateway's accounts" if named else "no AccountSid",
                )
                abort(403, description="invalid X-Twilio-Signature")  # as for a bad signature: no SID is confirmed
            log.warning(
                "rejected %s %s: invalid X-Twilio-Signature; validated against URL %s; %s",
                request.method,
                request.path,
                result.url,
                diagnosis(result),
            )
            abort(403, description="invalid X-Twilio-Signature")
        g.account = current_app.config["ACCOUNTS"].label_of(request.form.get("AccountSid"))
        return view(*args, **kwargs)

    return wrapper
