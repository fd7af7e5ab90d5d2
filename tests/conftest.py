"""Shared fixtures: an app on a real database (an SQLite file and a PostgreSQL
schema: ``db_url`` runs each test on both), its client, a CLI runner, a helper
that signs requests exactly like Twilio, and real gunicorn servers."""

from __future__ import annotations

import http.client
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from click.testing import CliRunner

from gateway import create_app
from gateway.core import keys
from gateway.messaging import services
from gateway.store import Store
from gateway.store import postgres as postgres_backend
from gateway.web import signature

from . import postgres
from .database import RawDatabase
from .fake_twilio import FakeTwilio

ROOT = Path(__file__).resolve().parent.parent
# What a run leaves for people to look at (the console's screenshots); CI can keep the folder.
ARTEFACTS = Path(os.environ.get("GATEWAY_TEST_ARTEFACTS") or ROOT / "test-artefacts")
TOKEN = "0123456789abcdef0123456789abcdef"
TWILIO_NUMBER = "+15005550006"
OTHER_TWILIO_NUMBER = "+15005550007"
SENDER = "+14155550100"
FORM = "application/x-www-form-urlencoded"
ENV_PREFIXES = ("GATEWAY_", "TWILIO_", "DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR")
ACCOUNT = "AC" + "a" * 32
AGENT_SECRET = "s3cret-for-the-agent-0123456789"
SERVICE = "MG" + "b" * 32
NO_SETTINGS = ROOT / "tests" / "support" / "no_settings.toml"


BACKENDS = ("sqlite", "postgresql")
POSTGRES = pytest.StashKey[postgres.Server]()


def pytest_configure(config: pytest.Config) -> None:
    """Find or start the PostgreSQL server before anything runs (see tests/postgres.py)."""
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


