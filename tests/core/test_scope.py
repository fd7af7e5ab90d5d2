"""opt_out_scope: what one STOP covers, as plain functions and through the webhook and sending path."""

import pytest

from gateway import create_app
from gateway.core.scope import ANY, Cover, Scope
from gateway.messaging import services

from ..support.accounts import outbound_config
from ..support.constants import SENDER
from ..support.webhooks import TwilioSender

SERVICE = "MG" + "c" * 32
OTHER_SERVICE = "MG" + "d" * 32
A, B, LONE = "+15005550010", "+15005550011", "+15005550012"


@pytest.mark.parametrize(
    ("mode", "via", "hint", "expected"),
    [
        ("pair", A, None, Cover((A,))),
        ("pair", A, SERVICE, Cover((A,))),  # pair scope ignores the service
        ("pair", SERVICE, None, Cover((A, B), (SERVICE,))),  # sends through a service are service-wide
        ("pair", OTHER_SERVICE, None, Cover((ANY,), (OTHER_SERVICE,))),  # members unknown: any opt-out blocks
        ("messaging_service", A, None, Cover((A, B), (SERVICE,))),
        ("messaging_service", LONE, None, Cover((LONE,))),  # not in a service
        ("messaging_service", LONE, OTHER_SERVICE, Cover((LONE,), (OTHER_SERVICE,))),  # Twilio named the service
        ("messaging_service", SERVICE, None, Cover((A, B), (SERVICE,))),
        ("business", A, None, Cover((ANY,))),  # no brands: the whole deployment
        ("business", LONE, None, Cover((ANY,))),
        ("business", SERVICE, None, Cover((ANY,))),
        ("business", OTHER_SERVICE, None, Cover((ANY,))),
    ],
)
def test_cover(mode, via, hint, expected):
    assert Scope.build(mode, {SERVICE: [A, B]}).cover(via, hint) == expected


THIRD = "+15005550013"
BRANDS = {"acme": [A, SERVICE], "zenith": [LONE], "open": [OTHER_SERVICE]}


@pytest.mark.parametrize(
    ("via", "hint", "expected"),
    [
        (A, None, Cover((A, B), (SERVICE,))),  # a brand: its numbers, and its service's numbers
        (B, None, Cover((A, B), (SERVICE,))),  # in the brand through its service
        (SERVICE, None, Cover((A, B), (SERVICE,))),
        (LONE, None, Cover((LONE,))),
        (THIRD, None, Cover((ANY,))),  # in no brand: an opt-out made anywhere covers it
        (THIRD, SERVICE, Cover((A, B), (SERVICE,))),  # Twilio named its service, which is in a brand
        (OTHER_SERVICE, None, Cover((ANY,))),  # a brand's service whose numbers are unknown
    ],
)
def test_business_cover_with_brands(via, hint, expected):
    scope = Scope.build("business", {SERVICE: [A, B]}, brands=BRANDS)
    assert scope.cover(via, hint) == expected
    assert scope.brand_of(A) == "acme" and scope.brand_of(THIRD) is None


def test_a_brand_is_its_numbers_and_every_number_of_its_services():
    scope = Scope.build("business", {SERVICE: [A, B]}, brands={"acme": [LONE, SERVICE]})
    assert scope.cover(LONE) == Cover((A, B, LONE), (SERVICE,))
    # A service's brand is its own, whatever service a hint names.
    assert scope.brand_of(OTHER_SERVICE, SERVICE) is None and scope.brand_of(THIRD, SERVICE) == "acme"


@pytest.mark.parametrize(
    ("mode", "modes", "narrowest"),
    [
        ("pair", {}, "pair"),
        ("business", {}, "business"),
        ("business", {A: "messaging_service"}, "messaging_service"),
        ("messaging_service", {A: "business"}, "messaging_service"),
        ("business", {A: "business", B: "pair"}, "pair"),
    ],
)
def test_narrowest_rule_in_force(mode, modes, narrowest):
    assert Scope.build(mode, {}, modes).narrowest() == narrowest


def test_unknown_scope_is_refused_naming_the_choices():
    with pytest.raises(ValueError) as info:
        Scope("number")
    assert str(info.value) == "opt_out_scope must be one of pair, messaging_service, business, got 'number'"
    with pytest.raises(ValueError, match="opt_out_scope"):
        Scope("everything")


def make_app(db_url, fake, mode):
    settings = outbound_config(db_url, fake, senders=f"{A},{B},{LONE},{SERVICE}")
    return create_app({**settings, "OPT_OUT_SCOPE": mode, "MESSAGING_SERVICES": {SERVICE: [A, B]}})


def test_service_scope_stop_on_one_number_covers_the_service(db_url, fake):
    app = make_app(db_url, fake, "messaging_service")
    twilio, store = TwilioSender(app.test_client()), services.of(app).store
    assert b"unsubscribed" in twilio.sms("STOP", to=A, MessagingServiceSid=SERVICE).data
    # Inbound: a message to the sibling number is dropped, and a second STOP there gets no second confirmation.
    assert twilio.sms("hello", to=B).data.endswith(b"<Response />")
    assert [e["twilio_number"] for e in store.history(SENDER) if e["event"] == "dropped"] == [B]
    assert twilio.sms("STOP", to=B).data.endswith(b"<Response />")
    # A number outside the service still reaches the agent.
    twilio.sms("hello", to=LONE)
    assert [m["to_number"] for m in store.queued_messages()] == [LONE]
    # Outbound: the sibling, the service SID and the lone number.
    outbound = services.of(app).outbound
    assert outbound.queue(SENDER, content="x", agent_number=B)["status"] == "suppressed"
    assert outbound.queue(SENDER, content="x", agent_number=SERVICE)["status"] == "suppressed"
    assert outbound.queue(SENDER, content="x", agent_number=LONE)["status"] == "queued"
    # START on the sibling re-subscribes to the whole service.
    assert b"resubscribed" in twilio.sms("START", to=B).data
    assert not store.is_opted_out(SENDER, A) and not store.is_opted_out(SENDER, SERVICE)
    assert outbound.queue(SENDER, content="x", agent_number=A)["status"] == "queued"


