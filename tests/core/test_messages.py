import pytest

from gateway.core.messages import InboundMessage, has_nul, storable, unstorable


@pytest.mark.parametrize(
    ("text", "stored"),
    [("plain", "plain"), ("a\x00b", "a\ufffdb"), ("\x00\x00", "\ufffd\ufffd"), ("", "")],
)
def test_storable_replaces_nul_only(text, stored):
    assert storable(text) == stored


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("fine ✓ 😀", None),
        ("", None),
        ("a\x00b", "must not contain NUL characters"),
        ("lone \ud800 surrogate", "must be valid Unicode text"),
        ("\x00\ud800", "must not contain NUL characters"),
    ],
)
def test_unstorable_says_why(text, reason):
    assert unstorable(text) == reason


def test_has_nul_checks_every_text_and_skips_none():
    assert has_nul(None, "ok", "a\x00") is True
    assert has_nul("ok", "\udfff") is True
    assert has_nul(None, "ok") is False
    assert has_nul() is False


def test_received_makes_every_field_storable():
    message = InboundMessage.received("SM\x001", "+1\x00", "+2\x00", "hi\x00", [("Body", "hi\x00"), ("K\x00", "v")])
    assert message == InboundMessage(
        "SM\ufffd1", "+1\ufffd", "+2\ufffd", "hi\ufffd", [("Body", "hi\ufffd"), ("K\ufffd", "v")]
    )


def test_param_is_the_first_non_empty_value():
    message = InboundMessage(
        "SM1", "+1", "+2", "", [("OptOutType", ""), ("OptOutType", "STOP"), ("OptOutType", "HELP")]
    )
    assert message.param("OptOutType") == "STOP"
    assert message.param("Missing") is None
    assert InboundMessage("SM1", "+1", "+2", "", [("A", "")]).param("A") is None
