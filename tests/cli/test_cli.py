"""The ``gateway`` command, through click's runner and against real servers."""

import csv
import io
import json
import subprocess
import sys

import pytest

from gateway import settings
from gateway.cli import cli
from gateway.store.migrations.postgres import VERSION as POSTGRES_VERSION
from gateway.store.migrations.sqlite import VERSION as SQLITE_VERSION

from ..support.commands import SIMULATED_FROM, STOP_TWIML, simulate_args, wait_healthy
from ..support.constants import ROOT, TOKEN, TWILIO_NUMBER
from ..support.database import RawDatabase
from ..support.servers import child_environ, free_port, wait_for

SENDER = SIMULATED_FROM


@pytest.fixture
def env(cli_env):
    return cli_env


def test_optouts_help_says_what_the_group_does(runner):
    result = runner.invoke(cli, ["--help"])
    line = next(line for line in result.output.splitlines() if line.strip().startswith("optouts"))
    assert "Query" not in line and "list, history and export" in line
    listed = runner.invoke(cli, ["optouts", "--help"]).output
    for command in ("list", "history", "export", "add", "remove", "import", "candidates", "confirm", "dismiss"):
        assert f"  {command} " in listed


def test_help_lists_every_command(runner):
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "init-db", "simulate", "optouts"):
        assert command in result.output
    for args in (["serve"], ["init-db"], ["simulate"], ["optouts"], ["optouts", "list"], ["optouts", "history"]):
        sub = runner.invoke(cli, [*args, "--help"])
        assert sub.exit_code == 0 and len(sub.output.splitlines()) > 3


def test_init_db(runner, db_url, db_kind, tmp_path):
    result = runner.invoke(cli, ["init-db"], env={"DATABASE_URL": db_url})
    assert result.exit_code == 0, result.output
    if db_kind == "sqlite":
        assert (
            f"Database ready: the SQLite database {tmp_path / 'gateway.db'}, schema version {SQLITE_VERSION}"
            in result.output
        )
        assert (tmp_path / "gateway.db").exists()
    else:
        assert "Database ready: the PostgreSQL database gateway_test_" in result.output
        assert result.output.strip().endswith(f"schema version {POSTGRES_VERSION}")


def test_bad_database_url_is_a_clear_error(runner):
    result = runner.invoke(cli, ["optouts", "list"], env={"DATABASE_URL": "mysql://x"})
    assert result.exit_code == 1
    assert "Error: DATABASE_URL: unsupported database URL 'mysql'" in result.output


def test_optouts_list_formats(runner, env, twilio):
    twilio.sms("STOP", sender=SENDER)
    twilio.sms("stop", sender="+14155550999", to="+15005550007")

    table = runner.invoke(cli, ["optouts", "list"], env=env)
    assert table.exit_code == 0
    assert SENDER in table.output and "opted_out_at" in table.output

    data = json.loads(runner.invoke(cli, ["optouts", "list", "--format", "json"], env=env).output)
    assert [row["number"] for row in data] == [SENDER, "+14155550999"]
    assert set(data[0]) >= {"number", "twilio_number", "opted_out_at", "source"}
    assert data[0]["twilio_number"] == TWILIO_NUMBER and data[0]["source"] == "keyword"
    assert data[0]["opted_out_at"].endswith("Z") and "T" in data[0]["opted_out_at"]

    rows = list(csv.DictReader(io.StringIO(runner.invoke(cli, ["optouts", "list", "--format", "csv"], env=env).output)))
    assert [row["number"] for row in rows] == [SENDER, "+14155550999"]

    filtered = json.loads(
        runner.invoke(cli, ["optouts", "list", "--twilio-number", "+15005550007", "--format", "json"], env=env).output
    )
    assert [row["number"] for row in filtered] == ["+14155550999"]


def test_optouts_list_empty(runner, env):
    result = runner.invoke(cli, ["optouts", "list", "--format", "json"], env=env)
    assert result.exit_code == 0 and json.loads(result.output) == []


