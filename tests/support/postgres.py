"""A real PostgreSQL server for the tests, found or started in this order:

1. ``GATEWAY_TEST_POSTGRES_URL`` (a URL of a role that may create databases);
2. a server answering on 127.0.0.1:5432 that lets the ``postgres`` role (or
   the current user) in without a password;
3. a private cluster in a temporary folder, from Debian's ``postgresql``
   package (installed with apt-get when missing), run as the ``postgres``
   user when the tests run as root (PostgreSQL refuses root), stopped at the end.

Each test run gets a throwaway database; each test a schema of its own in
it (``search_path`` set through the URL), dropped afterwards. The fault
tests always get a private cluster, since they stop and start it.

The pooler tests put PgBouncer in transaction mode (Debian's ``pgbouncer``
package, installed with apt-get when missing) in front of that server.
"""

from __future__ import annotations

import getpass
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _can_create_databases(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
            row = conn.execute("SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user").fetchone()
            return bool(row and row[0])
    except psycopg.Error:
        return False


def with_database(url: str, dbname: str, schema: str | None = None) -> str:
    """``url`` pointing at ``dbname`` (and, with ``schema``, at that schema through search_path)."""
    parts = urlsplit(url)
    query = f"options={quote(f'-csearch_path={schema}')}" if schema else ""
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, query, ""))


def redacted(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc and ":" in netloc.split("@", 1)[0]:
        user = netloc.split("@", 1)[0].split(":", 1)[0]
        netloc = f"{user}:***@{netloc.split('@', 1)[1]}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _sudo() -> list[str]:
    return [] if os.geteuid() == 0 else ["sudo"]


# apt-get waits this long for another apt (unattended upgrades on a new machine) instead of failing at once.
APT_LOCK_WAIT = ("-o", "DPkg::Lock::Timeout=600")


def apt_install(package: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*_sudo(), "apt-get", *APT_LOCK_WAIT, "update", "-qq"], check=True, env=env)
    subprocess.run([*_sudo(), "apt-get", *APT_LOCK_WAIT, "install", "-y", "-qq", package], check=True, env=env)


def _unprivileged(root: Path) -> list[str]:
    """The prefix that runs a server that refuses root (PostgreSQL, PgBouncer) as ``postgres`` (else
    ``nobody``), owning ``root``, when the tests run as root; else nothing."""
    if os.geteuid() != 0:
        return []
    try:
        owner = pwd.getpwnam("postgres")
    except KeyError:  # Debian's packages make it; a server installed otherwise may not have
        owner = pwd.getpwnam("nobody")
    os.chmod(root, 0o755)
    os.chown(root, owner.pw_uid, owner.pw_gid)
    return ["runuser", "-u", owner.pw_name, "--"]


def bindir() -> Path:
    """The newest PostgreSQL server binaries on this machine, installing Debian's package if there are none."""
    for attempt in range(2):
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
        if found:
            return Path(found[-1]).parent
        if shutil.which("initdb"):
            return Path(shutil.which("initdb")).parent
        if attempt == 0:
            apt_install("postgresql")
    raise RuntimeError("no PostgreSQL server binaries (initdb) found, even after apt-get install postgresql")


def pgbouncer() -> str:
    """The PgBouncer program, installing Debian's package if there is none."""
    for attempt in range(2):
        found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/local/sbin")
        if found:
            return found
        if attempt == 0:
            apt_install("pgbouncer")
    raise RuntimeError("no pgbouncer found, even after apt-get install pgbouncer")


