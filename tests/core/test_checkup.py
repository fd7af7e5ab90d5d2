"""The compliance check of a deployment: each check as a plain function, ``gateway doctor``, start-up."""

import json
import logging
import re
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import psycopg
import pytest

from gateway import create_app
from gateway.cli import cli
from gateway.core.checkup import (
    FAIL,
    FCC_PER_SE_WORDS,
    WARN,
    callback_findings,
    candidate_findings,
    clock_findings,
    configuration_findings,
    database_findings,
    durability_findings,
    filesystem_findings,
    has_contact,
    keyword_findings,
    ledger_findings,
    scope_findings,
)
from gateway.core.keywords import KeywordBook, KeywordSet
from gateway.core.scope import Scope
from gateway.messaging import services

from ..support import postgres
from ..support.constants import ROOT, TOKEN, TWILIO_NUMBER
from ..support.database import RawDatabase
from ..support.servers import child_environ
from ..support.webhooks import TwilioSender

GOOD_REPLIES = {
    "stop": "Acme: you are unsubscribed and will get no more messages. Reply START to resubscribe.",
    "start": "Acme: you are resubscribed.",
    "help": "Acme alerts. Help: support@acme.example or +1 415 555 0100. Reply STOP to stop.",
}
ALL_WORDS = {"stop": [*FCC_PER_SE_WORDS, "stopall"], "start": ["start"], "help": ["help"]}


def book(words=ALL_WORDS, **replies):
    return KeywordBook(KeywordSet.build(words, {**GOOD_REPLIES, **replies}))


def checks(findings):
    return [(f.level, f.check, f.where) for f in findings]


def test_good_keywords_have_no_finding():
    assert keyword_findings(book(), [TWILIO_NUMBER], {}) == []


@pytest.mark.parametrize(
    ("words", "replies", "expected", "problem"),
    [
        (
            {**ALL_WORDS, "stop": ["stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout"]},
            {},
            "fcc-words",
            "the stop keywords lack 'revoke', 'opt out'",
        ),
        (ALL_WORDS, {"stop": "Unsubscribed. See our deals at https://acme.example/deals"}, "stop-reply", "link"),
        (ALL_WORDS, {"stop": "Unsubscribed. Visit acme.com for more."}, "stop-reply", "link"),
        (ALL_WORDS, {"stop": "Unsubscribed. " + "x" * 150}, "stop-reply", "164 GSM-7 units"),
        (ALL_WORDS, {"stop": "Désinscrit ✓"}, "stop-reply", "UCS-2"),
        (ALL_WORDS, {"help": "Reply STOP to unsubscribe."}, "help-reply", "no phone number, email address or URL"),
    ],
)
def test_keyword_findings(words, replies, expected, problem):
    findings = keyword_findings(book(words, **replies), [TWILIO_NUMBER], {})
    assert checks(findings) == [(FAIL, expected, "default keywords")]
    assert problem in findings[0].problem
    assert findings[0].rule and findings[0].fix


@pytest.mark.parametrize(
    ("text", "contact"),
    [
        ("Call +1 415 555 0100", True),
        ("Call (415) 555-0100", True),
        ("Write to help@acme.example", True),
        ("See https://acme.example/help", True),
        ("Reply STOP to stop, HELP for help.", False),
        ("Acme: 2 msgs/week", False),
    ],
)
def test_has_contact(text, contact):
    assert has_contact(text) is contact


def test_each_number_with_its_own_set_is_checked_and_the_brand_named():
    own = KeywordSet.build(ALL_WORDS, {**GOOD_REPLIES, "help": "Zenith: call +1 415 555 0199."})
    books = KeywordBook(KeywordSet.build(ALL_WORDS, GOOD_REPLIES), {"+15005550010": own})
    findings = keyword_findings(
        books, [TWILIO_NUMBER, "+15005550010"], {TWILIO_NUMBER: "zenith", "+15005550010": "zenith"}
    )
    # The default set (used by TWILIO_NUMBER) names Acme, not the number's brand; the number's own names it.
    assert checks(findings) == [(FAIL, "help-reply", TWILIO_NUMBER)]
    assert "does not name the brand 'zenith'" in findings[0].problem
    # Only numbers with their own set: the default is not checked.
    assert keyword_findings(books, ["+15005550010"], {}) == []


