"""The optional clarification: one text per revocation, every kind stopped until an answer narrows it."""

import pytest

from gateway import create_app
from gateway.core.consent import Grant
from gateway.messaging import services
from gateway.settings import ConfigError

from .support.accounts import outbound_config
from .support.constants import SENDER, TWILIO_NUMBER
from .support.webhooks import TwilioSender

ASK = "Acme: you will get no more texts. To stop only offers and keep appointment reminders, reply OFFERS."
STOP_REPLY = "You have been unsubscribed and will not receive further messages. Reply START to resubscribe."


def test_configuration_names_a_bad_clarification(tmp_path):
    from gateway.settings import load

    extra = tmp_path / "extra.toml"
    extra.write_text(f'clarification_text = "{ASK}"\n[clarification_choices]\noffers = ["marketing"]\n')
    environ = {"TWILIO_AUTH_TOKEN": "t", "GATEWAY_CONFIG_FILE": str(extra)}
    with pytest.raises(ConfigError) as raised:
        load(None, instance_path=str(tmp_path), environ=environ)
    assert str(raised.value).startswith(f"{extra}: clarification_choices: 'marketing' must be in require_consent")
    found = load(None, instance_path=str(tmp_path), environ={**environ, "GATEWAY_REQUIRE_CONSENT": "marketing"})
    assert found["CLARIFICATION"].choices == {"offers": ("marketing",)}


@pytest.fixture
def clarifying(db_url, fake):
    settings = outbound_config(db_url, fake)
    app = create_app(
        {
            **settings,
            "REQUIRE_CONSENT": ["marketing"],
            "CLARIFICATION_TEXT": ASK,
            "CLARIFICATION_CHOICES": {"offers": ["marketing"]},
        }
    )
    store = services.of(app).store
    yield app, store, TwilioSender(app.test_client())
    store.close()


def consent_to(store, *categories):
    for category in categories:
        store.record_consent(
            Grant(SENDER, TWILIO_NUMBER, category, "web_form", "2026-11-01T00:00:00.000000Z", "Yes.", "form")
        )


def messages(response):
    return response.text.count("<Message>")


def test_one_text_per_revocation_and_every_kind_stopped_until_the_answer(clarifying):
    app, store, twilio = clarifying
    outbound = services.of(app).outbound
    consent_to(store, "marketing", "informational")
    stop = twilio.sms("STOP", sid="SM" + "1" * 32)
    assert messages(stop) == 1 and ASK in stop.text  # the clarification instead of the confirmation
    assert twilio.sms("STOP", sid="SM" + "1" * 32).text == stop.text  # a retry gets the same, and nothing more
    assert messages(twilio.sms("stop")) == 0  # a second STOP: no second text
    # Until the answer, every kind is stopped.
    assert twilio.sms("hello?").text.endswith("<Response />")
    assert outbound.queue(SENDER, content="x", category="informational")["reason"] == "opted_out"
    assert outbound.queue(SENDER, content="x", category="marketing")["reason"] == "opted_out"
    assert twilio.sms("what?").text.endswith("<Response />")  # not an offered answer: dropped
    # The answer stops offers only; no text goes out for it.
    answer = twilio.sms("Offers")
    assert messages(answer) == 0
    assert not store.is_opted_out(SENDER, TWILIO_NUMBER)
    assert outbound.queue(SENDER, content="x", category="marketing")["reason"] == "no_consent"
    assert outbound.queue(SENDER, content="x", category="informational")["status"] == "queued"
    twilio.sms("thanks")
    assert [m["body"] for m in store.queued_messages()] == ["thanks"]
    current = store.consents(SENDER, current=True)
    assert [(c["category"], c["method"], c["wording"]) for c in current] == [("informational", "keyword", "Offers")]
    timeline = [(e["event"], e["source"], e["state_changed"]) for e in store.history(SENDER)]
    assert timeline[2] == ("opt_out", "keyword", True)
    assert ("opt_in", "clarification", True) in timeline
    narrowed = next(e for e in store.history(SENDER) if e["source"] == "clarification")
    assert narrowed["detail"]["stopped"] == ["marketing"]
    assert store.verify_ledger().ok
    # An answer after it is settled is an ordinary message.
    twilio.sms("offers")
    assert [m["body"] for m in store.queued_messages()][-1] == "offers"


def test_one_category_gets_the_plain_confirmation(clarifying):
    _, store, twilio = clarifying
    consent_to(store, "marketing")
    stop = twilio.sms("STOP")
    assert messages(stop) == 1 and STOP_REPLY in stop.text
    twilio.sms("offers")  # nothing was asked: the STOP stands
    assert store.is_opted_out(SENDER, TWILIO_NUMBER)


def test_a_start_after_the_clarification_resubscribes_as_usual(clarifying):
    _, store, twilio = clarifying
    consent_to(store, "marketing", "informational")
    twilio.sms("STOP")
    twilio.sms("START")
    assert not store.is_opted_out(SENDER, TWILIO_NUMBER)
    twilio.sms("offers")  # the pair may be messaged: an ordinary message now
    assert [m["body"] for m in store.queued_messages()] == ["offers"]
