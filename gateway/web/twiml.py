"""TwiML replies, built with twilio's MessagingResponse."""

from __future__ import annotations

import functools

from twilio.twiml.messaging_response import MessagingResponse

CONTENT_TYPE = "text/xml; charset=utf-8"


def build_reply(text: str | None) -> str:
    """TwiML that sends ``text``, or an empty ``<Response />`` for None or empty text."""
    response = MessagingResponse()
    if text:
        response.message(text)
    return str(response)


# Cached: replies are a handful of configured texts, and building the XML
# costs more than the rest of a request's CPU time.
reply = functools.lru_cache(maxsize=256)(build_reply)
