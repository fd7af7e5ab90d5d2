"""Signature checking, as a function and through the webhook."""

import logging
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import pytest
from flask import Flask
from werkzeug.datastructures import MultiDict

from gateway import create_app
from gateway.core.accounts import Accounts
from gateway.messaging import services
from gateway.settings import dev_token
from gateway.store import Store
from gateway.web import signature
from gateway.web.signature import is_valid, validation_url

from ..support.accounts import three_accounts
from ..support.constants import (
    ACCOUNT,
    BRAND_ACCOUNT,
    BRAND_NUMBER,
    BRAND_TOKEN,
    FORM,
    REGION_ACCOUNT,
    REGION_NEXT_TOKEN,
    REGION_NUMBER,
    REGION_TOKEN,
    SENDER,
    TOKEN,
    TWILIO_NUMBER,
)
from ..support.servers import Gunicorn
from ..support.webhooks import TwilioSender, post_webhook, sign, sms_params

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
def test_fails_closed(url, params, signature, tokens, caplog):
    with caplog.at_level(logging.ERROR, logger="gateway.web.signature"):
        assert not is_valid(url, params, signature, tokens)
    assert caplog.records == []  # refused by the rules, not by an accident inside the validator


def test_either_token_is_accepted():
    assert is_valid(VECTOR_URL, VECTOR_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", ["new-token", "12345"])
    assert is_valid(VECTOR_URL, VECTOR_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", ["", "12345"])  # a blank is skipped


@pytest.mark.parametrize(
    ("signed", "checked"),
    [
        ("https://example.com/sms", "https://example.com:443/sms"),
        ("https://example.com:443/sms", "https://example.com/sms"),
        ("http://example.com/sms", "http://example.com:80/sms"),
        ("http://example.com:80/sms", "http://example.com/sms"),
    ],
)
@pytest.mark.parametrize("tokens", [["12345"], ["new-token", "12345"]])
def test_the_url_with_or_without_its_default_port_is_accepted(signed, checked, tokens):
    """Twilio's rule: some of its clients sign the URL with the default port, some without."""
    assert is_valid(checked, VECTOR_PARAMS, signature.sign(signed, list(VECTOR_PARAMS.items()), "12345"), tokens)
    assert not is_valid(checked, VECTOR_PARAMS, signature.sign(signed, list(VECTOR_PARAMS.items()), "other"), tokens)


def test_the_url_exactly_as_given_is_tried_first():
    """twilio's validate re-assembles the URL (``urlparse(...).geturl()`` drops an empty ``?``); a signature over
    the URL exactly as checked is accepted without that."""
    url = "https://example.com/sms?"
    assert is_valid(url, VECTOR_PARAMS, signature.sign(url, list(VECTOR_PARAMS.items()), "12345"), ["12345"])


@pytest.mark.parametrize(("url", "params"), [("http://[::1/twilio/sms", VECTOR_PARAMS), (VECTOR_URL, object())])
def test_an_error_inside_validation_fails_closed_and_is_logged(caplog, url, params):
    with caplog.at_level(logging.ERROR, logger="gateway.web.signature"):
        assert is_valid(url, params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", ["12345", "12345"]) is False
    assert [r.getMessage() for r in caplog.records] == ["signature validation raised; treating as invalid"]


SAFE = "/:@!$&'()*+,;=-._~%41"


@pytest.mark.parametrize(
    ("environ", "target"),
    [
        ({"RAW_URI": "/twilio/sms?a=%20b&c", "PATH_INFO": "/ignored"}, ("/twilio/sms", "a=%20b&c")),
        ({"REQUEST_URI": "/twilio/sms?x=1"}, ("/twilio/sms", "x=1")),
        ({"RAW_URI": "", "REQUEST_URI": "/from-request-uri"}, ("/from-request-uri", "")),
        # No raw request line (or an absolute one): the decoded path, quoted back as Twilio would have sent it.
        ({"PATH_INFO": "/twilio/sms ü", "QUERY_STRING": "a=1"}, ("/twilio/sms%20%C3%BC", "a=1")),
        (
            {"RAW_URI": "http://host/twilio/sms?q", "PATH_INFO": "/twilio/sms", "QUERY_STRING": "q"},
            ("/twilio/sms", "q"),
        ),
        ({"PATH_INFO": SAFE}, (SAFE, "")),
        ({}, ("", "")),
        # Mounted under a prefix the proxy strips: the prefix goes back in front.
        ({"RAW_URI": "/twilio/sms", "SCRIPT_NAME": "/gw"}, ("/gw/twilio/sms", "")),
        ({"RAW_URI": "/gwx/twilio/sms", "SCRIPT_NAME": "/gw"}, ("/gw/gwx/twilio/sms", "")),
        ({"PATH_INFO": "/twilio/sms", "SCRIPT_NAME": "/g w"}, ("/g%20w/twilio/sms", "")),
        ({"RAW_URI": "/twilio/sms", "SCRIPT_NAME": SAFE}, (SAFE + "/twilio/sms", "")),
        # Mounted by the server itself: the raw path already has the prefix.
        ({"RAW_URI": "/gw/twilio/sms?a", "SCRIPT_NAME": "/gw"}, ("/gw/twilio/sms", "a")),
    ],
)
def test_raw_target(environ, target):
    assert signature._raw_target(environ) == target


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
        ("http://x/twilio/sms", "https://example.com/boX//", "/twilio/sms", "", "https://example.com/boX/twilio/sms"),
    ],
)
def test_validation_url(request_url, public, path, query, expected):
    assert validation_url(request_url, public, path, query) == expected


# -- ngrok and proxies -----------------------------------------------------------

NGROK_HEADERS = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "abc123.ngrok.app", "X-Forwarded-For": "54.1.2.3"}
NGROK_URL = "https://abc123.ngrok.app/twilio/sms"