@pytest.mark.parametrize(
    ("mode", "modes", "today", "expected"),
    [
        ("business", {}, date(2026, 12, 1), []),
        ("pair", {}, date(2026, 12, 1), [WARN]),
        ("pair", {}, date(2027, 1, 30), [WARN]),
        ("pair", {}, date(2027, 1, 31), [FAIL]),
        ("messaging_service", {}, date(2028, 1, 1), [FAIL]),
        ("business", {TWILIO_NUMBER: "pair"}, date(2027, 2, 1), [FAIL]),  # one account narrower
    ],
)
def test_scope_against_the_revoke_all_date(mode, modes, today, expected):
    findings = scope_findings(Scope.build(mode, {}, modes), today)
    assert [f.level for f in findings] == expected
    for finding in findings:
        assert "2027-01-31" in finding.rule and 'opt_out_scope = "business"' in finding.fix


def test_callback_candidates_and_ledger_findings():
    assert callback_findings([], None) == [] and callback_findings([TWILIO_NUMBER], "https://x.example/s") == []
    assert checks(callback_findings([TWILIO_NUMBER], None)) == [(WARN, "status-callback", TWILIO_NUMBER)]
    assert candidate_findings([], 10) == []
    overdue = candidate_findings([{"due_by": "2026-11-20"}, {"due_by": "2026-11-13"}], 10)
    assert checks(overdue) == [(FAIL, "candidates", "revocation candidates")]
    assert "2 open candidate(s) past their due date (the oldest due 2026-11-13)" == overdue[0].problem
    assert ledger_findings(True, "ok") == []
    assert checks(ledger_findings(False, "ledger BROKEN at event 3")) == [(FAIL, "ledger", "event ledger")]


def test_configuration_findings_of_the_committed_defaults(tmp_path):
    """The committed keywords lack a HELP contact (each deployment must write its own); the scope is pair."""
    from gateway.settings import load

    settings = load({"TWILIO_AUTH_TOKEN": TOKEN}, instance_path=str(tmp_path), environ={})
    findings = configuration_findings(settings, date(2026, 12, 1))
    assert checks(findings) == [(FAIL, "help-reply", "default keywords"), (WARN, "revoke-all", "opt_out_scope")]


@pytest.mark.parametrize(
    ("env", "help_level", "scope_level"),
    [
        ("dev", "BEFORE GOING LIVE", "BEFORE GOING LIVE"),
        ("sandbox", "FAIL", "(WARN|FAIL)"),
        ("live", "FAIL", "(WARN|FAIL)"),
    ],
)
def test_start_up_logs_each_finding_as_one_warning(tmp_path, gateway_log, env, help_level, scope_level):
    """In dev, a HELP reply without a contact and a scope narrower than revoke-all are what to settle before
    going live; in sandbox and live they are what they are. The fix names the file to edit."""
    caplog = gateway_log
    url = f"sqlite:///{tmp_path / 'g.db'}"
    senders = {} if env == "dev" else {"SENDERS_OVERRIDE": "+15005550006", "TWILIO_ACCOUNT_SID": "AC" + "1" * 32}
    create_app({"TWILIO_AUTH_TOKEN": TOKEN, "DATABASE_URL": url, "ENV": env, **senders})
    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.checkup"]
    lines = [line for line in lines if "[help-reply]" in line or "[revoke-all]" in line]
    assert {r.levelno for r in caplog.records if r.name == "gateway.checkup"} == {logging.WARNING}
    assert len(lines) == 2 and all("\n" not in line for line in lines), lines
    assert lines[0].startswith(f"{help_level} [help-reply] default keywords: the HELP reply gives no phone number")
    assert lines[0].endswith(
        'Fix: set help = "Acme: help at support@acme.example or +1 415 555 0100. Reply STOP to unsubscribe." '
        'under [replies] in your keywords file (config/keywords.toml, which keywords_file = "keywords.toml" in '
        "config/gateway.toml names)"
    )
    assert re.match(f"{scope_level} \\[revoke-all\\] opt_out_scope: the scope is 'pair'", lines[1]), lines[1]
    caplog.clear()
    keywords = tmp_path / "keywords.toml"
    keywords.write_text(
        f"[keywords]\nstop = {json.dumps(ALL_WORDS['stop'])}\nstart = ['start']\nhelp = ['help']\n"
        "[replies]\n" + "".join(f"{kind} = {json.dumps(text)}\n" for kind, text in GOOD_REPLIES.items())
    )
    create_app(
        {
            "TWILIO_AUTH_TOKEN": TOKEN,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'g.db'}",
            "OPT_OUT_SCOPE": "business",
            "KEYWORDS_FILE": str(keywords),
        }
    )
    assert [r.getMessage() for r in caplog.records if r.name == "gateway.checkup"] == []


