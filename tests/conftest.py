"""Shared fixtures: an app on a real database (an SQLite file and a PostgreSQL
schema: ``db_url`` runs each test on both), its client, a CLI runner, the fake
Twilio, a webhook sender, real gunicorn servers. What is not a fixture (values,
request builders, servers, frozen writers) is in ``tests/support/``."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway import create_app
from gateway.core import keys
from gateway.messaging import services
from gateway.store import Store
from gateway.store import postgres as postgres_backend

from .support import postgres
from .support.accounts import TwoAccounts, three_accounts
from .support.constants import (
    ACCOUNT,
    BACKENDS,
    BRAND_ACCOUNT,
    BRAND_NUMBER,
    BRAND_TOKEN,
    ENV_PREFIXES,
    NO_SETTINGS,
    REGION_ACCOUNT,
    REGION_NUMBER,
    REGION_TOKEN,
    TOKEN,
)
from .support.database import RawDatabase
from .support.fake_twilio import FakeTwilio
from .support.servers import Gunicorn
from .support.webhooks import TwilioSender, sms_params

POSTGRES = pytest.StashKey[postgres.Server]()


def pytest_configure(config: pytest.Config) -> None:
    """Find or start the PostgreSQL server before anything runs (see tests/support/postgres.py)."""
    config.stash[POSTGRES] = postgres.find_or_start()


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [f"postgresql: {config.stash[POSTGRES].how}, database {config.stash[POSTGRES].dbname}"]


def pytest_unconfigure(config: pytest.Config) -> None:
    server = config.stash.get(POSTGRES, None)
    if server is not None:
        server.finish()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never see the developer's own settings, the checkout's config/gateway.toml or an instance folder."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GATEWAY_CONFIG_FILE", str(NO_SETTINGS))
    monkeypatch.setenv("GATEWAY_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.chdir(tmp_path)  # no config/gateway.toml here, whatever a test's environ says


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'gateway.db'}"


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty schema in the run's PostgreSQL database."""
    server = request.config.stash[POSTGRES]
    schema, url = server.new_schema()
    yield url
    postgres_backend.close_all_pools()  # also the pools of stores a test forgot to close
    server.drop_schema(schema)


@dataclass
class Pooled:
    """A fresh database reached through PgBouncer in transaction mode (``url``) and directly (``direct``)."""

    url: str
    direct: str
    pooler: postgres.Pooler


@pytest.fixture
def pooled(request: pytest.FixtureRequest) -> Iterator[Pooled]:
    """A fresh database on the run's server, and PgBouncer in transaction mode in front of it (two server
    connections, so that clients take turns on them)."""
    server = request.config.stash[POSTGRES]
    name, direct = server.new_database()
    pooler = postgres.Pooler(server.admin_url)
    try:
        yield Pooled(pooler.url(name), direct, pooler)
    finally:
        postgres_backend.close_all_pools()
        pooler.stop()
        server.drop_database(name)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh database on each backend in turn: the test runs once on SQLite, once on PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def db_kind(db_url: str) -> str:
    return "postgresql" if db_url.startswith("postgresql") else "sqlite"


@pytest.fixture
def cli_env(db_url: str) -> dict[str, str]:
    """Environment for CLI commands on a database that ``gateway init-db`` has set up."""
    store = Store(db_url)
    store.init_schema()
    store.close()
    return {"DATABASE_URL": db_url}


@pytest.fixture
def raw(db_url: str) -> RawDatabase:
    """The test database, behind the gateway's back."""
    return RawDatabase(db_url)


@pytest.fixture
def app_config(db_url: str) -> dict:
    """Overrides for ``create_app``; tests may add to it before ``app`` is built."""
    return {"DATABASE_URL": db_url, "TWILIO_AUTH_TOKEN": TOKEN}


@pytest.fixture
def app(app_config: dict):
    app = create_app(app_config)
    yield app
    services.of(app).store.close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def store(app):
    return services.of(app).store


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    """A fake Twilio REST API on loopback."""
    server = FakeTwilio(ACCOUNT, TOKEN)
    yield server
    server.close()


@pytest.fixture
def outbound(app):
    """The app's sending path, retrying at once (tests need no real backoff)."""
    sender = services.of(app).outbound
    sender.backoff_base = 0.01
    return sender


@pytest.fixture
def accounts_app(tmp_path, monkeypatch, db_url):
    """Three accounts (the main one and two subaccounts) sending to one fake Twilio that knows each token."""
    fake = FakeTwilio(ACCOUNT, TOKEN, {BRAND_ACCOUNT: BRAND_TOKEN, REGION_ACCOUNT: REGION_TOKEN})
    for name, value in three_accounts(tmp_path).items():
        monkeypatch.setenv(name, value)
    app = create_app(
        {
            "DATABASE_URL": db_url,
            "TWILIO_API_BASE": fake.base_url,
            "STATUS_CALLBACK_URL": "https://gw.example.com/twilio/status",
        }
    )
    yield app, fake
    services.of(app).store.close()
    fake.close()


@pytest.fixture
def two_accounts(accounts_app) -> TwoAccounts:
    app, _ = accounts_app
    found = services.of(app)
    users = {
        "brand_stop": "+14155550111",
        "brand_plea": "+14155550112",
        "region_stop": "+14155550121",
        "region_plea": "+14155550122",
    }
    webhook = TwilioSender(app.test_client())
    for account, number, token, prefix in (
        (BRAND_ACCOUNT, BRAND_NUMBER, BRAND_TOKEN, "brand"),
        (REGION_ACCOUNT, REGION_NUMBER, REGION_TOKEN, "region"),
    ):
        for body, who in (("STOP", "stop"), ("please stop texting me", "plea")):
            params = sms_params(body, sender=users[f"{prefix}_{who}"], to=number, account=account)
            assert webhook.post(params, token=token).status_code == 200
        found.outbound.queue("+14155550199", content=f"hello from {prefix}", agent_number=number)
    made = {}
    for who, role, accounts in (
        ("brand_auditor", "auditor", [BRAND_ACCOUNT]),
        ("brand_admin", "admin", [BRAND_ACCOUNT]),
        ("brand_sender", "sender", [BRAND_ACCOUNT]),
        ("region_auditor", "auditor", [REGION_ACCOUNT]),
        ("everyone", "admin", None),
    ):
        made[who] = keys.new_key()
        found.store.add_api_key(keys.hash_key(made[who]), role, who, accounts)
    candidates = {
        "brand" if row["twilio_number"] == BRAND_NUMBER else "region": row["id"]
        for row in found.store.revocation_candidates()
    }
    return TwoAccounts(app, made, users, candidates)


@pytest.fixture
def gateway_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """``caplog`` that also sees the gateway's own log lines (its logger stops propagating once the app
    has given it a handler), at every level."""
    logger = logging.getLogger("gateway")
    level, propagate = logger.level, logger.propagate
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # caplog's handler is on the root logger too: each line once
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.setLevel(level)
    logger.propagate = propagate


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def twilio(client) -> TwilioSender:
    return TwilioSender(client)


@pytest.fixture
def gunicorn(tmp_path: Path, db_url: str) -> Iterator[Gunicorn]:
    server = Gunicorn(tmp_path, workers=2, db_url=db_url)
    yield server
    server.stop()
