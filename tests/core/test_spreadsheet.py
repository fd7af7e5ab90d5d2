"""CSV for people: no cell a spreadsheet would run as a formula, in every CSV the gateway writes for people;
and the ledger export, which the chain is checked against, byte for byte as recorded."""

import csv
import io

import pytest

from gateway.cli import cli
from gateway.core import keys, spreadsheet

from ..support.constants import SENDER, TWILIO_NUMBER

HOSTILE = [
    '=HYPERLINK("https://evil.example","click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "  =1+1",  # a formula behind spaces
]
BASE = "https://localhost"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('=HYPERLINK("x")', '\'=HYPERLINK("x")'),
        ("+1+1", "'+1+1"),
        ("-1+1", "'-1+1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        (" =1", "' =1"),
        ("\n=1", "'\n=1"),
        ("+14155550100", "+14155550100"),  # an E.164 number: a plain number, nothing to run
        ("-5", "-5"),
        ("+1.5", "+1.5"),
        ("+1e5", "'+1e5"),  # not a plain number as written: neutralised
        ("hello = world", "hello = world"),  # only the first character counts
        ("", ""),
        ("'=1", "'=1"),  # already text: left alone
        (None, None),
        (3, 3),
        ({"by": "=x"}, '{"by": "=x"}'),  # nested: JSON text, whose first character is safe
        (["=x"], '["=x"]'),
    ],
)
def test_cell(value, expected):
    assert spreadsheet.cell(value) == expected


def test_lines_come_a_batch_at_a_time_with_a_header():
    rows = [{"a": n, "b": f"={n}"} for n in range(5)]
    chunks = list(spreadsheet.lines(rows, ["a", "b"], batch=2))
    assert len(chunks) == 3
    assert list(csv.reader(io.StringIO("".join(chunks)))) == [["a", "b"], *[[str(n), f"'={n}"] for n in range(5)]]


def assert_safe(text: str, expect: list[str]) -> None:
    """Read ``text`` with a real CSV reader: no cell may start a formula (but a plain number), and each of
    ``expect`` is there, neutralised with one leading quote."""
    cells = [value for row in csv.reader(io.StringIO(text)) for value in row]
    for value in cells:
        live = value.lstrip(" \n").startswith(spreadsheet.FORMULA_STARTS)
        assert not live or spreadsheet.cell(value) == value, f"a live formula in a cell: {value!r}"
    for value in expect:
        assert "'" + value in cells, f"{value!r} missing, or not neutralised"


CANDIDATE = '=HYPERLINK("https://evil.example","remove me from your list")'
WORDING = '=HYPERLINK("https://evil.example")'


@pytest.fixture
def hostile(twilio, store):
    """A texter who writes formulas before a STOP (queued for the agent) and after it (dropped, on record); a
    revocation candidate; a manual opt-out with a hostile reason and name."""
    for body in HOSTILE:
        twilio.sms(body, sender=SENDER)
    twilio.sms("STOP", sender=SENDER)
    for body in HOSTILE:
        twilio.sms(body, sender=SENDER)
    twilio.sms(CANDIDATE, sender="+14155550123")
    store.record_manual("+14155550124", TWILIO_NUMBER, True, "=1+1 said so on the phone", "@Dana")
    return store


def test_api_csv_is_safe(client, hostile):
    key = keys.new_key()
    hostile.add_api_key(keys.hash_key(key), "auditor")
    headers = {"Authorization": f"Bearer {key}"}
    for path, expect in [
        (f"/v1/opt-outs/{SENDER}/history?format=csv", HOSTILE),
        ("/v1/opt-outs/+14155550124/history?format=csv", []),
        ("/v1/opt-outs?format=csv", []),
    ]:
        response = client.get(path, headers=headers)
        assert response.status_code == 200 and response.content_type.startswith("text/csv"), path
        assert_safe(response.text, expect)
    manual = client.get("/v1/opt-outs/+14155550124/history?format=csv", headers=headers).text
    assert '{""reason"": ""=1+1 said so on the phone"", ""by"": ""@Dana""}' in manual  # JSON, not a Python dict


def test_console_csv_is_safe(client, hostile):
    client.application.config["SERVER_NAME"] = None
    key = keys.new_key()
    hostile.add_api_key(keys.hash_key(key), "auditor")
    page = client.get("/console/sign-in", base_url=BASE)
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    client.post("/console/sign-in", data={"key": key, "csrf_token": token}, base_url=BASE)
    response = client.get("/console/opt-outs.csv", base_url=BASE)
    assert response.status_code == 200 and response.content_type.startswith("text/csv")
    assert_safe(response.text, [])
    assert {row["number"] for row in csv.DictReader(io.StringIO(response.text))} == {SENDER, "+14155550124"}


def test_cli_csv_is_safe(runner, cli_env, hostile, tmp_path):
    consents = tmp_path / "consents.csv"
    consents.write_text(
        "number,sender,category,method,wording,given_at,evidence\n"
        f'{SENDER},{TWILIO_NUMBER},marketing,web_form,"{WORDING.replace(chr(34), chr(34) * 2)}",2026-10-01,\n'
    )
    imported = runner.invoke(cli, ["consent", "import", str(consents), "--by", "-CRM"], env=cli_env)
    assert imported.exit_code == 0, imported.output
    for args, expect in [
        (["optouts", "history", SENDER, "--format", "csv"], HOSTILE),
        (["optouts", "list", "--format", "csv"], []),
        (["optouts", "candidates", "--format", "csv"], [CANDIDATE]),
        (["consent", "show", SENDER, "--format", "csv"], [WORDING, "-CRM"]),
        (["outbox", "list", "--status", "all", "--format", "csv"], HOSTILE),
    ]:
        result = runner.invoke(cli, args, env=cli_env)
        assert result.exit_code == 0, (args, result.output)
        assert_safe(result.output, expect)


def test_the_ledger_export_is_exact(runner, cli_env, hostile):
    """The export the chain is checked against keeps every value as it was hashed (neutralising a cell would
    change the bytes the hash covers): each cell is the stored value, formulas and all."""
    result = runner.invoke(cli, ["optouts", "export", "--format", "csv"], env=cli_env)
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.output)))
    stored = list(hostile.iter_events())
    assert len(rows) == len(stored)
    for row, event in zip(rows, stored, strict=True):
        assert row == {name: "" if event[name] is None else str(event[name]) for name in row}
    assert set(HOSTILE) <= {row["body"] for row in rows}
    assert hostile.verify_ledger().ok