def test_optouts_history(runner, env, twilio):
    twilio.sms("STOP", sender=SENDER)
    twilio.sms("hello?", sender=SENDER)
    twilio.sms("START", sender=SENDER)
    twilio.sms("quit", sender=SENDER, to="+15005550007")
    twilio.sms("STOP", sender="+19999999999")

    data = json.loads(runner.invoke(cli, ["optouts", "history", SENDER, "--format", "json"], env=env).output)
    assert [(e["change"], e["event"], e["twilio_number"]) for e in data] == [
        ("revoked", "opt_out", TWILIO_NUMBER),
        ("dropped", "dropped", TWILIO_NUMBER),
        ("opted in", "opt_in", TWILIO_NUMBER),
        ("granted", "consent_granted", TWILIO_NUMBER),
        ("revoked", "opt_out", "+15005550007"),
    ]
    assert all(e["number"] == SENDER and e["at"].endswith("Z") for e in data)
    assert [e["at"] for e in data] == sorted(e["at"] for e in data)

    table = runner.invoke(cli, ["optouts", "history", SENDER], env=env)
    assert table.exit_code == 0 and "dropped" in table.output and "hello?" in table.output


def test_bad_format_is_rejected(runner, env):
    result = runner.invoke(cli, ["optouts", "list", "--format", "xml"], env=env)
    assert result.exit_code == 2 and "Invalid value for '--format'" in result.output


# -- simulate, against a real gunicorn --------------------------------------------------


def test_simulate_round_trip(runner, gunicorn):
    url = gunicorn.base + "/twilio/sms"
    result = runner.invoke(
        cli,
        ["simulate", "STOP", "--from", SENDER, "--to", TWILIO_NUMBER, "--url", url],
        env={"TWILIO_AUTH_TOKEN": TOKEN},
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == STOP_TWIML
    listed = runner.invoke(cli, ["optouts", "list", "--format", "json"], env={"DATABASE_URL": gunicorn.db_url})
    assert json.loads(listed.output)[0]["number"] == SENDER


def test_simulate_duplicate_and_extra_params(runner, gunicorn):
    url = gunicorn.base + "/twilio/sms"
    args = ["simulate", "STOP", "--from", SENDER, "--to", TWILIO_NUMBER, "--url", url, "--sid", "SM" + "a" * 32]
    first = runner.invoke(cli, args, env={"TWILIO_AUTH_TOKEN": TOKEN})
    again = runner.invoke(cli, args, env={"TWILIO_AUTH_TOKEN": TOKEN})
    assert first.output == again.output and first.output.strip() == STOP_TWIML
    upstream = runner.invoke(
        cli,
        ["simulate", "START", "--from", SENDER, "--to", TWILIO_NUMBER, "--url", url, "--param", "OptOutType=START"],
        env={"TWILIO_AUTH_TOKEN": TOKEN},
    )
    assert upstream.output.strip() == '<?xml version="1.0" encoding="UTF-8"?><Response />'


def test_simulate_wrong_token_reports_403(runner, gunicorn):
    result = runner.invoke(
        cli,
        [
            "simulate",
            "hi",
            "--from",
            SENDER,
            "--to",
            TWILIO_NUMBER,
            "--url",
            gunicorn.base + "/twilio/sms",
            "--token",
            "f" * 32,
        ],
    )
    assert result.exit_code == 1
    assert "Error: HTTP 403: 403 Forbidden: invalid X-Twilio-Signature" in result.output


def test_simulate_with_the_development_token_against_a_server_with_its_own_says_so(runner, gunicorn, tmp_path):
    """The server runs with TWILIO_AUTH_TOKEN; this shell has none, so simulate signs with the development
    token a `gateway serve` once made here: the error says that, not that a proxy is misconfigured."""
    settings.dev_token(tmp_path / "instance", create=True)
    args = ["simulate", "hi", "--from", SENDER, "--to", TWILIO_NUMBER, "--url", gunicorn.base + "/twilio/sms"]
    result = runner.invoke(cli, args, env={"GATEWAY_INSTANCE_PATH": str(tmp_path / "instance")})
    assert result.exit_code == 1
    assert "HTTP 403: 403 Forbidden: invalid X-Twilio-Signature; it was signed with this machine's local " in (
        result.output
    )
    assert "set the same in this shell" in result.output
    wait_for(lambda: "local development token" in gunicorn.log.read_text(), 10, "the server's log line")
    assert "GATEWAY_TRUST_PROXY" not in gunicorn.log.read_text()


def test_simulate_unreachable(runner):
    url = f"http://127.0.0.1:{free_port()}/twilio/sms"
    result = runner.invoke(
        cli, ["simulate", "hi", "--from", SENDER, "--to", TWILIO_NUMBER, "--url", url, "--token", TOKEN]
    )
    assert result.exit_code == 1 and f"Error: cannot reach {url}" in result.output


def test_simulate_without_any_token(runner):
    result = runner.invoke(cli, ["simulate", "hi", "--from", SENDER, "--to", TWILIO_NUMBER])
    assert result.exit_code == 1 and "no token to sign with" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "ftp://x/y"], "must be an http:// or https:// URL"),
        (["--param", "novalue"], "expected KEY=VALUE"),
    ],
)
def test_simulate_bad_arguments(runner, args, message):
    result = runner.invoke(cli, ["simulate", "hi", "--from", SENDER, "--to", TWILIO_NUMBER, "--token", TOKEN, *args])
    assert result.exit_code == 2 and message in result.output


