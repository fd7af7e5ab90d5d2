"""Export, import and manual opt-out records, through the CLI on a real database."""

import csv
import io
import json

import pytest

from gateway.cli import cli
from gateway.core import imports
from gateway.store import Store

from .support.constants import SENDER, TWILIO_NUMBER


@pytest.fixture
def env(cli_env):
    return cli_env


def history(runner, env, number):
    return json.loads(runner.invoke(cli, ["optouts", "history", number, "--format", "json"], env=env).output)


# -- manual records ---------------------------------------------------------------


def test_manual_add_and_remove(runner, env, db_url):
    add = runner.invoke(
        cli,
        [
            "optouts",
            "add",
            SENDER,
            "--twilio-number",
            TWILIO_NUMBER,
            "--reason",
            "phone call to support, ticket 4411",
            "--by",
            "Dana Reyes",
        ],
        env=env,
    )
    assert add.exit_code == 0, add.output
    assert f"{SENDER} is opted out of {TWILIO_NUMBER}. Event 1." in add.output
    store = Store(db_url)
    assert store.is_opted_out(SENDER, TWILIO_NUMBER)
    assert store.current_opt_outs()[0]["source"] == "manual"

    again = runner.invoke(
        cli,
        ["optouts", "add", SENDER, "--twilio-number", TWILIO_NUMBER, "--reason", "email", "--by", "Dana Reyes"],
        env=env,
    )
    assert "(it already was; the record is kept)" in again.output

    remove = runner.invoke(
        cli,
        [
            "optouts",
            "remove",
            SENDER,
            "--twilio-number",
            TWILIO_NUMBER,
            "--reason",
            "signed consent form",
            "--by",
            "Sam Lee",
        ],
        env=env,
    )
    assert remove.exit_code == 0 and "is opted in" in remove.output
    assert not store.is_opted_out(SENDER, TWILIO_NUMBER)

    events = history(runner, env, SENDER)
    assert [(e["event"], e["source"], e["state_changed"]) for e in events] == [
        ("opt_out", "manual", True),
        ("opt_out", "manual", False),
        ("opt_in", "manual", True),
    ]
    assert events[0]["detail"] == {"reason": "phone call to support, ticket 4411", "by": "Dana Reyes"}
    assert store.verify_ledger().ok


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["4155550100", "--twilio-number", TWILIO_NUMBER, "--reason", "r", "--by", "p"], "not an E.164 number"),
        ([SENDER, "--twilio-number", "x", "--reason", "r", "--by", "p"], "not an E.164 number"),
        ([SENDER, "--twilio-number", TWILIO_NUMBER, "--reason", " ", "--by", "p"], "must not be empty"),
        ([SENDER, "--twilio-number", TWILIO_NUMBER, "--by", "p"], "Missing option '--reason'"),
        # a byte that is not UTF-8 in the shell's argument arrives as a lone surrogate
        ([SENDER, "--twilio-number", TWILIO_NUMBER, "--reason", "call \udcff", "--by", "p"], "valid Unicode text"),
        ([SENDER, "--twilio-number", TWILIO_NUMBER, "--reason", "call", "--by", "a\x00b"], "NUL characters"),
    ],
)
def test_manual_bad_input(runner, env, db_url, args, message):
    result = runner.invoke(cli, ["optouts", "add", *args], env=env)
    assert result.exit_code == 2 and message in result.output
    store = Store(db_url)
    store.init_schema()
    assert store.events() == []


def test_manual_opt_out_blocks_inbound(runner, env, twilio, store):
    runner.invoke(
        cli, ["optouts", "add", SENDER, "--twilio-number", TWILIO_NUMBER, "--reason", "call", "--by", "x"], env=env
    )
    assert twilio.sms("hello").text.endswith("<Response />")
    assert store.events()[-1]["event"] == "dropped"


# -- import --------------------------------------------------------------------------

GOOD = """number,twilio_number,opted_out_at
+14155550101,+15005550006,2024-03-01
+14155550102,+15005550006,2024-03-02T10:00:00Z
+14155550101,+15005550007,2024-03-03T09:00:00-05:00
"""