def test_doctor_on_a_good_and_a_bad_deployment(runner, cli_env, tmp_path, twilio):
    keywords = tmp_path / "keywords.toml"
    keywords.write_text(
        f"[keywords]\nstop = {json.dumps(ALL_WORDS['stop'])}\nstart = ['start']\nhelp = ['help']\n"
        "[replies]\n" + "".join(f"{kind} = {json.dumps(text)}\n" for kind, text in GOOD_REPLIES.items())
    )
    good = {**cli_env, "GATEWAY_KEYWORDS_FILE": str(keywords), "GATEWAY_OPT_OUT_SCOPE": "business"}
    result = runner.invoke(cli, ["doctor"], env=good)
    assert result.exit_code == 0, result.output
    assert result.output == "0 finding(s); no failure.\n"

    # The committed defaults (no HELP contact, pair scope): in dev, to settle before going live.
    dev = runner.invoke(cli, ["doctor"], env=cli_env)
    assert dev.exit_code == 0, dev.output
    assert dev.output.splitlines()[0].startswith("BEFORE GOING LIVE [help-reply] default keywords:")
    assert dev.output.splitlines()[-1] == (
        "2 finding(s); no failure. 2 to settle before going live (see them with --env live)."
    )
    bad = runner.invoke(cli, ["doctor", "--format", "json", "--env", "live"], env=cli_env)  # what live would say
    assert bad.exit_code == 1
    report = json.loads(bad.output)
    assert report["ok"] is False
    assert [f["check"] for f in report["findings"]] == ["help-reply", "revoke-all"]
    assert report["findings"][0]["level"] == "fail"
    assert set(report["findings"][0]) == {"level", "check", "rule", "where", "problem", "fix"}


def test_doctor_finds_overdue_candidates_and_a_broken_ledger(runner, cli_env, raw, twilio):
    twilio.sms("please stop texting me")  # a revocation candidate, due in 10 business days
    result = runner.invoke(cli, ["doctor", "--format", "json"], env=cli_env)
    assert "candidates" not in [f["check"] for f in json.loads(result.output)["findings"]]
    raw.execute("UPDATE revocation_candidates SET received_at = '2026-01-05T10:00:00.000000Z'")
    raw.tamper("UPDATE events SET body = 'hello' WHERE id = 1")
    result = runner.invoke(cli, ["doctor"], env=cli_env)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert (
        "FAIL [candidates] revocation candidates: 1 open candidate(s) past their due date (the oldest due 2026-01-19)"
        in lines[2]
    )
    assert lines[3].startswith("FAIL [ledger] event ledger: ledger BROKEN at event 1: its hash does not match")
    assert lines[-1] == "4 finding(s); failures above. 2 to settle before going live (see them with --env live)."


def test_doctor_reports_a_database_it_cannot_read(runner, tmp_path):
    result = runner.invoke(cli, ["doctor"], env={"DATABASE_URL": f"sqlite:///{tmp_path / 'none.db'}"})
    assert result.exit_code == 1
    assert any(line.startswith("FAIL [database] database: ") for line in result.output.splitlines())


