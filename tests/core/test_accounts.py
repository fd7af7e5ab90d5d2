"""Which account checks a request and which sends a message: plain functions, no Flask."""

from __future__ import annotations

import pytest

from gateway.core.accounts import DEFAULT, Account, Accounts

MAIN = "AC" + "1" * 32
BRAND = "AC" + "2" * 32
REGION = "AC" + "3" * 32
SERVICE = "MG" + "4" * 32


def routed() -> Accounts:
    """Built inside each test, so the code under test runs there (not once at import)."""
    return Accounts(
        (
            Account("main", MAIN, ("main-token",), ("+15005550006",)),
            Account("brand", BRAND, ("brand-token", "brand-next"), ("+15005550007", SERVICE), ("+15005550008",)),
            Account("region", REGION, ("region-token",)),
        ),
        routed=True,
    )


@pytest.mark.parametrize("sid", [MAIN, BRAND, None, "", "AC" + "9" * 32, "anything"])
def test_one_account_checks_every_request_whatever_it_names(sid):
    accounts = Accounts.single(None, ["token"], ["+15005550006"])
    assert accounts.for_request(sid) == Account(DEFAULT, None, ("token",), ("+15005550006",))


@pytest.mark.parametrize(
    ("sid", "name"),
    [(MAIN, "main"), (BRAND, "brand"), (REGION, "region"), ("AC" + "9" * 32, None), (None, None), ("", None)],
)
def test_several_accounts_check_a_request_only_with_the_account_it_names(sid, name):
    found = routed().for_request(sid)
    assert (found.name if found else None) == name


@pytest.mark.parametrize(
    ("sender", "name"),
    [
        ("+15005550006", "main"),
        ("+15005550007", "brand"),
        (SERVICE, "brand"),
        ("+15005550008", "brand"),  # a number of the brand's Messaging Service
        ("+15005550009", None),
    ],
)
def test_a_sender_belongs_to_the_account_that_lists_it(sender, name):
    found = routed().owner_of(sender)
    assert (found.name if found else None) == name


def test_with_one_account_every_sender_is_its_own():
    accounts = Accounts.single("AC" + "a" * 32, ["t"], ["+15005550006"])
    assert accounts.owner_of("+15005550099") is accounts.accounts[0]
    assert accounts.accounts[0].sid == "AC" + "a" * 32


def test_accounts_without_a_sid_are_not_confused_with_each_other_but_their_senders_still_are():
    assert len(Accounts((Account("a", None, ("t",)), Account("b", None, ("u",)))).accounts) == 2
    with pytest.raises(ValueError, match="belongs to both account 'a' and account 'b'"):
        Accounts((Account("a", None, ("t",), ("+15005550006",)), Account("b", None, ("u",), ("+15005550006",))))


def test_senders_are_every_accounts_in_order_the_first_the_default():
    assert routed().senders == ("+15005550006", "+15005550007", SERVICE)


def test_by_sid_finds_only_a_configured_sid():
    assert routed().by_sid(REGION).name == "region"
    assert routed().by_sid(None) is None
    assert Accounts.single(None, ["t"], []).by_sid(None) is None


@pytest.mark.parametrize(
    ("second", "message"),
    [
        (Account("main", "AC" + "5" * 32, ("t",)), "name main belongs to both account 'main' and account 'main'"),
        (Account("other", MAIN, ("t",)), f"SID {MAIN} belongs to both account 'main' and account 'other'"),
        (
            Account("other", "AC" + "5" * 32, ("t",), ("+15005550006",)),
            "+15005550006 belongs to both account 'main' and account 'other'",
        ),
        (
            Account("other", "AC" + "5" * 32, ("t",), (), ("+15005550006",)),
            "+15005550006 belongs to both account 'main' and account 'other'",
        ),
    ],
)
def test_nothing_belongs_to_two_accounts(second, message):
    with pytest.raises(ValueError) as raised:
        Accounts((Account("main", MAIN, ("t",), ("+15005550006",)), second), routed=True)
    assert str(raised.value) == message


def test_several_accounts_each_need_a_sid():
    with pytest.raises(ValueError) as raised:
        Accounts((Account("main", MAIN, ("t",)), Account("other", None, ("u",))), routed=True)
    assert str(raised.value) == "with several accounts, every account needs its Account SID"
    assert Accounts((Account("solo", None, ("t",)),)).for_request(MAIN).name == "solo"


def test_an_account_is_labelled_by_its_name():
    assert routed().accounts[1].label == "brand"


@pytest.mark.parametrize(
    ("sid", "label"),
    [(BRAND, "brand"), (MAIN, "main"), ("AC" + "0" * 26 + "abc123", "abc123"), (None, "none"), ("", "none")],
)
def test_metrics_label_an_account_by_its_name_else_its_sids_end(sid, label):
    assert routed().label_of(sid) == label


@pytest.mark.parametrize(
    ("given", "name"),
    [("brand", "brand"), (BRAND, "brand"), ("region", "region"), ("nosuch", None), ("AC" + "9" * 32, None)],
)
def test_an_account_is_named_by_its_name_or_its_sid(given, name):
    found = routed().named(given)
    assert (found.name if found else None) == name


def test_an_account_without_a_sid_cannot_be_named():
    assert Accounts.single(None, ["t"], []).named("default") is None
    assert Accounts.single(MAIN, ["t"], []).named("default").sid == MAIN
