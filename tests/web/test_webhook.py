"""POST /twilio/sms through the Flask test client, on a real SQLite file."""

import threading
from urllib.parse import urlencode

import pytest
from twilio.twiml.messaging_response import MessagingResponse

from gateway import create_app
from gateway.messaging import services

from ..support.accounts import three_accounts
from ..support.constants import (
    ACCOUNT,
    BRAND_ACCOUNT,
    BRAND_NUMBER,
    BRAND_TOKEN,
    FORM,
    OTHER_TWILIO_NUMBER,
    SENDER,
    TOKEN,
    TWILIO_NUMBER,
)
from ..support.webhooks import TwilioSender, new_sid, sms_params

STOP_REPLY = "You have been unsubscribed and will not receive further messages. Reply START to resubscribe."
START_REPLY = "You have been resubscribed and will receive messages again."
HELP_REPLY = "Reply STOP to unsubscribe or START to resubscribe."
EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response />'


def message_twiml(text):
    response = MessagingResponse()
    response.message(text)
    return str(response)


@pytest.mark.parametrize(
    ("body", "reply"),
    [
        ("STOP", STOP_REPLY),
        ("  Stop!  ", STOP_REPLY),
        ("ＳＴＯＰ", STOP_REPLY),
        ("opt out", STOP_REPLY),
        ("Revoke.", STOP_REPLY),
        ("HELP", HELP_REPLY),
        ("info", HELP_REPLY),
        ("START", START_REPLY),
        ("hello there", None),
        ("stop!!", None),
        ("we have to stop this", None),
    ],
)
def test_first_message_reply(twilio, body, reply):
    response = twilio.sms(body)
    assert response.status_code == 200
    assert response.content_type.startswith("text/xml")
    assert response.text == (message_twiml(reply) if reply else EMPTY)


def test_stop_opts_the_pair_out_and_logs_it(twilio, store):
    sid = new_sid()
    twilio.sms("Stop.", sid=sid)
    assert store.is_opted_out(SENDER, TWILIO_NUMBER)
    (row,) = store.current_opt_outs()
    assert row["number"] == SENDER and row["twilio_number"] == TWILIO_NUMBER
    assert row["source"] == "keyword" and row["message_sid"] == sid and row["opted_out_at"].endswith("Z")
    (event,) = store.events()
    assert event["event"] == "opt_out" and event["body"] == "Stop." and event["message_sid"] == sid
    assert event["source"] == "keyword" and event["state_changed"] is True
    assert store.queued_messages() == []


def test_opt_out_is_per_pair(twilio, store):
    twilio.sms("STOP", to=TWILIO_NUMBER)
    assert store.is_opted_out(SENDER, TWILIO_NUMBER)
    assert not store.is_opted_out(SENDER, OTHER_TWILIO_NUMBER)
    assert twilio.sms("hello", to=OTHER_TWILIO_NUMBER).text == EMPTY
    (queued,) = store.queued_messages()
    assert queued["to_number"] == OTHER_TWILIO_NUMBER


def test_repeated_stop_gets_no_second_confirmation_but_is_logged(twilio, store):
    assert twilio.sms("STOP").text == message_twiml(STOP_REPLY)
    assert twilio.sms("stop").text == EMPTY
    assert twilio.sms("UNSUBSCRIBE").text == EMPTY
    events = store.events()
    assert [e["event"] for e in events] == ["opt_out"] * 3
    assert [e["state_changed"] for e in events] == [True, False, False]
    # The opt-out keeps the time of the STOP that made it.
    assert store.current_opt_outs()[0]["message_sid"] == events[0]["message_sid"]


def test_help_always_replies(twilio):
    assert twilio.sms("HELP").text == message_twiml(HELP_REPLY)
    twilio.sms("STOP")
    assert twilio.sms("help").text == message_twiml(HELP_REPLY)