class Cluster:
    """A private PostgreSQL cluster in a temporary folder, on a free loopback port; with ``primary``, a
    streaming standby of that cluster (a base backup of it that starts in recovery, read-only until
    :meth:`promote`)."""

    def __init__(self, primary: Cluster | None = None) -> None:
        self.bin = bindir()
        self.root = Path(tempfile.mkdtemp(prefix="gateway-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as = _unprivileged(self.root)
        if primary is None:
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        else:
            where = ("-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres")
            self._run("pg_basebackup", "-D", str(self.data), *where, "-R", "-X", "stream", "-c", "fast")
        self.start()

    def promote(self) -> None:
        """End recovery: the standby becomes a primary that writes."""
        self._run("pg_ctl", "-D", str(self.data), "-w", "promote")

    def _run(self, tool: str, *args: str) -> None:
        result = subprocess.run([*self._as, str(self.bin / tool), *args], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed: {result.stderr.strip() or result.stdout.strip()}")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        result = subprocess.run(
            [*self._as, str(self.bin / "pg_ctl"), "-D", str(self.data), "status"], capture_output=True
        )
        return result.returncode == 0

    def destroy(self) -> None:
        if self.running():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class Pooler:
    """PgBouncer in transaction mode in front of the server of ``admin_url``, on a free loopback port, with
    ``pool_size`` server connections per database: fewer than its clients, so they take turns on them, as
    behind a platform's pooled URL; ``settings``: more of pgbouncer.ini's. Clients log in as the server's
    user without a password."""

    def __init__(self, admin_url: str, pool_size: int = 2, **settings: int) -> None:
        server = psycopg.conninfo.conninfo_to_dict(admin_url)
        self.user = server.get("user") or getpass.getuser()
        self.root = Path(tempfile.mkdtemp(prefix="gateway-pgbouncer-"))
        self.port = _free_port()
        target = " ".join(
            f"{key}={server[key]}" for key in ("host", "port", "user", "password") if server.get(key) is not None
        )
        (self.root / "users.txt").write_text(f'"{self.user}" ""\n')
        (self.root / "pgbouncer.ini").write_text(
            f"[databases]\n* = {target}\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {self.port}\n"
            f"unix_socket_dir =\nauth_type = trust\nauth_file = {self.root / 'users.txt'}\n"
            f"pool_mode = transaction\ndefault_pool_size = {pool_size}\nmax_client_conn = 200\n"
            f"logfile = {self.root / 'pgbouncer.log'}\n"
            + "".join(f"{key} = {value}\n" for key, value in settings.items())
        )
        prefix = _unprivileged(self.root)
        self.process = subprocess.Popen(
            [*prefix, pgbouncer(), str(self.root / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = self.root / "pgbouncer.log"
                    said = log.read_text().strip() if log.exists() else ""
                    self.stop()
                    raise RuntimeError(f"pgbouncer did not start on port {self.port}: {said}") from None
                time.sleep(0.05)

    def url(self, dbname: str) -> str:
        """A URL of database ``dbname`` through the pooler."""
        return f"postgresql://{quote(self.user)}@127.0.0.1:{self.port}/{dbname}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


class Server:
    """The server the tests use, a throwaway database on it, and a schema per test."""

    def __init__(self, admin_url: str, how: str, cluster: Cluster | None = None):
        self.admin_url, self.how, self.cluster = admin_url, how, cluster
        self.dbname = f"gateway_test_{secrets.token_hex(4)}"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.dbname}"')
        self.url = with_database(admin_url, self.dbname)
        self._schemas = 0

    def new_schema(self) -> tuple[str, str]:
        """A fresh, empty schema: (its name, a URL that uses it)."""
        self._schemas += 1
        name = f"t{self._schemas}_{secrets.token_hex(3)}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        return name, with_database(self.admin_url, self.dbname, name)

    def new_database(self) -> tuple[str, str]:
        """A fresh, empty database on the server (for a client that cannot set search_path, as through
        PgBouncer): (its name, its URL)."""
        self._schemas += 1
        name = f"{self.dbname}_{self._schemas}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name, with_database(self.admin_url, name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop_schema(self, name: str) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')

    def finish(self) -> None:
        try:
            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
        finally:
            if self.cluster is not None:
                self.cluster.destroy()


def find_or_start() -> Server:
    """The server to test against, in the order the module docstring gives."""
    given = os.environ.get("GATEWAY_TEST_POSTGRES_URL")
    if given:
        if not _can_create_databases(given):
            raise RuntimeError(
                f"GATEWAY_TEST_POSTGRES_URL={redacted(given)}: cannot connect, or the role may not create databases"
            )
        return Server(given, f"GATEWAY_TEST_POSTGRES_URL ({redacted(given)})")
    for user in dict.fromkeys(("postgres", getpass.getuser())):
        url = f"postgresql://{user}@127.0.0.1:5432/postgres"
        if _can_create_databases(url):
            return Server(url, f"the server on 127.0.0.1:5432 (as {user})")
    cluster = Cluster()
    return Server(cluster.url, f"a private cluster started from {cluster.bin} on port {cluster.port}", cluster)
