"""Signature checking, as a function and through the webhook."""

import logging
from urllib.parse import urlencode

import pytest
from werkzeug.datastructures import MultiDict

from gateway import create_app, signature
from gateway.signature import is_valid, validation_url

from .conftest import FORM, TOKEN, TwilioSender, sign, sms_params

# twilio-python's published test vector (tests/unit/test_request_validator.py).
VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}


def test_published_vector():
    assert is_valid(VECTOR_URL, VECTOR_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", ["12345"])


def test_published_vector_with_repeated_keys():
    params = MultiDict([("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")])
    assert is_valid(VECTOR_URL, params, "IK+Dwps556ElfBT0I3Rgjkr1wJU=", ["12345"])


@pytest.mark.parametrize(
    ("url", "params", "signature", "tokens"),
    [
        (VECTOR_URL, VECTOR_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", ["wrong"]),
        (VECTOR_URL, {**VECTOR_PARAMS, "Digits": "1235"}, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", ["12345"]),
        (VECTOR_URL.replace("https", "http"), VECTOR_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", ["12345"]),
        (VECTOR_URL, VECTOR_PARAMS, None, ["12345"]),
        (VECTOR_URL, VECTOR_PARAMS, "", ["12345"]),
        (VECTOR_URL, VECTOR_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", []),
        (VECTOR_URL, VECTOR_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", [""]),
    ],
)
def test_fails_closed(url, params, signature, tokens):
    assert not is_valid(url, params, signature, tokens)


def test_either_token_is_accepted():
    assert is_valid(VECTOR_URL, VECTOR_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", ["new-token", "12345"])


@pytest.mark.parametrize(
    ("request_url", "public", "path", "query", "expected"),
    [
        ("http://127.0.0.1:8000/twilio/sms", None, "/twilio/sms", "", "http://127.0.0.1:8000/twilio/sms"),
        (
            "http://127.0.0.1:8000/twilio/sms",
            "https://abc.ngrok.app",
            "/twilio/sms",
            "",
            "https://abc.ngrok.app/twilio/sms",
        ),
        (
            "http://x/twilio/sms?a=1",
            "https://abc.ngrok.app/",
            "/twilio/sms",
            "a=1",
            "https://abc.ngrok.app/twilio/sms?a=1",
        ),
        ("http://x/twilio/sms", "https://example.com/gw", "/twilio/sms", "", "https://example.com/gw/twilio/sms"),
    ],
)
def test_validation_url(request_url, public, path, query, expected):
    assert validation_url(request_url, public, path, query) == expected


# -- ngrok and proxies -----------------------------------------------------------

NGROK_HEADERS = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "abc123.ngrok.app", "X-Forwarded-For": "54.1.2.3"}
NGROK_URL = "https://abc123.ngrok.app/twilio/sms"


def _app(db_url, **settings):
    return create_app({"DATABASE_URL": db_url, "TWILIO_AUTH_TOKEN": TOKEN, **settings})


# -- through the webhook -------------------------------------------------------


def test_missing_signature_is_403_and_records_nothing(client, store, caplog):
    with caplog.at_level(logging.WARNING, logger="gateway"):
        response = client.post("/twilio/sms", data=urlencode(sms_params("STOP")), content_type=FORM)
    assert response.status_code == 403
    assert response.text.strip() == "403 Forbidden: missing X-Twilio-Signature"
    assert store.events() == [] and store.current_opt_outs() == [] and store.queued_messages() == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["rejected POST /twilio/sms: no X-Twilio-Signature"]  # no proxy hint: nothing was signed


def test_a_signature_mismatch_names_the_url_and_the_fix(twilio, caplog):
    with caplog.at_level(logging.WARNING, logger="gateway"):
        response = twilio.post(sms_params("STOP"), token="f" * 32)
    assert response.status_code == 403 and response.text.strip() == "403 Forbidden: invalid X-Twilio-Signature"
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "validated against URL http://localhost/twilio/sms" in warning
    assert "GATEWAY_PUBLIC_URL" in warning and "GATEWAY_TRUST_PROXY" in warning


def test_favicon_is_not_found_not_rejected(client, caplog):
    with caplog.at_level(logging.INFO, logger="gateway"):
        assert client.get("/favicon.ico").status_code == 404
    (line,) = [r.getMessage() for r in caplog.records if r.name == "gateway.request"]
    assert line.startswith("GET /favicon.ico 404 outcome=not_found")


def test_wrong_token_is_403(twilio, store):
    response = twilio.post(sms_params("STOP"), token="f" * 32)
    assert response.status_code == 403
    assert "invalid X-Twilio-Signature" in response.text
    assert store.current_opt_outs() == []


def test_tampered_body_is_403(client, store):
    params = sms_params("hello")
    header = sign("http://localhost/twilio/sms", params)
    tampered = [(k, "STOP" if k == "Body" else v) for k, v in params]
    response = client.post(
        "/twilio/sms", data=urlencode(tampered), content_type=FORM, headers={"X-Twilio-Signature": header}
    )
    assert response.status_code == 403
    assert store.current_opt_outs() == []


def test_blank_values_and_repeated_keys_are_signed(twilio, store):
    params = sms_params("hello", MediaUrl0="") + [("Tag", "b"), ("Tag", "a")]
    assert twilio.post(params).status_code == 200
    queued = store.queued_messages()[0]["params"]
    assert ("MediaUrl0", "") in queued and ("Tag", "b") in queued and ("Tag", "a") in queued


def test_signature_over_unnormalised_body(twilio, store):
    """The body is validated as sent; normalisation happens only for matching."""
    assert twilio.sms("  Stop!  ").status_code == 200
    assert store.history("+14155550100")[0]["body"] == "  Stop!  "


def test_query_string_is_part_of_the_signed_url(twilio):
    assert twilio.post(sms_params("hi"), url="http://localhost/twilio/sms?tenant=acme").status_code == 200
    response = twilio.post(
        sms_params("hi"), url="http://localhost/twilio/sms?tenant=acme", sign_url="http://localhost/twilio/sms"
    )
    assert response.status_code == 403


def test_secondary_token_for_rotation(db_url):
    sender = TwilioSender(_app(db_url, TWILIO_SECONDARY_AUTH_TOKEN="b" * 32).test_client())
    assert sender.post(sms_params("hi"), token=TOKEN).status_code == 200
    assert sender.post(sms_params("hi"), token="b" * 32).status_code == 200
    assert sender.post(sms_params("hi"), token="c" * 32).status_code == 403


def test_forwarded_headers_untrusted_by_default(db_url, caplog):
    """Without configuration X-Forwarded-* is ignored, so an ngrok-signed request fails, self-diagnosed."""
    sender = TwilioSender(_app(db_url).test_client(), url="http://127.0.0.1:8000/twilio/sms")
    with caplog.at_level(logging.WARNING, logger="gateway"):
        response = sender.post(sms_params("hi"), sign_url=NGROK_URL, headers=NGROK_HEADERS)
    assert response.status_code == 403
    assert "validated against URL http://127.0.0.1:8000/twilio/sms" in caplog.text


def test_forwarded_headers_trusted_with_trust_proxy(db_url):
    sender = TwilioSender(_app(db_url, TRUST_PROXY=1).test_client(), url="http://127.0.0.1:8000/twilio/sms")
    assert sender.post(sms_params("hi"), sign_url=NGROK_URL, headers=NGROK_HEADERS).status_code == 200
    # A request signed for the local URL no longer matches: the proxy's view wins.
    assert sender.post(sms_params("hi"), headers=NGROK_HEADERS).status_code == 403


def test_trust_proxy_honours_port_and_prefix(db_url):
    sender = TwilioSender(_app(db_url, TRUST_PROXY=1).test_client(), url="http://127.0.0.1:8000/twilio/sms")
    headers = {**NGROK_HEADERS, "X-Forwarded-Port": "8443", "X-Forwarded-Prefix": "/gw"}
    response = sender.post(sms_params("hi"), sign_url="https://abc123.ngrok.app:8443/gw/twilio/sms", headers=headers)
    assert response.status_code == 200


def test_trust_proxy_counts_hops(db_url):
    """With one trusted hop, a client-supplied extra X-Forwarded-Host value is not believed."""
    sender = TwilioSender(_app(db_url, TRUST_PROXY=1).test_client(), url="http://127.0.0.1:8000/twilio/sms")
    headers = {**NGROK_HEADERS, "X-Forwarded-Host": "evil.example, abc123.ngrok.app"}
    assert sender.post(sms_params("hi"), sign_url=NGROK_URL, headers=headers).status_code == 200
    assert sender.post(sms_params("hi"), sign_url="https://evil.example/twilio/sms", headers=headers).status_code == 403


def test_public_url(db_url):
    sender = TwilioSender(
        _app(db_url, PUBLIC_URL="https://abc123.ngrok.app").test_client(), url="http://127.0.0.1:8000/twilio/sms"
    )
    assert sender.post(sms_params("hi"), sign_url=NGROK_URL).status_code == 200
    # Forwarded headers are irrelevant once the public URL is configured.
    assert (
        sender.post(
            sms_params("hi"),
            sign_url="https://evil.example/twilio/sms",
            headers={**NGROK_HEADERS, "X-Forwarded-Host": "evil.example"},
        ).status_code
        == 403
    )


def test_public_url_keeps_query(db_url):
    sender = TwilioSender(
        _app(db_url, PUBLIC_URL="https://abc123.ngrok.app").test_client(), url="http://127.0.0.1:8000/twilio/sms?x=1"
    )
    assert sender.post(sms_params("hi"), sign_url=NGROK_URL + "?x=1").status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/twilio/sms?name=a%20b&slash=%2F&plus=a+b",
        "http://localhost/twilio/sms?tenant=%C3%A9t%C3%A9",
    ],
)
def test_percent_encoded_query_is_validated_verbatim(twilio, url):
    assert twilio.post(sms_params("hi"), url=url).status_code == 200


def test_percent_encoded_query_signed_decoded_is_rejected(twilio):
    url = "http://localhost/twilio/sms?name=a%20b"
    assert twilio.post(sms_params("hi"), url=url, sign_url="http://localhost/twilio/sms?name=a b").status_code == 403


def test_sign_matches_published_vector_with_repeated_keys():
    pairs = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    assert signature.sign(VECTOR_URL, pairs, "12345") == "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    assert signature.sign(VECTOR_URL, list(VECTOR_PARAMS.items()), "12345") == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