def test_the_clarification_text_is_held_to_the_confirmation_rule(tmp_path):
    from gateway.settings import load

    settings = load(
        {
            "TWILIO_AUTH_TOKEN": TOKEN,
            "REQUIRE_CONSENT": ["marketing"],
            "CLARIFICATION_TEXT": "Unsubscribed. Manage your choices at https://acme.example/prefs",
            "CLARIFICATION_CHOICES": {"offers": ["marketing"]},
        },
        instance_path=str(tmp_path),
        environ={},
    )
    found = [f for f in configuration_findings(settings, date(2026, 12, 1)) if f.where == "clarification_text"]
    assert checks(found) == [(FAIL, "stop-reply", "clarification_text")]
    assert found[0].problem == "the clarification contains a link"


RULE_12 = "FCC 47 CFR 64.1200(a)(12): one confirmation text, only confirming, no marketing"
CTIA = "CTIA Messaging Principles: HELP names the program or brand and a way to reach a person"
REVOKE_ALL = (
    "FCC 47 CFR 64.1200(a)(10) revoke-all, in force from 2027-01-31: a revocation covers every unrelated message "
    "from the business"
)
TO_BUSINESS = 'set opt_out_scope = "business" (and [brands] if the deployment serves several businesses)'


def test_every_finding_reads_as_one_line_with_its_rule_and_fix():
    bad = {"stop": "Bye, see https://x.example " + "y" * 150, "help": "Reply STOP."}
    words = {"stop": ["stop"], "start": ["start"], "help": ["help"]}
    findings = keyword_findings(book(words, **bad), [TWILIO_NUMBER, "MG" + "a" * 32], {TWILIO_NUMBER: "acme-co"})
    assert [f.line() for f in findings] == [
        "FAIL [fcc-words] default keywords: the stop keywords lack 'quit', 'end', 'revoke', 'opt out', 'cancel', "
        "'unsubscribe' (FCC 47 CFR 64.1200(a)(10): these words revoke consent whatever the business offers). "
        "Fix: add them to the stop list of the keywords file",
        f"FAIL [stop-reply] default keywords: the STOP confirmation contains a link ({RULE_12}). Fix: remove the link",
        "FAIL [stop-reply] default keywords: the STOP confirmation is 177 GSM-7 units, not one plain text of at most "
        f"160 GSM-7 characters ({RULE_12}). Fix: shorten it to a plain confirmation",
        "FAIL [help-reply] default keywords: the HELP reply gives no phone number, email address or URL "
        f"({CTIA}). Fix: add a contact to the help reply in the keywords file, e.g. 'Acme: help at "
        "support@acme.example or +1 415 555 0100. Reply STOP to unsubscribe.'",
        f"FAIL [help-reply] {TWILIO_NUMBER}: the HELP reply does not name the brand 'acme-co' ({CTIA}). Fix: name it",
    ]
    lines = [
        f.line()
        for f in [
            *scope_findings(Scope.build("pair", {}), date(2026, 12, 1)),
            *scope_findings(Scope.build("pair", {}), date(2027, 2, 1)),
            *callback_findings([TWILIO_NUMBER], None),
            *candidate_findings([{"due_by": "2026-11-13"}], 10),
            *ledger_findings(False, "ledger BROKEN at event 3: x"),
            *database_findings("no such table"),
        ]
    ]
    assert lines == [
        "WARN [revoke-all] opt_out_scope: the scope is 'pair', narrower than the rule will require from 2027-01-31 "
        f"({REVOKE_ALL}). Fix: {TO_BUSINESS}",
        f"FAIL [revoke-all] opt_out_scope: the scope is 'pair' ({REVOKE_ALL}). Fix: {TO_BUSINESS}",
        f"WARN [status-callback] {TWILIO_NUMBER}: senders are configured but no status callback URL is (delivery "
        "tracking: a send refused because the recipient opted out upstream is recorded from the status callback). "
        "Fix: set public_url (the callback is public_url + /twilio/status) or status_callback_url",
        "FAIL [candidates] revocation candidates: 1 open candidate(s) past their due date (the oldest due "
        "2026-11-13) (FCC 47 CFR 64.1200(a)(10): a revocation in other words is honoured within 10 business days). "
        "Fix: resolve them: gateway optouts candidates, then confirm or dismiss each",
        "FAIL [ledger] event ledger: ledger BROKEN at event 3: x (records: the business carries the burden of proof, "
        "and a broken chain weakens it). Fix: restore the database from a backup taken before the break; gateway "
        "audit verify names the event",
        "FAIL [database] database: no such table (records: opt-outs and consent must be kept and provable). Fix: "
        "start the database, or run gateway init-db",
    ]


