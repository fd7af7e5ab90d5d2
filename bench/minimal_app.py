"""The reference for the benchmark: a Flask endpoint that only validates the
Twilio signature and returns empty TwiML. Nothing is stored."""

import os

from flask import Flask, Response, abort, request
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

app = Flask(__name__)
validator = RequestValidator(os.environ["TWILIO_AUTH_TOKEN"])


@app.post("/twilio/sms")
def sms():
    if not validator.validate(request.url, request.form, request.headers.get("X-Twilio-Signature", "")):
        abort(403)
    return Response(str(MessagingResponse()), content_type="text/xml")
