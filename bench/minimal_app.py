"""The references for the benchmarks: Flask endpoints that only authenticate
(the Twilio signature, or an API key) and answer. Nothing is stored."""

import hashlib
import hmac
import os

from flask import Flask, Response, abort, jsonify, request
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

app = Flask(__name__)
validator = RequestValidator(os.environ["TWILIO_AUTH_TOKEN"])


@app.post("/twilio/sms")
def sms():
    if not validator.validate(request.url, request.form, request.headers.get("X-Twilio-Signature", "")):
        abort(403)
    return Response(str(MessagingResponse()), content_type="text/xml")


KEY_HASH = hashlib.sha256(os.environ.get("BENCH_API_KEY", "").encode()).hexdigest()


@app.post("/v1/outbound-sms")
def outbound_sms():
    """The outbound reference: check a bearer key's hash, parse the JSON, answer 202. Nothing is stored."""
    presented = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if not hmac.compare_digest(hashlib.sha256(presented.encode()).hexdigest(), KEY_HASH):
        abort(401)
    body = request.get_json()
    return jsonify(id=1, status="queued", to_number=body["to_number"]), 202
