"""Logging set-up, one log line per request, and plain one-line error replies."""

from __future__ import annotations

import logging
import re
import time

from flask import Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable

from ..core.masking import mask_number
from ..store import StoreUnavailable

log = logging.getLogger("gateway.request")
FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
# Characters that would end a log line early or hide part of it from a reader.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# The request's fields that are phone numbers: masked in the line.
_NUMBERS = frozenset({"from", "to"})


class LineFormatter(logging.Formatter):
    """One record, one line: control characters in the message (a request path can carry ``%0A``) are
    escaped, so no client can forge a line of its own; a traceback still follows on its own lines.

    The time is formatted once per second: every request writes a line.
    """

    _second: tuple[int, str] = (-1, "")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        line = super().formatMessage(record)
        if not line.isprintable() and _CONTROL.search(line):  # isprintable: a quick pass over a clean line
            line = _CONTROL.sub(lambda match: ascii(match.group())[1:-1], line)
        return line

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        if datefmt:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if self._second[0] != second:
            self._second = (second, time.strftime(self.default_time_format, self.converter(second)))
        return self.default_msec_format % (self._second[1], record.msecs)


def configure(app: Flask) -> None:
    """Log to stderr at the configured level, unless the host set logging up."""
    root = logging.getLogger("gateway")
    root.setLevel(app.config["LOG_LEVEL"])
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(LineFormatter(FORMAT))
        root.addHandler(handler)
        root.propagate = False

    app.before_request(_start)
    app.after_request(_log_request)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(StoreUnavailable, _unavailable)
    app.register_error_handler(Exception, _unexpected_error)


def _start() -> None:
    g.started = time.perf_counter()


def _log_request(response: Response) -> Response:
    if not log.isEnabledFor(logging.INFO):
        return response
    context, req = g._get_current_object(), request._get_current_object()  # one context lookup, not one per use
    fields = context.get("log_fields")
    extra = (
        "".join(f" {key}={mask_number(value) if key in _NUMBERS else value or '-'}" for key, value in fields.items())
        if fields
        else ""
    )
    started = context.get("started")
    elapsed = (time.perf_counter() - started) * 1000 if started is not None else 0.0
    # Made here and handed to the handlers as a record: Logger.info would also walk the stack for the
    # caller's file and line, which the format never shows (every request writes this line).
    line = (
        f"{req.method} {req.path} {response.status_code} outcome={context.get('outcome', '-')}{extra} ms={elapsed:.1f}"
    )
    log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, line, (), None))
    return response


def _plain(code: int, text: str) -> Response:
    return Response(text + "\n", status=code, content_type="text/plain; charset=utf-8")


def reason_of(error: HTTPException) -> str:
    """An HTTP error's one-line reason (our own, where we gave one), and its outcome noted for the log line."""
    code = error.code or 500
    g.outcome = g.get("outcome") or ("not_found" if code == 404 else "rejected" if code < 500 else "error")
    if code == 413:
        return f"request body exceeds {current_app.config['MAX_CONTENT_LENGTH']} bytes"
    if error.description and error.description != type(error).description:
        return error.description  # our own one-line reason
    return error.name.lower()


def _http_error(error: HTTPException) -> Response:
    """One line: status and reason. Never an HTML page or a traceback (the console renders its own)."""
    code = error.code or 500
    reason = reason_of(error)
    if request.path.startswith("/v1/"):
        response = jsonify(error=error.name, message=reason)
        response.status_code = code
    else:
        response = _plain(code, f"{code} {error.name}: {reason}")
    if code == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    for name, value in error.get_headers():
        if name.lower() != "content-type":  # keeps Allow on 405
            response.headers[name] = value
    return response


RETRY_AFTER_SECONDS = 5


def _unavailable(error: StoreUnavailable) -> Response:
    """The database cannot store now: 503 with Retry-After, so Twilio and clients try again.

    Never a 200 for a message that was not stored. The operator's log line
    says why; the caller learns only that it should retry.
    """
    log.error("database unavailable on %s %s: %s", request.method, request.path, error)
    g.outcome = "unavailable"
    return _http_error(
        ServiceUnavailable(
            description="the database cannot store records right now; retry later",
            retry_after=RETRY_AFTER_SECONDS,
        )
    )


def _unexpected_error(error: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    g.outcome = "error"
    return _http_error(InternalServerError())
