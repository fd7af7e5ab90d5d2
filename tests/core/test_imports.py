import io

import pytest

from gateway.core import imports
from gateway.core.consent import Grant
from gateway.core.imports import ImportError_, ImportRow, parse

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
            HEADER + "+1,,2024-03-04\n",
            [
                "line 2: number '+1' is not an E.164 number such as +14155550100: it is not a phone number; "
                "twilio_number '' is not an E.164 number such as +14155550100: a phone number is required"
            ],
        ),
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


CONSENT_HEADER = "number,sender,category,method,wording,given_at,evidence\n"
NOW = "2026-12-01T10:00:00.000000Z"


def consents(text, categories=("marketing", "informational")):
    return imports.parse_consents(io.StringIO(text), categories, NOW, "CRM export")


def test_consent_rows_become_grants_blank_cells_meaning_absent():
    rows = consents(
        CONSENT_HEADER + '+14155550101,*,marketing,paper,"Yes, offers.",2026-10-01,"{""ip"": ""1.2.3.4""}"\n'
        "+14155550102,+15005550006,informational,import,Reminders.,,\n"
    )
    assert rows == [
        Grant(
            "+14155550101",
            "*",
            "marketing",
            "paper",
            "2026-10-01T00:00:00.000000Z",
            "Yes, offers.",
            "CRM export",
            {"ip": "1.2.3.4"},
        ),
        Grant("+14155550102", "+15005550006", "informational", "import", NOW, "Reminders.", "CRM export", {}),
    ]


@pytest.mark.parametrize(
    ("text", "errors"),
    [
        (
            "number,sender\n",
            ["line 1: missing column(s): category, method, wording (need number, sender, category, method, wording)"],
        ),
        (CONSENT_HEADER, ["the file has no rows"]),
        (
            CONSENT_HEADER + "+14155550101,*,promos,paper,Yes.,,\n+1415,*,marketing,paper,Yes.,,\n",
            [
                "line 2: category: 'promos' is not one of the configured categories: marketing, informational",
                "line 3: number: '+1415' is not an E.164 number such as +14155550100: too short for its country",
            ],
        ),
        (CONSENT_HEADER + "+14155550101,*,marketing,paper,,,\n", ["line 2: wording: required, a non-empty string"]),
        (CONSENT_HEADER + "+14155550101,*,marketing,paper\n", ["line 2: wording: required, a non-empty string"]),
        (
            CONSENT_HEADER + "+14155550101,*,marketing,paper,Yes, send offers,,\n",
            ["line 2: more cells than the header has columns: quote a value that holds a comma"],
        ),
        (
            "number,sender,category,method,wording,colour\n+14155550101,*,marketing,paper,Yes.,red\n",
            [
                "line 2: unknown field 'colour'; a consent has category, evidence, given_at, method, number, sender, "
                "wording"
            ],
        ),
    ],
)
def test_bad_consent_files_are_rejected_whole_naming_each_line(text, errors):
    with pytest.raises(ImportError_) as raised:
        consents(text)
    assert raised.value.errors == errors