@pytest.mark.parametrize(("length", "fails"), [(160, False), (161, True)])
def test_the_confirmation_may_fill_one_segment_exactly(length, fails):
    findings = keyword_findings(book(stop="x" * length), [TWILIO_NUMBER], {})
    assert bool(findings) is fails


@pytest.mark.parametrize("brand", ["acme-co", "acme_co", "ACME-CO"])
def test_a_brand_is_found_whatever_its_separators(brand):
    named = book(help="Acme Co: call +1 415 555 0100.")
    assert keyword_findings(named, [TWILIO_NUMBER], {TWILIO_NUMBER: brand}) == []
    assert keyword_findings(book(help="AcmeCo: +1 415 555 0100"), [TWILIO_NUMBER], {TWILIO_NUMBER: brand})


def test_messaging_service_sids_are_not_numbers_with_keyword_sets():
    """Every number has its own good set: the (bad) default is in force nowhere, a service SID aside."""
    own = KeywordSet.build(ALL_WORDS, GOOD_REPLIES)
    books = KeywordBook(KeywordSet.build(ALL_WORDS, {**GOOD_REPLIES, "help": "no contact"}), {TWILIO_NUMBER: own})
    assert keyword_findings(books, [TWILIO_NUMBER, "MG" + "a" * 32], {}) == []
    assert keyword_findings(books, [TWILIO_NUMBER, "+15005550099"], {})  # a number on the default: checked


def test_configuration_findings_follow_brands_senders_and_the_callback(tmp_path):
    from gateway.settings import load

    overrides = {
        "TWILIO_AUTH_TOKEN": TOKEN,
        "SENDERS_OVERRIDE": f"{TWILIO_NUMBER},+15005550007",
        "BRANDS": {"zenith": [TWILIO_NUMBER]},
        "OPT_OUT_SCOPE": "business",
        "KEYWORDS_FILE": str(good_keywords(tmp_path)),
    }
    settings = load(overrides, instance_path=str(tmp_path), environ={})
    found = configuration_findings(settings, date(2026, 12, 1))
    assert checks(found) == [
        (FAIL, "help-reply", TWILIO_NUMBER),  # the brand zenith is not named in the (Acme) HELP reply
        (WARN, "status-callback", f"{TWILIO_NUMBER}, +15005550007"),
    ]
    called = load(
        {**overrides, "STATUS_CALLBACK_URL": "https://gw.example/twilio/status"},
        instance_path=str(tmp_path),
        environ={},
    )
    assert checks(configuration_findings(called, date(2026, 12, 1))) == [(FAIL, "help-reply", TWILIO_NUMBER)]


def good_keywords(tmp_path):
    keywords = tmp_path / "good-keywords.toml"
    keywords.write_text(
        f"[keywords]\nstop = {json.dumps(ALL_WORDS['stop'])}\nstart = ['start']\nhelp = ['help']\n"
        "[replies]\n" + "".join(f"{kind} = {json.dumps(text)}\n" for kind, text in GOOD_REPLIES.items())
    )
    return keywords