def child_environ(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a gateway process a test starts: this one's without the gateway's settings, and with
    the tests' empty operator file; then ``extra``."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIXES)}
    return {**inherited, "GATEWAY_CONFIG_FILE": str(NO_SETTINGS), **(extra or {})}


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


def outbound_config(db_url: str, fake: FakeTwilio, senders: str = f"{TWILIO_NUMBER},+15005550007,{SERVICE}") -> dict:
    """App settings with sending enabled against ``fake``."""
    return {
        "DATABASE_URL": db_url,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_API_BASE": fake.base_url,
        "SENDERS_OVERRIDE": senders,
        "STATUS_CALLBACK_URL": "https://gw.example.com/twilio/status",
    }


# Three Twilio accounts: the main one (today's single-account settings) and two subaccounts.
BRAND_ACCOUNT, REGION_ACCOUNT = "AC" + "b" * 32, "AC" + "c" * 32
BRAND_TOKEN, REGION_TOKEN, REGION_NEXT_TOKEN = "b" * 32, "c" * 32, "d" * 32
BRAND_NUMBER, REGION_NUMBER = OTHER_TWILIO_NUMBER, "+15005550008"


def three_accounts(tmp_path: Path) -> dict[str, str]:
    """Environment for three accounts: a configuration file naming each subaccount's token files.

    The main account is ACCOUNT with TOKEN and TWILIO_NUMBER; ``brand`` owns
    BRAND_NUMBER; ``region`` owns REGION_NUMBER and is mid-rotation (two tokens).
    """
    for name, token in (("brand", BRAND_TOKEN), ("region", REGION_TOKEN), ("region-next", REGION_NEXT_TOKEN)):
        (tmp_path / f"{name}.token").write_text(token + "\n")
    path = tmp_path / "accounts.toml"
    path.write_text(
        f'''[accounts.brand]
account_sid = "{BRAND_ACCOUNT}"
auth_token_file = "{tmp_path / "brand.token"}"
senders = {{ dev = ["{BRAND_NUMBER}"] }}

[accounts.region]
account_sid = "{REGION_ACCOUNT}"
auth_token_file = "{tmp_path / "region.token"}"
secondary_auth_token_file = "{tmp_path / "region-next.token"}"
senders = {{ dev = ["{REGION_NUMBER}"] }}
'''
    )
    return {
        "GATEWAY_CONFIG_FILE": str(path),
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "GATEWAY_SENDERS": TWILIO_NUMBER,
    }


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


@dataclass
class TwoAccounts:
    """Records of two subaccounts (brand and region) in one gateway, and keys limited to each or to none."""

    app: Any
    keys: dict[str, str]  # who -> key: brand_auditor, brand_admin, brand_sender, region_auditor, everyone
    users: dict[str, str]  # brand_stop, brand_plea, region_stop, region_plea -> the person's number
    candidates: dict[str, int]  # brand, region -> the id of its revocation candidate

    # What must never appear in an answer to a key limited to brand.
    @property
    def region_marks(self) -> tuple[str, ...]:
        return (REGION_NUMBER, REGION_ACCOUNT, self.users["region_stop"], self.users["region_plea"])


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


def sign(url: str, params: list[tuple[str, str]], token: str = TOKEN) -> str:
    """The X-Twilio-Signature Twilio would send for ``params`` posted to ``url``."""
    return signature.sign(url, params, token)


def sms_params(
    body: str,
    sender: str = SENDER,
    to: str = TWILIO_NUMBER,
    sid: str | None = None,
    account: str | None = "AC" + "1" * 32,
    **extra: str,
):
    """The form fields of an inbound SMS webhook, as Twilio sends them (``account=None``: no AccountSid)."""
    sid = sid or new_sid()
    return [
        ("ToCountry", "US"),
        ("SmsMessageSid", sid),
        ("NumMedia", "0"),
        ("SmsSid", sid),
        ("SmsStatus", "received"),
        ("Body", body),
        ("To", to),
        ("NumSegments", "1"),
        ("MessageSid", sid),
        *([("AccountSid", account)] if account else []),
        ("From", sender),
        ("ApiVersion", "2010-04-01"),
        *extra.items(),
    ]


def new_sid() -> str:
    return "SM" + secrets.token_hex(16)


class TwilioSender:
    """Posts webhooks through the Flask test client, signed like Twilio."""

    def __init__(self, client, url: str = "http://localhost/twilio/sms", token: str = TOKEN):
        self.client, self.url, self.token = client, url, token

    def post(self, params, url: str | None = None, token: str | None = None, headers=None, sign_url=None):
        url = url or self.url
        signature = sign(sign_url or url, params, token or self.token)
        scheme, rest = url.split("://", 1)
        host, _, path = rest.partition("/")
        return self.client.post(
            "/" + path,
            data=urlencode(params),
            content_type=FORM,
            base_url=f"{scheme}://{host}",
            headers={"X-Twilio-Signature": signature, **(headers or {})},
        )

    def sms(self, body: str, sender: str = SENDER, to: str = TWILIO_NUMBER, sid: str | None = None, **extra):
        return self.post(sms_params(body, sender, to, sid, **extra))


@pytest.fixture
def twilio(client) -> TwilioSender:
    return TwilioSender(client)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """A real gunicorn serving ``gateway.wsgi:app`` on loopback, configured as the Procfile does (``config``: another
    settings file; ``threads``: threads per worker, which makes them gthread workers)."""

    def __init__(
        self,
        tmp_path: Path,
        workers: int = 2,
        env: dict | None = None,
        preload: bool = True,
        db_url: str | None = None,
        name: str = "gunicorn",
        config: bool | str = True,
        threads: int = 1,
    ):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.db_url = db_url or f"sqlite:///{tmp_path / 'live.db'}"
        self.log = tmp_path / f"{name}.log"
        full_env = child_environ(
            {
                "TWILIO_AUTH_TOKEN": TOKEN,
                "DATABASE_URL": self.db_url,
                "GATEWAY_INSTANCE_PATH": str(tmp_path / "instance"),
                "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / f"{name}-metrics"),
                **(env or {}),
            }
        )
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "gateway.wsgi:app"]
                + (
                    ["--config", config if isinstance(config, str) else "python:gateway.gunicorn_conf"]
                    if config
                    else []
                )
                + ["--bind", f"127.0.0.1:{self.port}"]
                + ["--workers", str(workers), "--timeout", "60"]
                + (["--threads", str(threads)] if threads > 1 else [])  # gunicorn's gthread workers
                + (["--preload"] if preload else []),
                cwd=ROOT,
                env=full_env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill() takes the workers too
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=2):
                    break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("gunicorn did not start:\n" + self.log.read_text()) from None
                time.sleep(0.1)

    def __enter__(self) -> Gunicorn:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def kill(self) -> None:
        """kill -9 the master and every worker at once, as a crashed machine would stop."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def gunicorn(tmp_path: Path, db_url: str) -> Iterator[Gunicorn]:
    server = Gunicorn(tmp_path, workers=2, db_url=db_url)
    yield server
    server.stop()


def worker(db_url: str, agent_url: str, tmp_path: Path, name: str, **extra: str) -> subprocess.Popen:
    """A real ``gateway worker`` process delivering to ``agent_url``; its output goes to ``<name>.log``."""
    env = child_environ(
        {
            "DATABASE_URL": db_url,
            "TWILIO_AUTH_TOKEN": TOKEN,
            "GATEWAY_INSTANCE_PATH": str(tmp_path / "instance"),
            "GATEWAY_AGENT_URL": agent_url,
            "GATEWAY_AGENT_SECRET": AGENT_SECRET,
            "GATEWAY_AGENT_BACKOFF_SECONDS": "0.05",
            "GATEWAY_LOG_LEVEL": "WARNING",
            **extra,
        }
    )
    with (tmp_path / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "worker", "--interval", "0.05"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop_half_way_through_a_stop(store, frozen: threading.Event, wake: threading.Event) -> None:
    """What an instance holds when it stops half-way through a STOP (its VM paused, its process stopped, its
    network cut): SENDER's lock, the ledger head's, and a write not yet sent; ``frozen`` is set once they are
    held, and they are held until ``wake``. The transaction then commits if it still can."""
    with store.backend.write() as tx:
        tx.lock_numbers(SENDER)
        tx.one("SELECT hash FROM ledger_head WHERE id = 1" + tx.for_update)
        tx.defer(
            "INSERT INTO opt_outs (number, twilio_number, opted_out_at, source) VALUES (?, ?, ?, 'frozen')",
            (SENDER, TWILIO_NUMBER, "2026-12-02T00:00:00Z"),
        )
        frozen.set()
        wake.wait(60)


_STOPPED_WRITER = """
import os, signal, sys
from gateway.store import Store
store = Store(sys.argv[1])
with store.backend.write() as tx:
    tx.execute(
        "INSERT INTO opt_outs (number, twilio_number, opted_out_at, source) VALUES (?, ?, ?, 'frozen')",
        (sys.argv[2], sys.argv[3], "2026-12-02T00:00:00Z"),
    )
    print("held", flush=True)
    os.kill(os.getpid(), signal.SIGSTOP)
