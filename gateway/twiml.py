"""TwiML replies, built with twilio's MessagingResponse."""

from __future__ import annotations

from twilio.twiml.messaging_response import MessagingResponse

CONTENT_TYPE = "text/xml; charset=utf-8"


def reply(text: str | None) -> str:
    """Return TwiML that sends ``text``, or an empty ``<Response/>`` for None."""
    response = MessagingResponse()
    if text:
        response.message(text)
    return str(response)
