"""Every record that belongs to a Twilio account carries its Account SID, on both backends."""

from __future__ import annotations

import pytest

from gateway.core.messages import OutboundText
from gateway.messaging import services

from ..support.constants import (
    ACCOUNT,
    BRAND_ACCOUNT,
    BRAND_NUMBER,
    BRAND_TOKEN,
    REGION_ACCOUNT,
    REGION_NUMBER,
    REGION_TOKEN,
    SENDER,
    TOKEN,
    TWILIO_NUMBER,
)
from ..support.database import RawDatabase
from ..support.webhooks import TwilioSender, sms_params

TEXT = OutboundText("hi", "GSM-7", 1)


def test_records_carry_the_account_of_the_message_or_the_number(accounts_app, db_url):
    app, _ = accounts_app
    store, outbound = services.of(app).store, services.of(app).outbound
    webhook = TwilioSender(app.test_client())
    stop = sms_params("STOP", sender=SENDER, to=BRAND_NUMBER, account=BRAND_ACCOUNT)
    hello = sms_params("hello", sender=SENDER, to=REGION_NUMBER, account=REGION_ACCOUNT)
    plea = sms_params("please stop texting me", sender="+14155550101", to=TWILIO_NUMBER, account=ACCOUNT)
    for params, token in ((stop, BRAND_TOKEN), (hello, REGION_TOKEN), (plea, TOKEN)):
        assert webhook.post(params, token=token).status_code == 200
    for delivery in store.claim_deliveries(10, 60):  # sessions open in the message's account
        to_region = delivery["to_number"] == REGION_NUMBER
        reply = (delivery["from_number"], delivery["to_number"], TEXT) if to_region else None
        store.finish_delivery(delivery["id"], "delivered", reply=reply)
    outbound.queue(SENDER, content="from main", agent_number=TWILIO_NUMBER)
    outbound.queue(SENDER, content="from brand", agent_number=BRAND_NUMBER)  # suppressed: the STOP
    store.record_manual("+14155550102", REGION_NUMBER, True, "phone call", "ana")

    raw = RawDatabase(db_url)

    def accounts(sql):
        return sorted(raw.execute(sql), key=repr)

    assert accounts("SELECT to_number, account FROM inbound_messages") == sorted(
        [(BRAND_NUMBER, BRAND_ACCOUNT), (REGION_NUMBER, REGION_ACCOUNT), (TWILIO_NUMBER, ACCOUNT)], key=repr
    )
    assert accounts("SELECT twilio_number, account FROM opt_outs") == sorted(
        [(BRAND_NUMBER, BRAND_ACCOUNT), (REGION_NUMBER, REGION_ACCOUNT)], key=repr
    )
    assert accounts("SELECT event, account FROM events") == sorted(
        [
            ("opt_out", BRAND_ACCOUNT),
            ("revocation_candidate", ACCOUNT),
            ("suppressed", BRAND_ACCOUNT),
            ("opt_out", REGION_ACCOUNT),
        ],
        key=repr,
    )
    assert raw.execute("SELECT twilio_number, account FROM revocation_candidates") == [(TWILIO_NUMBER, ACCOUNT)]
    assert accounts("SELECT number, twilio_number, account FROM sessions") == sorted(
        [
            (SENDER, REGION_NUMBER, REGION_ACCOUNT),  # opened by the delivery of "hello"
            ("+14155550101", TWILIO_NUMBER, ACCOUNT),  # by the delivery of the plea
            (SENDER, TWILIO_NUMBER, ACCOUNT),  # by the send from main
        ],
        key=repr,
    )
    assert accounts("SELECT sender, status, account FROM outbound_messages") == sorted(
        [
            (REGION_NUMBER, "queued", REGION_ACCOUNT),  # the agent's reply, in the inbound message's account
            (TWILIO_NUMBER, "queued", ACCOUNT),
            (BRAND_NUMBER, "suppressed", BRAND_ACCOUNT),
        ],
        key=repr,
    )
    assert store.verify_ledger().ok
    assert {event["account"] for event in store.iter_events()} == {ACCOUNT, BRAND_ACCOUNT, REGION_ACCOUNT}


READERS = {
    "current_opt_outs": lambda store, accounts: store.current_opt_outs(accounts=accounts),
    "iter_opt_outs": lambda store, accounts: list(store.iter_opt_outs(accounts=accounts)),
    "count_opt_outs": lambda store, accounts: store.count_opt_outs(accounts=accounts),
    "history": lambda store, accounts: store.history(SENDER, accounts=accounts),
    "daily_state_changes": lambda store, accounts: store.daily_state_changes("2000-01-01", accounts=accounts),
    "revocation_candidates": lambda store, accounts: store.revocation_candidates(accounts=accounts),
    "consents": lambda store, accounts: store.consents(SENDER, accounts=accounts),
    "outbound_counts": lambda store, accounts: store.outbound_counts(accounts=accounts),
}


@pytest.mark.parametrize("reader", READERS)
def test_an_empty_account_list_reads_no_rows_on_either_database(accounts_app, reader):
    """A list of no accounts means no account's records: nothing, the same on both databases (``IN ()`` is
    valid SQLite and a syntax error on PostgreSQL). None means every account's."""
    app, _ = accounts_app
    store, outbound = services.of(app).store, services.of(app).outbound
    webhook = TwilioSender(app.test_client())
    assert webhook.post(sms_params("please stop texting me", to=TWILIO_NUMBER, account=ACCOUNT)).status_code == 200
    assert webhook.post(sms_params("START", to=TWILIO_NUMBER, account=ACCOUNT)).status_code == 200
    assert webhook.post(sms_params("STOP", to=TWILIO_NUMBER, account=ACCOUNT)).status_code == 200
    store.record_manual(SENDER, REGION_NUMBER, True, "phone call", "ana")
    outbound.queue("+14155550199", content="hello", agent_number=TWILIO_NUMBER)
    read = READERS[reader]
    assert read(store, None), "the records to be left out are there"
    assert read(store, [ACCOUNT]), "and found by their account"
    assert not read(store, []) and not read(store, ())
