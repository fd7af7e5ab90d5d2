import pytest

from gateway.core.masking import mask_number


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+14155550100", "+1********00"),
        ("+447700900123", "+4*********23"),
        ("whatsapp:+14155550100", "whatsapp:+1********00"),
        ("messenger:+14155550100", "messenger:+1********00"),
        ("whatsapp:", "whatsapp:-"),
        ("12345", "1**45"),
        ("4155550100", "4*******00"),
        ("whatsapp:abc:+14155550100", "whatsapp:a*************00"),
        ("+1234", "+**34"),
        ("+12345", "+1**45"),
        ("1234", "****"),
        ("+12", "***"),
        ("", "-"),
        (None, "-"),
    ],
)
def test_mask_number(number, masked):
    assert mask_number(number) == masked


@pytest.mark.parametrize("number", ["+14155550100", "+447700900123", "4155550100"])
def test_a_masked_number_keeps_its_length_and_hides_all_but_four_characters(number):
    masked = mask_number(number)
    assert len(masked) == len(number)
    assert sum(a == b for a, b in zip(masked, number, strict=True)) <= 4