def test_service_named_by_twilio_alone_is_honoured(db_url, fake):
    """A service missing from the configuration is learned from the MessagingServiceSid Twilio sends."""
    app = make_app(db_url, fake, "messaging_service")
    twilio, store = TwilioSender(app.test_client()), services.of(app).store
    twilio.sms("STOP", to=LONE, MessagingServiceSid=OTHER_SERVICE)
    assert store.is_opted_out(SENDER, OTHER_SERVICE)
    twilio.sms("hello", to="+15005550013", MessagingServiceSid=OTHER_SERVICE)
    assert store.queued_messages() == []


def test_pair_scope_keeps_sibling_numbers_reachable(db_url, fake):
    app = make_app(db_url, fake, "pair")
    twilio, store = TwilioSender(app.test_client()), services.of(app).store
    twilio.sms("STOP", to=A, MessagingServiceSid=SERVICE)
    twilio.sms("hello", to=B, MessagingServiceSid=SERVICE)
    assert [m["to_number"] for m in store.queued_messages()] == [B]
    outbound = services.of(app).outbound
    assert outbound.queue(SENDER, content="x", agent_number=B)["status"] == "queued"
    # The service may pick A at send time, so a send through it is suppressed.
    assert outbound.queue(SENDER, content="x", agent_number=SERVICE)["status"] == "suppressed"


def test_numbers_of_an_account_with_its_own_rule_follow_it():
    service = "MG" + "e" * 32
    scope = Scope.build("pair", {service: ["+15005550006", "+15005550007"]}, {"+15005550006": "messaging_service"})
    assert scope.cover("+15005550006") == Cover(("+15005550006", "+15005550007"), (service,))
    assert scope.cover("+15005550007") == Cover(("+15005550007",))  # the rule of the rest: pair
    wide = Scope.build("messaging_service", {service: ["+15005550006", "+15005550007"]}, {"+15005550007": "pair"})
    assert wide.cover("+15005550007") == Cover(("+15005550007",))
    assert wide.cover("+15005550006").services == (service,)
    with pytest.raises(ValueError, match="opt_out_scope must be one of pair, messaging_service, business, got 'all'"):
        Scope.build("pair", {}, {"+15005550006": "all"})
    # An account's own business rule: a send through its service covers the deployment (no brands).
    mixed = Scope.build("pair", {service: ["+15005550006"]}, {"+15005550006": "business", service: "business"})
    assert mixed.cover(service) == Cover((ANY,)) and mixed.cover("+15005550006") == Cover((ANY,))
    assert mixed.cover("+15005550008") == Cover(("+15005550008",))
    assert Scope.build("pair", {}).modes == {}


def test_business_scope_one_stop_covers_every_number_inbound_outbound_and_queue(db_url, fake):
    """Revoke-all: a STOP to one number stops inbound delivery, sends and queued messages on every number."""
    app = make_app(db_url, fake, "business")
    twilio, store = TwilioSender(app.test_client()), services.of(app).store
    twilio.sms("before", to=LONE)  # queued for the agent before the revocation
    assert [m["to_number"] for m in store.queued_messages()] == [LONE]
    assert b"unsubscribed" in twilio.sms("STOP", to=A).data
    # The agent queue: the message queued through another number is not handed over.
    assert store.claim_deliveries(10, lease_seconds=30) == []
    # Inbound on every other number is dropped; a STOP there is not confirmed again.
    for number in (B, LONE):
        assert twilio.sms("hello", to=number).data.endswith(b"<Response />")
    assert twilio.sms("STOP", to=LONE).data.endswith(b"<Response />")
    # The queued message was dropped (and recorded) when the worker came for it; then the two inbound.
    assert [e["twilio_number"] for e in store.history(SENDER) if e["event"] == "dropped"] == [LONE, B, LONE]
    # Outbound from every number and the service is suppressed.
    outbound = services.of(app).outbound
    for via in (A, B, LONE, SERVICE):
        assert outbound.queue(SENDER, content="x", agent_number=via)["status"] == "suppressed"
    # Another person is untouched.
    assert outbound.queue("+15005550099", content="x", agent_number=LONE)["status"] == "queued"
    # START anywhere re-subscribes to the whole business.
    assert b"resubscribed" in twilio.sms("START", to=LONE).data
    assert not any(store.is_opted_out(SENDER, via) for via in (A, B, LONE, SERVICE))


def test_business_scope_with_brands_covers_one_brand(db_url, fake):
    settings = outbound_config(db_url, fake, senders=f"{A},{B},{LONE},{SERVICE}")
    app = create_app(
        {
            **settings,
            "OPT_OUT_SCOPE": "business",
            "MESSAGING_SERVICES": {SERVICE: [A, B]},
            "BRANDS": {"acme": [A, SERVICE], "zenith": [LONE]},
        }
    )
    twilio, store = TwilioSender(app.test_client()), services.of(app).store
    twilio.sms("STOP", to=A)
    assert store.is_opted_out(SENDER, B) and store.is_opted_out(SENDER, SERVICE)
    assert not store.is_opted_out(SENDER, LONE)  # another brand's program
    twilio.sms("hello", to=LONE)
    assert [m["to_number"] for m in store.queued_messages()] == [LONE]
    assert services.of(app).outbound.queue(SENDER, content="x", agent_number=B)["status"] == "suppressed"