@pytest.mark.parametrize(
    ("option", "number"),
    [("--from", "4155550111"), ("--to", "15005550006"), ("--from", "+1 415 555 0100"), ("--to", "+0123")],
)
def test_simulate_refuses_a_number_that_is_not_e164_and_sends_nothing(runner, gunicorn, option, number):
    """Twilio sends E.164; a simulated message from a number no lookup could reach would leave records no
    command, API or console page can find."""
    numbers = {"--from": SENDER, "--to": TWILIO_NUMBER, option: number}
    url = gunicorn.base + "/twilio/sms"
    args = ["simulate", "STOP", "--from", numbers["--from"], "--to", numbers["--to"], "--url", url, "--token", TOKEN]
    result = runner.invoke(cli, args)
    assert result.exit_code == 2
    assert f"Invalid value for '{option}': '{number}' is not an E.164 number such as" in result.output
    assert RawDatabase(gunicorn.db_url).execute("SELECT COUNT(*) FROM inbound_messages") == [(0,)]


def test_serve_with_dev_token_and_simulate(tmp_path, runner):
    """`make run`'s path: no configuration at all, a generated token, a working round trip."""
    port = free_port()
    env = child_environ({"GATEWAY_INSTANCE_PATH": str(tmp_path / "instance")})
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_healthy(port, proc, log, 30)
        token = (tmp_path / "instance" / "dev_auth_token").read_text().strip()
        output = log.read_text()
        assert token in output and "set TWILIO_AUTH_TOKEN" in output
        # The banner first; then where the records are, and each finding once (in dev: before going live).
        lines = output.splitlines()
        banner = next(n for n, line in enumerate(lines) if line.startswith("Console:"))
        told = [n for n, line in enumerate(lines) if "gateway.checkup:" in line or "records: " in line]
        assert told and min(told) > banner, lines
        assert f"instance folder {tmp_path / 'instance'}" in output
        assert sum("[help-reply]" in line for line in lines) == 1 and "BEFORE GOING LIVE [help-reply]" in output
        result = runner.invoke(
            cli, simulate_args("help", port), env={"GATEWAY_INSTANCE_PATH": str(tmp_path / "instance")}
        )
        assert result.exit_code == 0, result.output
        assert "Reply STOP to unsubscribe or START to resubscribe." in result.output
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("number", ["4155550100", "+1 415 555 0100", "+1415555", "hello"])
def test_history_of_a_malformed_number_is_an_error_not_none(runner, env, number):
    result = runner.invoke(cli, ["optouts", "history", number], env=env)
    assert result.exit_code == 2 and f"{number!r} is not an E.164 number such as +14155550100" in result.output


