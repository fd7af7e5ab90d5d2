import pytest

from gateway.core.segments import analyse


@pytest.mark.parametrize(
    ("text", "encoding", "segments", "units"),
    [
        ("", "GSM-7", 1, 0),
        ("a" * 160, "GSM-7", 1, 160),
        ("a" * 161, "GSM-7", 2, 161),
        ("a" * 306, "GSM-7", 2, 306),
        ("a" * 307, "GSM-7", 3, 307),
        ("€" * 80, "GSM-7", 1, 160),  # extension characters take two septets
        ("€" * 81, "GSM-7", 2, 162),
        ("a" * 152 + "€", "GSM-7", 1, 154),  # 154 septets still fit one 160 segment
        ("a" * 159 + "{", "GSM-7", 2, 161),
        # a pair is never split: 152 + 2 does not fit a 153 segment, so the € starts segment 2
        ("a" * 152 + "€" + "a" * 152, "GSM-7", 3, 306),
        ("Ça coûte 5€ [promo]", "UCS-2", 1, 19),  # û is not GSM
        ("Hé ça va? À bientôt!", "UCS-2", 1, 20),
        ("é" * 160, "GSM-7", 1, 160),  # é is in the GSM alphabet
        ("я" * 70, "UCS-2", 1, 70),
        ("я" * 71, "UCS-2", 2, 71),
        ("я" * 134, "UCS-2", 2, 134),
        ("я" * 135, "UCS-2", 3, 135),
        ("😀" * 35, "UCS-2", 1, 70),  # each emoji is a surrogate pair
        ("😀" * 36, "UCS-2", 2, 72),
        ("a" * 66 + "😀" + "a" * 66, "UCS-2", 3, 134),  # the pair does not fit after 66 units
        # The limits of the Basic Multilingual Plane: U+FFFF is one UTF-16 unit, U+10000 the first pair.
        ("\uffff" * 70, "UCS-2", 1, 70),
        ("\U00010000" * 35, "UCS-2", 1, 70),
        ("\U00010000" * 36, "UCS-2", 2, 72),
        ("\U00010001" + "я", "UCS-2", 1, 3),
    ],
)
def test_analyse(text, encoding, segments, units):
    result = analyse(text)
    assert (result.encoding, result.segments, result.units) == (encoding, segments, units)
