import pytest

from gateway.web.twiml import build_reply, reply

EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response />'


@pytest.mark.parametrize(
    ("text", "twiml"),
    [
        (None, EMPTY),
        ("", EMPTY),
        ("a < b & c", '<?xml version="1.0" encoding="UTF-8"?><Response><Message>a &lt; b &amp; c</Message></Response>'),
    ],
)
def test_build_reply(text, twiml):
    assert build_reply(text) == twiml


def test_replies_are_cached():
    assert reply("cached") == build_reply("cached")
    assert reply("cached") is reply("cached")