@pytest.mark.parametrize("wrote", [False, True])
def test_history_of_a_number_with_no_records_says_what_a_history_holds(runner, env, twilio, wrote):
    """A number that only ever wrote ordinary messages has no consent records: the answer says what the
    history holds, so nobody takes it for a number the gateway never heard from (or the other way round)."""
    if wrote:
        twilio.sms("is my table booked?", sender="+14155550177")
    result = runner.invoke(cli, ["optouts", "history", "+14155550177"], env=env)
    assert result.exit_code == 0 and result.output.strip() == (
        "no consent records for +14155550177: no opt-out, opt-in, HELP, consent, or dropped or suppressed message "
        "(ordinary messages to the agent are not consent records: see gateway outbox list)"
    )
    as_json = runner.invoke(cli, ["optouts", "history", "+14155550177", "--format", "json"], env=env)
    assert as_json.exit_code == 0 and json.loads(as_json.stdout) == []


# -- per-account proofs ------------------------------------------------------------------


def test_an_accounts_proof_is_checked_anywhere_and_shows_nothing_of_the_others(two_accounts, runner, db_url, tmp_path):
    proof = tmp_path / "brand.proof"
    made = runner.invoke(
        cli, ["audit", "proof", "--account", "brand", "--output", str(proof)], env={"DATABASE_URL": db_url}
    )
    assert made.exit_code == 0, made.output
    text = proof.read_text()
    for mark in two_accounts.region_marks:
        assert mark not in text, mark
    checked = runner.invoke(
        cli, ["audit", "check-proof", str(proof)], env={"DATABASE_URL": "sqlite:////nonexistent/x.db"}
    )
    assert checked.exit_code == 0, checked.output
    assert checked.output.startswith("ledger intact: 2 events checked, and 2 of other accounts, head ")
    whole = runner.invoke(cli, ["audit", "proof"], env={"DATABASE_URL": db_url})
    assert whole.exit_code == 0 and two_accounts.users["region_stop"] in whole.stdout  # no --account: everything

    lines = text.splitlines()
    other = next(i for i, line in enumerate(lines) if '"digest"' in line)
    record = json.loads(lines[other])
    lines[other] = json.dumps({**record, "digest": "0" * 64})  # someone changed another account's event
    proof.write_text("\n".join(lines) + "\n")
    broken = runner.invoke(cli, ["audit", "check-proof", str(proof)])
    assert broken.exit_code == 1 and f"ledger BROKEN at event {record['id']}" in broken.output
    del lines[other]  # or took it out
    proof.write_text("\n".join(lines) + "\n")
    removed = runner.invoke(cli, ["audit", "check-proof", str(proof)])
    assert removed.exit_code == 1 and "does not match (an event before it was deleted or inserted)" in removed.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not a ledger proof: its first line must hold the head and the accounts"),
        ("{not json\n", "not a ledger proof: Expecting property name"),
        ('{"head": {"last_event_id": 0, "hash": "0"}, "accounts": "AC1"}\n', "its accounts must be a list"),
    ],
)
def test_check_proof_refuses_what_is_not_a_proof(runner, tmp_path, text, message):
    path = tmp_path / "x.proof"
    path.write_text(text)
    result = runner.invoke(cli, ["audit", "check-proof", str(path)])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_a_proof_for_an_unknown_account_is_refused(runner, cli_env):
    result = runner.invoke(cli, ["audit", "proof", "--account", "nosuch"], env=cli_env)
    assert result.exit_code == 2 and "no account 'nosuch'; known: none configured" in result.output