def test_start_always_replies_and_history_stays(twilio, store):
    assert twilio.sms("START").text == message_twiml(START_REPLY)
    twilio.sms("STOP")
    assert twilio.sms("yes").text == message_twiml(START_REPLY)
    assert not store.is_opted_out(SENDER, TWILIO_NUMBER)
    assert store.current_opt_outs() == []
    history = store.history(SENDER)
    assert [(e["event"], e["state_changed"]) for e in history] == [
        ("opt_in", False),
        ("consent_granted", False),  # each START is also a consent grant (keyword_consent_categories)
        ("opt_out", True),
        ("opt_in", True),
        ("consent_granted", False),
    ]
    assert history[0]["at"] == history[1]["at"] < history[2]["at"] < history[3]["at"] == history[4]["at"]
    # The STOP ended the first grant; the second START's grant is current.
    first, second = store.consents(SENDER)
    assert first["ended_by_event_id"] == history[2]["id"] and second["ended_at"] is None
    assert (second["method"], second["sender"], second["category"], second["wording"]) == (
        "keyword",
        TWILIO_NUMBER,
        "informational",
        "yes",
    )


def test_messages_from_opted_out_pair_are_dropped(twilio, store):
    twilio.sms("STOP")
    sid = new_sid()
    assert twilio.sms("are you there?", sid=sid).text == EMPTY
    assert store.queued_messages() == []
    dropped = store.events()[-1]
    assert dropped["event"] == "dropped" and dropped["message_sid"] == sid and dropped["body"] == "are you there?"
    twilio.sms("START")
    twilio.sms("back again")
    assert [m["body"] for m in store.queued_messages()] == ["back again"]


def test_other_messages_are_queued_with_everything(twilio, store):
    sid = new_sid()
    params = sms_params(
        "  Hi, what time?  ",
        sid=sid,
        NumMedia="1",
        MediaUrl0="https://api.twilio.com/m/1",
        MediaContentType0="image/jpeg",
        FromCity="",
    )
    assert twilio.post(params).text == EMPTY
    (queued,) = store.queued_messages()
    assert queued["message_sid"] == sid and queued["body"] == "  Hi, what time?  "
    assert queued["from_number"] == SENDER and queued["to_number"] == TWILIO_NUMBER
    assert queued["status"] == "pending"
    assert sorted(queued["params"]) == sorted(params)
    assert store.events() == []  # not an interception


@pytest.mark.parametrize(("opt_out_type", "body", "event"), [("STOP", "STOP", "opt_out"), ("HELP", "help", "help")])
def test_advanced_opt_out_is_recorded_without_a_second_reply(twilio, store, opt_out_type, body, event):
    assert twilio.sms(body, OptOutType=opt_out_type).text == EMPTY
    (logged,) = store.events()
    assert logged["event"] == event and logged["source"] == "twilio"


def test_advanced_opt_out_start_and_custom_keyword(twilio, store):
    # Twilio may be configured with keywords we do not know: its word wins.
    assert twilio.sms("ARRET", OptOutType="STOP").text == EMPTY
    assert store.current_opt_outs()[0]["source"] == "twilio"
    assert twilio.sms("ARRET", OptOutType="STOP").text == EMPTY
    assert twilio.sms("start", OptOutType="START").text == EMPTY
    assert not store.is_opted_out(SENDER, TWILIO_NUMBER)
    assert [(e["event"], e["state_changed"], e["source"]) for e in store.events()] == [
        ("opt_out", True, "twilio"),
        ("opt_out", False, "twilio"),
        ("opt_in", True, "twilio"),
        ("consent_granted", False, "keyword"),  # Twilio's START is the person's consent too
    ]


def test_unknown_opt_out_type_falls_back_to_keywords(twilio, store):
    assert twilio.sms("STOP", OptOutType="SOMETHING").text == message_twiml(STOP_REPLY)
    assert store.current_opt_outs()[0]["source"] == "keyword"


@pytest.mark.parametrize("body", ["STOP", "HELP", "START", "hello"])
def test_duplicate_delivery_gets_the_same_twiml_and_changes_nothing(twilio, store, body):
    sid = new_sid()
    first = twilio.sms(body, sid=sid)
    events, queued, optouts = store.events(), store.queued_messages(), store.current_opt_outs()
    second = twilio.sms(body, sid=sid)
    assert second.status_code == 200 and second.text == first.text
    assert (store.events(), store.queued_messages(), store.current_opt_outs()) == (events, queued, optouts)


