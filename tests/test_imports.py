import io

import pytest

from gateway import imports
from gateway.imports import ImportError_, ImportRow, parse

HEADER = "number,twilio_number,opted_out_at\n"


def rejected(text: str) -> list[str]:
    with pytest.raises(ImportError_) as info:
        parse(io.StringIO(text))
    assert str(info.value) == "; ".join(info.value.errors)
    return info.value.errors


def test_good_rows_are_normalised_and_keep_their_line():
    text = HEADER + " +14155550101 , +15005550006,2024-03-04\n+14155550102,+15005550007,2024-03-05T10:00:00+02:00\n"
    assert parse(io.StringIO(text)) == [
        ImportRow(2, "+14155550101", "+15005550006", "2024-03-04T00:00:00.000000Z"),
        ImportRow(3, "+14155550102", "+15005550007", "2024-03-05T08:00:00.000000Z"),
    ]


def test_extra_columns_are_ignored():
    rows = parse(io.StringIO("note,number,twilio_number,opted_out_at\nhi,+14155550101,+15005550006,2024-03-04\n"))
    assert [row.number for row in rows] == ["+14155550101"]


@pytest.mark.parametrize(
    ("text", "errors"),
    [
        (
            "",
            [
                "line 1: missing column(s): number, twilio_number, opted_out_at "
                "(need number, twilio_number, opted_out_at)"
            ],
        ),
        (
            "number,opted_out_at\n",
            ["line 1: missing column(s): twilio_number (need number, twilio_number, opted_out_at)"],
        ),
        (HEADER, ["the file has no rows"]),
        (
            HEADER + "+14155550101,+15005550006,2024-03-04\n4155550103,+15005550006,2024-03-04\n",
            [
                "line 3: number '4155550103' is not an E.164 number such as +14155550100: "
                "it must start with + and the country code"
            ],
        ),
        (
            HEADER + "+1,,yesterday\n",
            [
                "line 2: number '+1' is not an E.164 number such as +14155550100: it is not a phone number; "
                "twilio_number '' is not an E.164 number such as +14155550100: a phone number is required; "
                "opted_out_at: not a date or ISO 8601 date-time: 'yesterday'"
            ],
        ),
        (HEADER + "+14155550101,+15005550006\n", ["line 2: opted_out_at: not a date or ISO 8601 date-time: ''"]),
        (
            HEADER + ",+15005550006,2024-03-04\n",
            ["line 2: number '' is not an E.164 number such as +14155550100: a phone number is required"],
        ),
    ],
)
def test_bad_files_are_rejected_whole_naming_each_line(text, errors):
    assert rejected(text) == errors


def test_the_error_list_stops_after_twenty_bad_lines():
    errors = rejected(HEADER + "x,y,z\n" * 100)
    assert len(errors) == imports.MAX_ERRORS + 1
    assert errors[0].startswith("line 2: ") and errors[19].startswith("line 21: ")
    assert errors[-1] == "(stopped after 20 bad lines)"


def test_nineteen_bad_lines_are_all_listed():
    errors = rejected(HEADER + "x,y,z\n" * 19)
    assert len(errors) == 19 and "stopped" not in errors[-1]
