"""The schema on both backends: versioned, migrated on purpose only, and read without writing."""

import pytest

from gateway.cli import cli
from gateway.store import SchemaMismatch, Store
from gateway.store.migrations.sqlite import VERSION as SCHEMA_VERSION

from ..support.database import RawDatabase
from .conftest import old_database, process

AT = "2026-10-01T10:00:00.000000Z"


def test_schema_is_created_once_and_versioned(db):
    latest = db.backend.latest_version
    assert db.init_schema() == latest  # idempotent
    assert db.check_schema() == latest
    assert set(db.table_counts()) >= {"events", "opt_outs", "inbound_messages", "sessions"}


def _set_version(raw, kind, version):
    if kind == "sqlite":
        raw.execute(f"PRAGMA user_version={version}")
    else:
        raw.execute("UPDATE schema_version SET version = ?", params=(version,))


def test_newer_schema_is_refused(db, raw, db_kind, db_url):
    _set_version(raw, db_kind, 99)
    with pytest.raises(
        SchemaMismatch, match=f"schema version 99, newer than this gateway's {db.backend.latest_version}"
    ):
        Store(db_url).init_schema()


READS = (["optouts", "list"], ["optouts", "history", "+14155550100"], ["audit", "verify"], ["stats"], ["keys", "list"])


def test_read_only_commands_on_an_empty_database_write_nothing(db_url, db_kind, raw, runner, tmp_path):
    for args in READS:
        result = runner.invoke(cli, args, env={"DATABASE_URL": db_url})
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert "holds no gateway schema yet: run `gateway init-db` first" in result.output
    if db_kind == "sqlite":
        assert not (tmp_path / "gateway.db").exists()  # not even created
    else:
        assert raw.scalar("SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema()") == 0


def test_read_only_commands_on_an_older_schema_name_both_versions(tmp_path, runner):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = old_database(tmp_path / "old.db", 4)
    old.execute("INSERT INTO opt_outs VALUES ('+14155550100', '+15005550006', ?, 'manual', 'SM1', NULL, NULL)", (AT,))
    old.conn.commit()
    old.close()
    raw = RawDatabase(url)
    before = (tmp_path / "old.db").read_bytes()
    for args in READS:
        result = runner.invoke(cli, args, env={"DATABASE_URL": url})
        assert result.exit_code == 1
        older = f"at schema version 4, older than this gateway's {SCHEMA_VERSION}: run `gateway init-db` to migrate it"
        assert older in result.output
    assert raw.scalar("PRAGMA user_version") == 4 and (tmp_path / "old.db").read_bytes() == before
    assert runner.invoke(cli, ["init-db"], env={"DATABASE_URL": url}).exit_code == 0
    listed = runner.invoke(cli, ["optouts", "list", "--format", "json"], env={"DATABASE_URL": url})
    assert listed.exit_code == 0 and '"message_sid": "SM1"' in listed.output


def test_a_read_only_store_refuses_to_write(db, db_url):
    reader = Store(db_url, readonly=True)
    try:
        assert reader.current_opt_outs() == []
        with pytest.raises(Exception, match="read-only|readonly|read only"):
            process(reader, "stop", "SM1")
    finally:
        reader.close()
    assert db.current_opt_outs() == [] and db.processed("SM1") is None


def test_status_shows_rows_per_table(db, db_url, runner):
    process(db, "stop", "SM1")
    result = runner.invoke(cli, ["db", "status", "--format", "json"], env={"DATABASE_URL": db_url})
    assert result.exit_code == 0, result.output
    assert '"events": 1' in result.output and '"opt_outs": 1' in result.output