def test_duplicate_after_state_change_replays_first_reply(twilio, store):
    """A retried STOP after another STOP still gets the reply the first attempt got."""
    sid = new_sid()
    first = twilio.sms("STOP", sid=sid)
    twilio.sms("START")
    assert twilio.sms("STOP", sid=sid).text == first.text == message_twiml(STOP_REPLY)
    assert not store.is_opted_out(SENDER, TWILIO_NUMBER)


def test_concurrent_duplicates_are_processed_once(app, store):
    sid = new_sid()
    barrier = threading.Barrier(8)
    results = []

    def post():
        sender = TwilioSender(app.test_client())
        barrier.wait()
        results.append(sender.sms("STOP", sid=sid))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {r.status_code for r in results} == {200}
    assert {r.text for r in results} == {message_twiml(STOP_REPLY)}
    assert len(store.events()) == 1


def test_smssid_is_accepted_when_messagesid_is_absent(twilio, store):
    params = [(k, v) for k, v in sms_params("STOP") if k != "MessageSid"]
    assert twilio.post(params).status_code == 200
    assert store.events()[0]["message_sid"] == dict(params)["SmsSid"]


@pytest.mark.parametrize(
    ("drop", "reason"),
    [
        (("MessageSid", "SmsSid", "SmsMessageSid"), "missing required parameter(s): MessageSid"),
        (("From",), "missing required parameter(s): From"),
        (("To",), "missing required parameter(s): To"),
        (("From", "To"), "missing required parameter(s): From, To"),
    ],
)
def test_missing_parameters_are_400(twilio, store, drop, reason):
    params = [(k, v) for k, v in sms_params("STOP") if k not in drop]
    response = twilio.post(params)
    assert response.status_code == 400
    assert response.text == f"400 Bad Request: {reason}\n"
    assert store.events() == []


def test_oversized_body_is_413(twilio, store):
    response = twilio.sms("x" * 70_000)
    assert response.status_code == 413
    assert response.text == "413 Request Entity Too Large: request body exceeds 65536 bytes\n"
    assert store.queued_messages() == []


def test_body_limit_is_configurable(db_url):
    sender = TwilioSender(
        create_app({"DATABASE_URL": db_url, "TWILIO_AUTH_TOKEN": TOKEN, "MAX_BODY_BYTES": 2048}).test_client()
    )
    assert sender.sms("x" * 1000).status_code == 200
    assert sender.sms("x" * 3000).status_code == 413


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_wrong_method_is_405(client, method):
    response = client.open("/twilio/sms", method=method)
    assert response.status_code == 405
    assert response.text == "405 Method Not Allowed: method not allowed\n"
    assert "POST" in response.headers["Allow"]


def test_unknown_path_is_404_plain(client):
    response = client.get("/nope")
    assert response.status_code == 404 and response.text == "404 Not Found: not found\n"


def test_database_failure_is_500_without_traceback(twilio, raw, caplog):
    raw.execute("DROP TABLE inbound_messages")
    response = twilio.sms("STOP")
    assert response.status_code == 500
    assert response.text == "500 Internal Server Error: internal server error\n"
    assert "Traceback" not in response.text
    assert "inbound_messages" in caplog.text  # the operator sees why


def test_not_form_encoded_is_rejected(client):
    response = client.post(
        "/twilio/sms",
        data=urlencode(sms_params("STOP")),
        content_type="text/plain",
        headers={"X-Twilio-Signature": "x"},
    )
    assert response.status_code == 403