def test_import(runner, env, db_url, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text(GOOD)
    result = runner.invoke(cli, ["optouts", "import", str(path), "--source", "old-crm"], env=env)
    assert result.exit_code == 0, result.output
    assert "Imported 3 rows" in result.output and "3 pairs opted out, 0 already opted out" in result.output
    store = Store(db_url)
    rows = {(r["number"], r["twilio_number"]): r for r in store.current_opt_outs()}
    assert rows[("+14155550101", "+15005550007")]["opted_out_at"] == "2024-03-03T14:00:00.000000Z"
    assert {r["source"] for r in rows.values()} == {"import"}
    events = store.events()
    assert [e["source"] for e in events] == ["import"] * 3
    assert events[0]["detail"] == {"import": "old-crm", "line": 2, "opted_out_at": "2024-03-01T00:00:00.000000Z"}
    # Importing again keeps the first records and says so.
    again = runner.invoke(cli, ["optouts", "import", str(path), "--source", "old-crm"], env=env)
    assert "0 pairs opted out, 3 already opted out" in again.output
    assert store.verify_ledger().ok


@pytest.mark.parametrize(
    ("text", "errors"),
    [
        ("number,twilio_number\n+14155550101,+15005550006\n", ["line 1: missing column(s): opted_out_at"]),
        (
            GOOD + "4155550103,+15005550006,2024-03-04\n",
            [
                "line 5: number '4155550103' is not an E.164 number such as +14155550100: "
                "it must start with + and the country code"
            ],
        ),
        (
            GOOD + "+14155550103,+15005550006,yesterday\n+14155550104,,2024-01-01\n",
            [
                "line 5: opted_out_at: not a date or ISO 8601 date-time: 'yesterday'",
                "line 6: twilio_number '' is not an E.164 number such as +14155550100: a phone number is required",
            ],
        ),
        ("number,twilio_number,opted_out_at\n", ["the file has no rows"]),
    ],
)
def test_malformed_import_is_rejected_whole(runner, env, db_url, tmp_path, text, errors):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    result = runner.invoke(cli, ["optouts", "import", str(path), "--source", "x"], env=env)
    assert result.exit_code == 1
    for error in errors:
        assert error in result.stderr
    assert "nothing imported" in result.stderr
    store = Store(db_url)
    store.init_schema()
    assert store.current_opt_outs() == [] and store.events() == []


def test_import_error_list_is_bounded():
    text = "number,twilio_number,opted_out_at\n" + "x,y,z\n" * 100
    with pytest.raises(imports.ImportError_) as info:
        imports.parse(io.StringIO(text))
    assert len(info.value.errors) == imports.MAX_ERRORS + 1


# -- export ---------------------------------------------------------------------------


def test_export_csv_and_json(runner, env, twilio, store, tmp_path):
    twilio.sms("STOP")
    twilio.sms("hello?")
    twilio.sms("START")
    runner.invoke(
        cli, ["optouts", "add", SENDER, "--twilio-number", TWILIO_NUMBER, "--reason", "call", "--by", "x"], env=env
    )
    out = tmp_path / "events.csv"
    result = runner.invoke(cli, ["optouts", "export", "--output", str(out)], env=env)
    assert result.exit_code == 0 and "Exported 5 events" in result.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["event"] for r in rows] == ["opt_out", "dropped", "opt_in", "consent_granted", "opt_out"]
    assert rows[1]["prev_hash"] == rows[0]["hash"] and all(len(r["hash"]) == 64 for r in rows)
    assert json.loads(rows[4]["detail"]) == {"reason": "call", "by": "x"}
    # The manual revocation ended the START's consent, and names itself as the end.
    (grant,) = store.consents(SENDER)
    assert grant["event_id"] == 4 and grant["ended_by_event_id"] == 5
    assert not (tmp_path / "events.csv.partial").exists()

    as_json = json.loads(runner.invoke(cli, ["optouts", "export", "--format", "json"], env=env).stdout)
    assert [e["id"] for e in as_json] == [1, 2, 3, 4, 5]
    assert as_json[0]["state_changed"] is True and as_json[4]["detail"]["by"] == "x"
    assert as_json[3]["detail"]["wording"] == "START" and as_json[3]["source"] == "keyword"
    assert [e["hash"] for e in as_json] == [r["hash"] for r in rows]


def test_export_of_empty_log(runner, env):
    assert json.loads(runner.invoke(cli, ["optouts", "export", "--format", "json"], env=env).stdout) == []
    assert runner.invoke(cli, ["optouts", "export"], env=env).stdout.startswith("id,event,number")


def test_iter_events_streams_in_batches(store, twilio):
    for i in range(25):
        twilio.sms("STOP", sender=f"+1415555{i:04d}")
    ids = [e["id"] for e in store.iter_events(batch=7)]
    assert ids == list(range(1, 26))


def test_export_shows_progress_only_on_a_terminal(twilio, store, db_url, tmp_path):
    """Run the real command with stderr on a pseudo-terminal, then on a pipe."""
    import os
    import pty
    import subprocess
    import sys

    from .support.constants import ROOT

    for i in range(3):
        twilio.sms("STOP", sender=f"+1415555{i:04d}")
    env = {**os.environ, "DATABASE_URL": db_url}
    command = [sys.executable, "-m", "gateway.cli", "optouts", "export", "--output", str(tmp_path / "e.csv")]
    leader, follower = pty.openpty()
    proc = subprocess.run(command, cwd=ROOT, env=env, stderr=follower, stdout=subprocess.DEVNULL, timeout=60)
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert proc.returncode == 0
    assert b"Exporting" in shown and b"100%" in shown
    piped = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert "Exporting" not in piped.stderr and "Exported 3 events" in piped.stderr


def test_history_csv(runner, env, twilio):
    twilio.sms("STOP")
    twilio.sms("START")
    rows = list(
        csv.DictReader(
            io.StringIO(runner.invoke(cli, ["optouts", "history", SENDER, "--format", "csv"], env=env).stdout)
        )
    )
    assert [(r["change"], r["event"]) for r in rows] == [
        ("revoked", "opt_out"),
        ("opted in", "opt_in"),
        ("granted", "consent_granted"),
    ]
    assert len(rows[0]["hash"]) == 64


def test_import_of_a_file_that_is_not_utf8_is_refused_whole(runner, env, db_url, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        b"number,twilio_number,opted_out_at\n+14155550101,+15005550006,2024-01-01\n+14155550102,+15005550006,\xe9t\xe9\n"
    )
    result = runner.invoke(cli, ["optouts", "import", str(path), "--source", "old crm"], env=env)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"nothing imported: {path} is not UTF-8 text (byte 0xe9 at offset" in result.output
    assert Store(db_url).events() == []