def _app(db_url, **settings):
    return create_app({"DATABASE_URL": db_url, "TWILIO_AUTH_TOKEN": TOKEN, **settings})


# -- the decorators, on a view made at any time ------------------------------------


ACCOUNT_ONE = Accounts.single(None, [TOKEN], ()).accounts[0]


@pytest.fixture
def guarded():
    """A bare Flask app whose views are guarded now, inside the test (not at import)."""
    app = Flask(__name__)
    app.config.update(ACCOUNTS=Accounts((ACCOUNT_ONE,)), PUBLIC_URL=None, CALLBACK_URL="https://cb.example/status")

    @app.post("/hook")
    @signature.twilio_signed
    def hook():
        return "hooked"

    @app.post("/callback")
    @signature.twilio_signed_at("CALLBACK_URL")
    def callback():
        return "called back"

    return app


PARAMS = [("MessageSid", "SM1"), ("MessageStatus", "delivered")]


def _post(app, path, url=None):
    headers = {signature.HEADER: sign(url, PARAMS)} if url else {}
    return app.test_client().post(path, data=urlencode(PARAMS), content_type=FORM, headers=headers)


def test_twilio_signed_lets_only_a_signed_request_through(guarded):
    assert _post(guarded, "/hook", "http://localhost/hook").text == "hooked"
    assert _post(guarded, "/hook", "http://localhost/other").status_code == 403
    assert _post(guarded, "/hook").status_code == 403
    assert hook_name(guarded, "hook") == "hook"


def test_twilio_signed_at_accepts_the_url_the_gateway_gave_twilio_and_the_one_it_arrived_at(guarded):
    assert _post(guarded, "/callback", "https://cb.example/status").text == "called back"
    assert _post(guarded, "/callback", "http://localhost/callback").text == "called back"
    assert _post(guarded, "/callback", "https://elsewhere.example/status").status_code == 403
    assert hook_name(guarded, "callback") == "callback"


def hook_name(app, endpoint):
    return app.view_functions[endpoint].__name__  # functools.wraps kept the view's name


def test_check_request_names_the_url_that_matched_or_every_url_tried(guarded):
    body = urlencode(PARAMS)
    signed = {signature.HEADER: sign("https://cb.example/status", PARAMS)}
    with guarded.test_request_context("/callback?x=1", method="POST", data=body, content_type=FORM, headers=signed):
        assert signature.check_request("https://cb.example/status") == signature.Check(
            True, "https://cb.example/status", ACCOUNT_ONE
        )
        assert signature.check_request() == signature.Check(False, "http://localhost/callback?x=1", ACCOUNT_ONE)
        assert signature.check_request("https://other.example/") == signature.Check(
            False, "https://other.example/ or http://localhost/callback?x=1", ACCOUNT_ONE
        )
    with guarded.test_request_context("/callback", method="POST", data=body, content_type=FORM, headers=signed):
        assert signature.check_request("http://localhost/callback") == signature.Check(
            False, "http://localhost/callback", ACCOUNT_ONE
        )


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
    assert "validated against URL http://localhost/twilio/sms; " in warning
    assert "either the token differs" in warning  # it cannot tell a wrong token from a wrong URL: both, named
    assert "GATEWAY_PUBLIC_URL" in warning and "GATEWAY_TRUST_PROXY" in warning


def test_a_request_signed_with_the_local_development_token_is_explained_as_that(db_url, caplog, tmp_path):
    """`gateway simulate` from a shell without the server's TWILIO_AUTH_TOKEN signs with this machine's
    development token: the log says so, not that a proxy changed the URL; and the request stays refused."""
    app = _app(db_url)
    local = dev_token(app.instance_path, create=True)
    with caplog.at_level(logging.WARNING, logger="gateway"):
        response = TwilioSender(app.test_client()).post(sms_params("STOP"), token=local)
    assert response.status_code == 403 and response.text.strip() == "403 Forbidden: invalid X-Twilio-Signature"
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "gateway.web.signature"]
    assert "signed with this machine's local development token, not the server's auth token" in warning
    assert "GATEWAY_TRUST_PROXY" not in warning
    assert local not in warning and TOKEN not in warning


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
    assert f"it was signed for {NGROK_URL}, the URL a proxy in front of the gateway forwarded" in caplog.text
    assert "set GATEWAY_TRUST_PROXY to the number of proxies" in caplog.text


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