def test_per_number_keywords(tmp_path, db_url):
    keywords = tmp_path / "keywords.toml"
    keywords.write_text(
        '[keywords]\nstop = ["stop"]\nstart = ["start"]\nhelp = ["help"]\n'
        '[replies]\nstop = "bye"\nstart = "hi"\nhelp = "Acme: reply STOP to end"\n'
        f'[numbers."{OTHER_TWILIO_NUMBER}".keywords]\nstop = ["stop", "arret"]\n'
        f'[numbers."{OTHER_TWILIO_NUMBER}".replies]\nstop = "Au revoir"\n'
    )
    sender = TwilioSender(
        create_app({"DATABASE_URL": db_url, "TWILIO_AUTH_TOKEN": TOKEN, "KEYWORDS_FILE": str(keywords)}).test_client()
    )
    assert sender.sms("arret", to=TWILIO_NUMBER).text == EMPTY
    assert sender.sms("arret", to=OTHER_TWILIO_NUMBER).text == message_twiml("Au revoir")
    assert sender.sms("help", to=OTHER_TWILIO_NUMBER).text == message_twiml("Acme: reply STOP to end")


def test_request_log_masks_numbers(twilio, caplog):
    with caplog.at_level("INFO", logger="gateway"):
        twilio.sms("STOP")
    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.request"]
    assert len(lines) == 1
    assert "POST /twilio/sms 200 outcome=opt_out" in lines[0]
    assert SENDER not in caplog.text and TWILIO_NUMBER not in caplog.text
    assert "+1********00" in lines[0]


def test_request_log_marks_duplicates(twilio, caplog):
    sid = new_sid()
    twilio.sms("hello", sid=sid)
    with caplog.at_level("INFO", logger="gateway"):
        twilio.sms("hello", sid=sid)
    assert "outcome=queued duplicate" in caplog.text


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok", "database": "ok"}


def test_healthz_503_when_database_broken(client, raw):
    raw.execute("DROP TABLE opt_outs")
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json["status"] == "unavailable"


def test_body_form_encoded_raw(client, store):
    """A real form-encoded body as Twilio sends it, with + and %-escapes."""
    from ..support.webhooks import sign

    params = sms_params("Stop & go + 100%")
    body = urlencode(params)
    response = client.post(
        "/twilio/sms",
        data=body,
        content_type=FORM,
        headers={"X-Twilio-Signature": sign("http://localhost/twilio/sms", params)},
    )
    assert response.status_code == 200
    assert store.queued_messages()[0]["body"] == "Stop & go + 100%"


@pytest.mark.parametrize("body", ["hello\x00there", "STOP\x00"])
def test_nul_characters_are_stored_as_replacement_characters(twilio, store, body):
    """PostgreSQL text cannot hold NUL: what Twilio sends is never refused for it, on either backend."""
    response = twilio.sms(body, sid="SM" + "0" * 32)
    assert response.status_code == 200
    stored = [m["body"] for m in store.queued_messages()] + [e["body"] for e in store.events()]
    assert stored and set(stored) == {body.replace("\x00", "\ufffd")}  # queued, or a candidate: queued and logged
    assert store.verify_ledger().ok
    assert twilio.sms(body, sid="SM" + "0" * 32).text == response.text  # a retry is still the same message


def test_an_accounts_own_keywords_answer_on_its_numbers_only(tmp_path, monkeypatch, db_url):
    words = tmp_path / "brand-keywords.toml"
    words.write_text(
        '[keywords]\nstop = ["stop", "alto"]\nstart = ["start"]\nhelp = ["help"]\n'
        '[replies]\nstop = "Brand B: unsubscribed."\nstart = "Brand B: back."\nhelp = "Brand B: call us."\n'
    )
    environ = three_accounts(tmp_path)
    config = tmp_path / "accounts.toml"
    config.write_text(
        config.read_text().replace("[accounts.brand]\n", f'[accounts.brand]\nkeywords_file = "{words}"\n')
    )
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    app = create_app({"DATABASE_URL": db_url})
    sender = TwilioSender(app.test_client())
    brand = sender.post(sms_params("Alto!", to=BRAND_NUMBER, account=BRAND_ACCOUNT), token=BRAND_TOKEN)
    main = sender.post(sms_params("Alto!", sender="+14155550101", to=TWILIO_NUMBER, account=ACCOUNT))
    assert "<Message>Brand B: unsubscribed.</Message>" in brand.text
    assert "<Message>" not in main.text  # on the main account's number, a plain message
    store = services.of(app).store
    assert store.is_opted_out(SENDER, BRAND_NUMBER) and not store.is_opted_out("+14155550101", TWILIO_NUMBER)
    store.close()
