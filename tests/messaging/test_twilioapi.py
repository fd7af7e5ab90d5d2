"""The Twilio client the gateway sends with, against the fake Twilio API on loopback."""

import logging

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from gateway.core.accounts import Account, Accounts
from gateway.messaging.twilioapi import GatewayHttpClient, TwilioClients, make_client, retry_after

from ..support.constants import ACCOUNT, TOKEN


def test_requests_go_to_the_configured_base_keeping_path_and_query(fake):
    client = make_client(ACCOUNT, TOKEN, fake.base_url + "/")
    message = client.messages.create(to="+14155550100", from_="+15005550006", body="hi")
    assert message.sid.startswith("SM")
    assert fake.requests[-1]["path"] == f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    assert fake.sent[-1] == {"To": "+14155550100", "From": "+15005550006", "Body": "hi"}
    http = client.http_client
    http.request("POST", f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages.json?x=1&y=%2B2", data={})
    assert fake.requests[-1]["path"] == f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json?x=1&y=%2B2"
    http.request("POST", f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages.json?h=api.twilio.com")
    assert fake.requests[-1]["path"] == f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json?h=api.twilio.com"
    http.request("POST", f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages.json", None, {"Body": "b"})
    assert fake.sent[-1] == {"Body": "b"}  # positional arguments reach twilio's client too


def test_a_base_below_a_path_is_kept_whole(fake):
    client = make_client(ACCOUNT, TOKEN, fake.base_url + "/proxyX/")
    with pytest.raises(TwilioRestException):  # the fake serves Twilio's paths only, and says where it was asked
        client.messages.create(to="+14155550100", from_="+15005550006", body="hi")
    assert fake.requests[-1]["path"] == f"/proxyX/2010-04-01/Accounts/{ACCOUNT}/Messages.json"


def test_without_a_base_the_url_is_left_alone_and_requests_time_out():
    assert GatewayHttpClient().base_url is None and GatewayHttpClient().timeout == 15.0
    assert GatewayHttpClient(timeout=3.0).timeout == 3.0
    assert GatewayHttpClient("https://example.test/apiX/").base_url == "https://example.test/apiX"


def test_retry_after_of_a_plain_twilio_client_is_none():
    assert retry_after(Client(ACCOUNT, TOKEN)) is None


@pytest.mark.parametrize(
    ("header", "seconds"), [({"Retry-After": "7"}, 7.0), ({}, None), ({"Retry-After": "soon"}, None)]
)
def test_retry_after_reads_the_last_response(fake, header, seconds):
    client = make_client(ACCOUNT, TOKEN, fake.base_url)
    assert retry_after(client) is None  # nothing sent yet
    fake.failures.append((429, header))
    with pytest.raises(TwilioRestException) as info:
        client.messages.create(to="+14155550100", from_="+15005550006", body="hi")
    assert info.value.status == 429
    assert client.http_client.last_response.status_code == 429
    assert retry_after(client) == seconds


def test_a_failed_connection_leaves_no_stale_response(fake):
    client = make_client(ACCOUNT, TOKEN, fake.base_url)
    fake.failures.append((429, {"Retry-After": "7"}))
    with pytest.raises(TwilioRestException):
        client.messages.create(to="+14155550100", from_="+15005550006", body="hi")
    fake.close()
    with pytest.raises(Exception):  # noqa: B017, PT011 - requests' connection error
        client.messages.create(to="+14155550100", from_="+15005550006", body="hi")
    assert retry_after(client) is None  # not the 429 before it


def test_twilio_never_logs_recipients_or_bodies(fake, caplog):
    client = make_client(ACCOUNT, TOKEN, fake.base_url)
    with caplog.at_level(logging.DEBUG, logger="twilio"):
        client.messages.create(to="+14155550100", from_="+15005550006", body="secret body")
    assert "secret body" not in caplog.text and "+14155550100" not in caplog.text


@pytest.mark.parametrize(
    ("account", "dev_token", "expected"),
    [
        (Account("main", ACCOUNT, (TOKEN, "second")), False, (ACCOUNT, TOKEN)),  # the primary token talks
        (Account("main", ACCOUNT, (TOKEN,)), True, None),  # a local development token cannot reach Twilio
        (Account("main", None, (TOKEN,)), False, None),  # no SID: nothing to talk as
        (Account("main", ACCOUNT, ()), False, None),  # no token
        (None, False, None),  # a sender no account owns
    ],
)
def test_the_credentials_an_account_talks_to_twilio_with(account, dev_token, expected):
    accounts = Accounts((account,)) if account else Accounts.single(None, (), ())
    clients = TwilioClients(accounts, None, dev_token)
    assert clients.credentials(account) == expected
    assert clients.any() is (expected is not None)


def test_one_client_per_account_made_once_and_aimed_at_the_base(fake):
    main, other = Account("main", ACCOUNT, (TOKEN,)), Account("other", "AC" + "b" * 32, ("t" * 32,))
    clients = TwilioClients(Accounts((main, other)), fake.base_url)
    first = clients.client(main)
    assert clients.client(main) is first and clients.client(other) is not first
    assert (first.username, first.password) == (ACCOUNT, TOKEN)
    first.messages.create(to="+14155550100", from_="+15005550006", body="hi")
    assert fake.requests[-1]["path"] == f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