def test_check_proof_names_a_file_it_cannot_read(runner, tmp_path):
    result = runner.invoke(cli, ["audit", "check-proof", str(tmp_path / "none.proof")])
    assert (
        result.exit_code == 2 and f"cannot read {tmp_path / 'none.proof'}: No such file or directory" in result.output
    )


# -- consent records ---------------------------------------------------------------------

WORDING = "Yes, text me appointment reminders and offers from Acme."


def test_consent_add_show_and_the_timeline(runner, env, twilio):
    added = runner.invoke(
        cli,
        [
            "consent", "add", SENDER, "--sender", TWILIO_NUMBER, "--category", "marketing", "--method", "paper",
            "--wording", WORDING, "--given-at", "2026-11-02", "--evidence", "document=form 77, box 3",
            "--evidence", "witness=J. Ortiz", "--by", "Dana Reyes",
        ],
        env=env,
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert added.output == f"Consent 1 recorded for {SENDER}: marketing from {TWILIO_NUMBER}. Event 1.\n"
    twilio.sms("STOP", sender=SENDER)
    shown = json.loads(runner.invoke(cli, ["consent", "show", SENDER, "--format", "json"], env=env).output)
    assert shown[0]["evidence"] == {"document": "form 77, box 3", "witness": "J. Ortiz"}
    assert shown[0]["given_at"] == "2026-11-02T00:00:00.000000Z" and shown[0]["ended_by_event_id"] == 2
    none = runner.invoke(cli, ["consent", "show", SENDER, "--current"], env=env)
    assert (none.exit_code, none.stdout, none.stderr) == (0, "", f"no current consent on record for {SENDER}\n")
    table = runner.invoke(cli, ["consent", "show", SENDER], env=env).output
    assert "marketing" in table and "Dana Reyes" in table and WORDING in table
    history = json.loads(runner.invoke(cli, ["optouts", "history", SENDER, "--format", "json"], env=env).output)
    assert [e["change"] for e in history] == ["granted", "revoked"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--category", "promos"], "category: 'promos' is not one of the configured categories"),
        (["--sender", "acme"], "sender: 'acme' is not a Twilio number"),
        (["--given-at", "2099-01-01"], "given_at: '2099-01-01' is in the future"),
        (["--evidence", "no-equals-sign"], "'no-equals-sign': expected KEY=VALUE"),
        (["--method", "keyword"], "Invalid value for '--method'"),
    ],
)
def test_consent_add_refuses_bad_input_and_writes_nothing(runner, env, args, message):
    base = {
        "--sender": TWILIO_NUMBER,
        "--category": "marketing",
        "--method": "verbal",
        "--wording": WORDING,
        "--by": "x",
    }
    options = dict(base)
    for flag, value in zip(args[::2], args[1::2], strict=True):
        options[flag] = value
    result = runner.invoke(cli, ["consent", "add", SENDER, *[p for kv in options.items() for p in kv]], env=env)
    assert result.exit_code == 2 and message in result.output, result.output
    assert json.loads(runner.invoke(cli, ["consent", "show", SENDER, "--format", "json"], env=env).output) == []