def start_up_after(tmp_path, gateway_log, body, change):
    """The warnings of a restart after ``body`` was received and ``change(raw database)`` done behind its back."""
    url = f"sqlite:///{tmp_path / 'g.db'}"
    app = create_app({"TWILIO_AUTH_TOKEN": TOKEN, "DATABASE_URL": url})
    TwilioSender(app.test_client()).sms(body)
    services.of(app).store.close()
    change(RawDatabase(url))
    gateway_log.clear()
    create_app({"TWILIO_AUTH_TOKEN": TOKEN, "DATABASE_URL": url})
    return [r.getMessage() for r in gateway_log.records if r.name == "gateway.checkup"]


@pytest.mark.parametrize(
    ("body", "change", "warning"),
    [
        (
            "please stop texting me",
            lambda raw: raw.execute("UPDATE revocation_candidates SET received_at = '2026-01-05T10:00:00.000000Z'"),
            "FAIL [candidates] revocation candidates: 1 open candidate(s)",
        ),
        (
            "STOP",
            lambda raw: raw.tamper("UPDATE events SET body = 'START' WHERE id = 1"),
            "FAIL [ledger] event ledger: ledger BROKEN at event 1",
        ),
    ],
)
def test_start_up_warns_of_what_the_records_show(tmp_path, gateway_log, body, change, warning):
    lines = start_up_after(tmp_path, gateway_log, body, change)
    assert any(line.startswith(warning) for line in lines), lines


LEASES = {"AGENT_LEASE_SECONDS": 60.0, "CONSENT_SYNC_LEASE_SECONDS": 30.0}


@pytest.mark.parametrize(
    ("offset", "leases", "expected"),
    [
        (None, LEASES, None),  # SQLite: one machine, one clock
        (0.004, LEASES, None),
        (-1.0, LEASES, None),
        (1.6, LEASES, "WARN [clock] this machine's clock: 1.6 s behind the database server's: records stamped here"),
        (-14.9, LEASES, "WARN [clock] this machine's clock: 14.9 s ahead of the database server's: records"),
        (
            -15.0,
            LEASES,
            "FAIL [clock] this machine's clock: 15.0 s ahead of the database server's: at half of "
            "GATEWAY_CONSENT_SYNC_LEASE_SECONDS (30 s) or more, another machine may take a message",
        ),
        (
            3.0,
            {**LEASES, "AGENT_LEASE_SECONDS": 5.0},
            "FAIL [clock] this machine's clock: 3.0 s behind the database server's: at half of "
            "GATEWAY_AGENT_LEASE_SECONDS (5 s)",
        ),
        (
            45.0,
            {"AGENT_LEASE_SECONDS": 600.0, "CONSENT_SYNC_LEASE_SECONDS": 600.0},
            "FAIL [clock] this machine's clock: 45.0 s behind the database server's: at half of the outbound send "
            "lease (60 s)",
        ),
    ],
)
def test_clock_findings(offset, leases, expected):
    findings = clock_findings(offset, leases)
    if expected is None:
        assert findings == []
    else:
        assert len(findings) == 1 and findings[0].line().startswith(expected)
        assert (
            findings[0]
            .line()
            .endswith("Fix: keep every gateway machine's clock synchronised (NTP: timedatectl set-ntp true, or chrony)")
        )


@pytest.fixture
def faketime() -> str:
    """libfaketime's ``faketime``: runs a command with its clock shifted (Debian's package, installed if missing)."""
    if shutil.which("faketime") is None:
        postgres.apt_install("faketime")
    return shutil.which("faketime")


