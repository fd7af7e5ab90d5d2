"""GET /healthz tells the truth: a database that answers reads but cannot store is not healthy."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from gateway import create_app
from gateway.messaging import services
from gateway.store import Store
from gateway.store import postgres as postgres_backend

from ..support.constants import TOKEN
from ..support.servers import Gunicorn, wait_for
from ..support.webhooks import TwilioSender, new_sid, post_webhook, sms_params


def health(base: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def test_healthy(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok", "database": "ok"}


def test_a_broken_schema_cannot_be_read(client, raw):
    raw.execute("DROP TABLE opt_outs")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json == {
        "status": "unavailable",
        "database": "cannot read",
        "reason": "the database did not answer",
    }


def test_a_schema_that_refuses_the_write_probe_cannot_write(client, raw, gateway_log):
    raw.execute("DROP TABLE health_probe")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json == {
        "status": "unavailable",
        "database": "cannot write",
        "reason": "the database refused a write",
    }
    assert "Traceback" not in gateway_log.text and "health_probe" in gateway_log.text


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 4 MiB filesystem of its own (tmpfs), so the test can fill it; needs the right to mount."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("filling a disk needs a small filesystem of its own, and mounting one needs root here")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Take every free byte of the filesystem ``directory`` is on."""
    filler = directory / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler


@pytest.mark.slow
def test_a_full_disk_is_reported_and_recovered_from(tmp_path, small_disk):
    """SQLite on a disk that fills up: the webhook answers 503 (never 200 for what was not stored), /healthz
    says why, and both recover by themselves once there is room again."""
    url = f"sqlite:///{small_disk / 'gateway.db'}"
    server = Gunicorn(tmp_path, workers=2, db_url=url)
    try:
        assert post_webhook(server.base, sms_params("hello"))[0] == 200
        filler = fill(small_disk)
        sids = [new_sid() for _ in range(20)]
        answers = {sid: post_webhook(server.base, sms_params("x" * 1500, sid=sid)) for sid in sids}
        statuses = {status for status, _ in answers.values()}
        assert statuses <= {200, 503} and 503 in statuses
        refusal = next(text for status, text in answers.values() if status == 503)
        assert refusal == "503 Service Unavailable: the database cannot store records right now; retry later\n"
        status, body = health(server.base)
        assert status == 503 and body == {
            "status": "unavailable",
            "database": "cannot write",
            "reason": "the disk holding the database has 0 KiB free (less than 1024)",
        }
        os.unlink(filler)
        wait_for(lambda: health(server.base)[0] == 200, 10, "/healthz to recover")
        assert post_webhook(server.base, sms_params("back"))[0] == 200
    finally:
        server.stop()
    store = Store(url)
    for sid, (status, _) in answers.items():
        assert (store.processed(sid) is not None) == (status == 200)  # stored exactly when acknowledged
    assert {"hello", "back"} <= {m["body"] for m in store.queued_messages()}
    store.close()
    assert "Traceback" not in server.log.read_text()


@pytest.mark.slow
def test_a_read_only_database_is_reported_and_recovered_from(tmp_path, pg_url):
    """PostgreSQL that only reads (a replica after a failover): /healthz is 503, the webhook 503 too."""
    server = Gunicorn(tmp_path, workers=2, db_url=pg_url)
    with server, psycopg.connect(pg_url, autocommit=True) as admin:
        database = admin.execute("SELECT current_database()").fetchone()[0]

        def restart_connections():  # the gateway's pooled connections are replaced by fresh ones
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            )

        try:
            assert health(server.base)[0] == 200
            admin.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
            restart_connections()
            # Each worker trusts its last good write for a second, and a connection the restart cut may
            # first answer "cannot read": wait for the answer that names the cause.
            answers = []
            wait_for(
                lambda: answers.append(health(server.base)) or answers[-1][1].get("database") == "cannot write",
                20,
                "/healthz to notice",
            )
            status, body = answers[-1]
            assert status == 503 and "read-only" in body["reason"]
            assert {code for code, _ in answers} <= {200, 503}
            assert post_webhook(server.base, sms_params("not stored"))[0] == 503
        finally:
            admin.execute(f'ALTER DATABASE "{database}" RESET default_transaction_read_only')
            restart_connections()
        wait_for(lambda: health(server.base)[0] == 200, 20, "/healthz to recover")
        assert post_webhook(server.base, sms_params("stored"))[0] == 200
    store = Store(pg_url)
    assert {m["body"] for m in store.queued_messages()} == {"stored"}
    store.close()
    assert "Traceback" not in server.log.read_text()


@pytest.fixture
def reading_role(pg_url):
    """A role that may read the gateway's tables and write none (a plan over its storage limit has its
    writes revoked; an operator may hand over a read-only role's credentials): its URL."""
    Store(pg_url).init_schema()
    role, password = f"gw_{secrets.token_hex(4)}", secrets.token_hex(12)
    with psycopg.connect(pg_url, autocommit=True) as admin:
        schema = admin.execute("SELECT current_schema()").fetchone()[0]
        try:
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), password))
        except psycopg.errors.InsufficientPrivilege:
            pytest.skip("the test server's user may not create roles")
        for grant in ("GRANT USAGE ON SCHEMA {} TO {}", "GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}"):
            admin.execute(sql.SQL(grant).format(sql.Identifier(schema), sql.Identifier(role)))
    parts = urlsplit(pg_url)
    yield urlunsplit(parts._replace(netloc=f"{role}:{password}@{parts.netloc.rpartition('@')[2]}"))
    postgres_backend.close_all_pools()
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.mark.parametrize("body", ["hello", "STOP"])
def test_a_role_that_may_not_write_gets_503_not_500(reading_role, gateway_log, body):
    """The server refuses the role's writes: the webhook answers 503 (Twilio retries), /healthz says the
    database cannot write and why, and the log has one line, no traceback and no password."""
    app = create_app({"DATABASE_URL": reading_role, "TWILIO_AUTH_TOKEN": TOKEN})
    try:
        client = app.test_client()
        answer = TwilioSender(client).sms(body)
        assert answer.status_code == 503
        assert answer.text == "503 Service Unavailable: the database cannot store records right now; retry later\n"
        health = client.get("/healthz")
        assert health.status_code == 503
        assert health.json["database"] == "cannot write"
        assert health.json["reason"].startswith("permission denied for table ")
    finally:
        services.of(app).store.close()
    assert "Traceback" not in gateway_log.text and "permission denied for table" in gateway_log.text
    assert reading_role.split("@")[0].rpartition(":")[2] not in gateway_log.text