def test_consent_import_is_all_or_nothing(runner, env, tmp_path):
    good = tmp_path / "consents.csv"
    good.write_text(
        "number,sender,category,method,wording,given_at,evidence\n"
        f'{SENDER},{TWILIO_NUMBER},marketing,web_form,"{WORDING}",2026-10-01,"{{""ip"": ""203.0.113.7""}}"\n'
        f"+14155550124,*,informational,import,Reminders please.,,\n"
    )
    result = runner.invoke(cli, ["consent", "import", str(good), "--by", "CRM export"], env=env)
    assert result.exit_code == 0 and "Imported 2 consent records" in result.output, result.output
    rows = json.loads(runner.invoke(cli, ["consent", "show", SENDER, "--format", "json"], env=env).output)
    assert rows[0]["evidence"] == {"ip": "203.0.113.7"} and rows[0]["recorded_by"] == "CRM export"
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "number,sender,category,method,wording\n"
        "+14155550130,*,marketing,paper,ok\n"
        "+1415,*,marketing,paper,ok\n"
        "+14155550131,*,promos,paper,ok\n"
    )
    refused = runner.invoke(cli, ["consent", "import", str(bad), "--by", "x"], env=env)
    assert refused.exit_code == 1 and "nothing imported: 2 problem(s)" in refused.output
    assert "line 3: number: '+1415' is not an E.164 number" in refused.stderr
    assert "line 4: category: 'promos' is not one of" in refused.stderr
    assert json.loads(runner.invoke(cli, ["consent", "show", "+14155550130", "--format", "json"], env=env).output) == []
    missing = tmp_path / "missing.csv"
    missing.write_text("number,sender\n+14155550130,*\n")
    result = runner.invoke(cli, ["consent", "import", str(missing), "--by", "x"], env=env)
    assert "missing column(s): category, method, wording" in result.stderr


def test_consent_withdraw(runner, cli_env, db_url):
    env = {**cli_env, "GATEWAY_REQUIRE_CONSENT": "marketing"}
    for category in ("marketing", "informational"):
        runner.invoke(
            cli,
            ["consent", "add", SENDER, "--sender", TWILIO_NUMBER, "--category", category, "--method", "verbal",
             "--wording", WORDING, "--by", "Dana"],
            env=env,
        )  # fmt: skip
    done = runner.invoke(
        cli, ["consent", "withdraw", SENDER, "--category", "marketing", "--reason", "call", "--by", "Dana"], env=env
    )
    assert done.exit_code == 0, done.output
    assert done.output == f"{SENDER} withdrew marketing from *: consent 1 ended. Event 3.\n"
    history = json.loads(runner.invoke(cli, ["optouts", "history", SENDER, "--format", "json"], env=env).output)
    assert [e["change"] for e in history] == ["granted", "granted", "withdrawn"]
    for args, message in [
        (["--category", "marketing"], f"Error: {SENDER} has no current consent to marketing from *"),
        (["--category", "informational"], "Error: category 'informational' is not in require_consent"),
        (
            ["--category", "marketing", "--sender", "acme"],
            "Invalid value for --sender: 'acme' is not a Twilio number",
        ),
    ]:
        result = runner.invoke(cli, ["consent", "withdraw", SENDER, *args, "--reason", "r", "--by", "b"], env=env)
        assert result.exit_code != 0 and message in result.output, result.output


@pytest.mark.parametrize(
    "command",
    [
        [
            "consent",
            "add",
            SENDER,
            "--sender",
            "*",
            "--category",
            "marketing",
            "--method",
            "paper",
            "--wording",
            "Yes.",
        ],
        ["consent", "withdraw", SENDER, "--category", "marketing", "--reason", "call"],
    ],
)
def test_who_recorded_it_must_be_said(runner, env, command):
    result = runner.invoke(cli, [*command, "--by", "   "], env={**env, "GATEWAY_REQUIRE_CONSENT": "marketing"})
    assert result.exit_code == 2 and "Invalid value for '--by': must not be empty" in result.output


def test_init_db_on_heroku_without_postgresql_stops_the_release(runner, tmp_path):
    """The Procfile's release phase runs init-db first: on Heroku with no PostgreSQL it fails, naming why, and
    the release stops before a gateway serves on a disk that forgets its opt-outs."""
    result = runner.invoke(cli, ["init-db"], env={"DYNO": "release.1", "DATABASE_URL": ""})
    assert result.exit_code != 0
    assert "DATABASE_URL is not set: the default SQLite file" in result.output
    assert "on Heroku's disk (DYNO is set)" in result.output and "Traceback" not in result.output
    assert not list(tmp_path.rglob("gateway.db"))  # nothing made