def test_a_machine_whose_clock_is_off_is_told_at_start_up_and_by_doctor(faketime, cli_env, tmp_path):
    """A real process with its clock 90 s slow: on PostgreSQL, ``gateway worker`` logs the failure at start-up
    and ``gateway doctor`` fails on it; on SQLite (one machine, one clock) neither has anything to compare."""
    env = child_environ({**cli_env, "TWILIO_AUTH_TOKEN": TOKEN, "GATEWAY_INSTANCE_PATH": str(tmp_path / "instance")})

    def run(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [faketime, "-f", "-90s", sys.executable, "-m", "gateway.cli", *command],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    worker, doctor = run("worker", "--once"), run("doctor")
    assert worker.returncode == 0, worker.stderr
    clock = "FAIL [clock] this machine's clock: 90."
    if cli_env["DATABASE_URL"].startswith("sqlite"):
        assert "[clock]" not in worker.stderr + doctor.stdout
        return
    assert clock in worker.stderr and " s behind the database server's: at half of" in worker.stderr
    assert doctor.returncode == 1
    assert [line for line in doctor.stdout.splitlines() if line.startswith(clock)], doctor.stdout


def test_durability_findings():
    assert durability_findings({}) == []
    assert [f.line() for f in durability_findings({"fsync": "off"})] == [
        "FAIL [durability] database server: it runs with fsync = off: a crash of its machine can lose or corrupt "
        "records the gateway already acknowledged, opt-outs among them (records: an opt-out is kept from the moment "
        "it is acknowledged). Fix: set fsync = on in postgresql.conf (or ALTER SYSTEM) and reload the server"
    ]


@pytest.mark.slow
def test_a_server_that_does_not_force_commits_to_disk_is_told_at_start_up_and_fails_doctor(runner, gateway_log):
    """A real PostgreSQL server set to skip its fsyncs (a tuning some guides give for speed)."""
    cluster = postgres.Cluster()
    try:
        with psycopg.connect(cluster.url, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET fsync = off")
            conn.execute("ALTER SYSTEM SET full_page_writes = off")
            conn.execute("SELECT pg_reload_conf()")
        app = create_app({"TWILIO_AUTH_TOKEN": TOKEN, "DATABASE_URL": cluster.url})
        services.of(app).store.close()
        started = [r.getMessage() for r in gateway_log.records if r.name == "gateway.checkup"]
        result = runner.invoke(cli, ["doctor"], env={"DATABASE_URL": cluster.url})
    finally:
        cluster.destroy()
    for name in ("fsync", "full_page_writes"):
        line = f"FAIL [durability] database server: it runs with {name} = off: a crash of its machine can lose"
        assert any(found.startswith(line) for found in started), started
        assert any(found.startswith(line) for found in result.output.splitlines()), result.output
    assert result.exit_code == 1


def test_filesystem_findings():
    assert filesystem_findings(None, "the SQLite database /srv/g.db") == []
    assert [f.line() for f in filesystem_findings("nfs4", "the SQLite database /srv/g.db")] == [
        "FAIL [filesystem] the SQLite database /srv/g.db: it is on a network filesystem (nfs4): SQLite's locks and "
        "its WAL need every process on one machine, so gateways on two machines sharing it corrupt it, and the file "
        "server decides whether an fsync reached its disk (records: an opt-out is kept from the moment it is "
        "acknowledged). Fix: keep the SQLite file on a local disk of one machine, or use PostgreSQL "
        "(DATABASE_URL=postgresql://...)"
    ]


def test_an_sqlite_file_on_a_network_filesystem_is_told_at_start_up_and_fails_doctor(
    tmp_path, runner, gateway_log, monkeypatch
):
    """The real mount table, read for the test's own folder, whose filesystem the test counts as a network one
    (no file server here to mount)."""
    from gateway.store import sqlite

    database = tmp_path / "g.db"
    local = sqlite.filesystem_of(tmp_path.resolve(), Path("/proc/self/mountinfo").read_text())
    monkeypatch.setattr(sqlite, "NETWORK_FILESYSTEMS", frozenset({local}))
    url = f"sqlite:///{database}"
    services.of(create_app({"TWILIO_AUTH_TOKEN": TOKEN, "DATABASE_URL": url})).store.close()
    line = f"FAIL [filesystem] the SQLite database {database}: it is on a network filesystem ({local}): "
    assert any(r.getMessage().startswith(line) for r in gateway_log.records if r.name == "gateway.checkup")
    result = runner.invoke(cli, ["doctor"], env={"DATABASE_URL": url})
    assert result.exit_code == 1 and any(found.startswith(line) for found in result.output.splitlines())