# -- several accounts: each request checked with the tokens of the account it names ----------------


@pytest.fixture
def accounts_client(accounts_app):
    return accounts_app[0].test_client()


ACCOUNTS = {  # AccountSid -> (its number, the tokens Twilio may sign with)
    ACCOUNT: (TWILIO_NUMBER, (TOKEN,)),
    BRAND_ACCOUNT: (BRAND_NUMBER, (BRAND_TOKEN,)),
    REGION_ACCOUNT: (REGION_NUMBER, (REGION_TOKEN, REGION_NEXT_TOKEN)),
}
EVERY_TOKEN = (TOKEN, BRAND_TOKEN, REGION_TOKEN, REGION_NEXT_TOKEN)


@pytest.mark.parametrize("account", list(ACCOUNTS))
def test_each_account_is_accepted_only_with_its_own_tokens(accounts_client, account):
    number, tokens = ACCOUNTS[account]
    sender = TwilioSender(accounts_client)
    for token in EVERY_TOKEN:
        response = sender.post(sms_params("hello", to=number, account=account), token=token)
        assert response.status_code == (200 if token in tokens else 403), (account, token)
    store = services.of(accounts_client.application).store
    assert len(store.queued_messages()) == len(tokens)  # only what its own tokens signed was stored


@pytest.mark.parametrize(
    ("account", "logged"),
    [
        ("AC" + "9" * 32, f"AccountSid 'AC{'9' * 32}' is not one of this gateway's accounts"),
        (None, "no AccountSid"),
        ("AC\nforged log line", "AccountSid 'AC\\nforged log line' is not one of this gateway's accounts"),
    ],
)
def test_an_unknown_or_missing_account_is_refused_like_a_bad_signature(accounts_client, caplog, account, logged):
    params = sms_params("STOP", account=account)
    with caplog.at_level(logging.WARNING, logger="gateway"):
        for token in EVERY_TOKEN:  # no account's token is tried for it, even the right one for the number
            response = TwilioSender(accounts_client).post(params, token=token)
            assert response.status_code == 403
            assert response.text.strip() == "403 Forbidden: invalid X-Twilio-Signature"
    warnings = {r.getMessage() for r in caplog.records if r.levelno == logging.WARNING}
    assert warnings == {
        f"rejected POST /twilio/sms: {logged}; add the account under [accounts] in the configuration file "
        "(GATEWAY_CONFIG_FILE) with its auth token, or point the number's webhook elsewhere"
    }
    assert services.of(accounts_client.application).store.current_opt_outs() == []


def test_a_stop_to_one_account_leaves_the_others_untouched(accounts_client):
    sender = TwilioSender(accounts_client)
    stop = sender.post(sms_params("STOP", to=BRAND_NUMBER, account=BRAND_ACCOUNT), token=BRAND_TOKEN)
    assert "<Message>" in stop.text
    for account, (number, tokens) in ACCOUNTS.items():
        hello = sender.post(sms_params("hello", to=number, account=account), token=tokens[0])
        assert hello.status_code == 200
    store = services.of(accounts_client.application).store
    assert [(o["number"], o["twilio_number"]) for o in store.current_opt_outs()] == [(SENDER, BRAND_NUMBER)]
    assert sorted(m["to_number"] for m in store.queued_messages()) == sorted([TWILIO_NUMBER, REGION_NUMBER])


def test_a_single_account_gateway_accepts_any_account_sid_as_before(twilio, store):
    assert twilio.post(sms_params("hello", account=None)).status_code == 200
    assert twilio.post(sms_params("hello", account="AC" + "9" * 32)).status_code == 200
    assert len(store.queued_messages()) == 2


@pytest.mark.slow
def test_while_an_account_rotates_its_token_no_request_is_refused_under_load(tmp_path):
    """Real gunicorn, three accounts, region holding both its tokens: webhooks in parallel, each signed
    with one of its own account's tokens, are all stored; one signed with a swapped token is refused."""
    signers = [(account, number, token) for account, (number, tokens) in ACCOUNTS.items() for token in tokens]
    messages = [
        (sms_params(f"message {n}", sender=f"+1415555{n:04d}", to=number, account=account), token)
        for n in range(240)
        for account, number, token in [signers[n % len(signers)]]
    ]
    with Gunicorn(tmp_path, workers=2, env=three_accounts(tmp_path)) as server, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda m: post_webhook(server.base, m[0], token=m[1])[0], messages))
        swapped = sms_params("swapped", to=REGION_NUMBER, account=REGION_ACCOUNT)
        assert post_webhook(server.base, swapped, token=BRAND_TOKEN)[0] == 403
    assert answers == [200] * len(messages)
    stored = Store(server.db_url).queued_messages()
    assert len(stored) == len(messages) and "swapped" not in {m["body"] for m in stored}
    assert {token for _, token in messages} == set(EVERY_TOKEN)
