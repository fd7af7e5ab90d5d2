import pytest

from gateway.masking import mask_number
from gateway.twiml import reply


def test_empty_reply():
    assert reply(None) == '<?xml version="1.0" encoding="UTF-8"?><Response />'


def test_reply_is_escaped():
    assert reply("a < b & c") == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Message>a &lt; b &amp; c</Message></Response>'
    )


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+14155550100", "+1********00"),
        ("+447700900123", "+4*********23"),
        ("whatsapp:+14155550100", "whatsapp:+1********00"),
        ("12345", "1**45"),
        ("1234", "****"),
        ("", "-"),
        (None, "-"),
    ],
)
def test_mask_number(number, masked):
    assert mask_number(number) == masked