print("committed", flush=True)
"""


@contextmanager
def stopped_writer(url: str) -> Iterator[Callable[[], None]]:
    """Another gateway process stopped half-way through a write (a command suspended at a terminal, a frozen
    process), holding the database's writer lock with an opt-out of SENDER not yet committed. Yields a function
    that lets it go on, and returns once it has committed."""
    with subprocess.Popen(
        [sys.executable, "-c", _STOPPED_WRITER, url, SENDER, TWILIO_NUMBER], stdout=subprocess.PIPE, text=True, cwd=ROOT
    ) as writer:

        def resume() -> None:
            os.kill(writer.pid, signal.SIGCONT)
            assert writer.stdout.readline() == "committed\n"
            assert writer.wait(10) == 0

        try:
            assert writer.stdout.readline() == "held\n"
            yield resume
        finally:
            writer.kill()


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def post_webhook(
    base: str, params, path: str = "/twilio/sms", timeout: float = 60, token: str = TOKEN
) -> tuple[int, str]:
    """POST a webhook signed like Twilio to a live server; (status, body), or (0, reason) if unreachable.

    An answer cut off mid-way (the server killed after its headers) is no answer too: Twilio retries it.
    """
    url = base + path
    request = urllib.request.Request(
        url, data=urlencode(params).encode(), method="POST", headers={"X-Twilio-Signature": sign(url, params, token)}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (OSError, http.client.HTTPException) as exc:
        return 0, str(exc) or type(exc).__name__
