"""Several gateway instances and workers on one PostgreSQL database, and the faults they must survive.

Real gunicorn instances (separate processes, separate ports), real
``gateway worker`` processes, a real HTTP agent, a real PostgreSQL server;
for the outage test a private cluster that the test stops and starts.
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from gateway.cli import cli
from gateway.store import Store, StoreUnavailable
from gateway.store.migrations.postgres import VERSION as POSTGRES_VERSION
from gateway.web.health import WRITE_TRUSTED_SECONDS

from .store.conftest import process
from .support import postgres
from .support.constants import AGENT_SECRET, ROOT, SENDER
from .support.fake_agent import FakeAgent
from .support.servers import Gunicorn, child_environ, wait_for, worker
from .support.webhooks import new_sid, post_webhook, sms_params
from .support.writers import stop_half_way_through_a_stop, stopped_writer

pytestmark = pytest.mark.slow

KEYWORDS = {"STOP": "stop", "Stop!": "stop", "unsubscribe": "stop", "START": "start", "yes": "start", "HELP": "help"}


def start_together(*makers):
    """Start servers at once (so their start-ups, migrations included, race)."""
    with ThreadPoolExecutor(len(makers)) as pool:
        return list(pool.map(lambda make: make(), makers))


def expected_queue(plan: list[tuple[str, str]]) -> list[str]:
    """The MessageSids of a pair's plain messages that arrive while the pair may be messaged, in order."""
    opted_out, queued = False, []
    for body, sid in plan:
        kind = KEYWORDS.get(body)
        opted_out = True if kind == "stop" else False if kind == "start" else opted_out
        if kind is None and not opted_out:
            queued.append(sid)
    return queued


def dropped_at_delivery(store: Store) -> set[str]:
    return {
        e["message_sid"] for e in store.events() if e["event"] == "dropped" and (e["detail"] or {}).get("at_delivery")
    }


def test_two_instances_and_two_workers_on_one_database(tmp_path, pg_url, runner):
    agent = FakeAgent(AGENT_SECRET)
    a, b = start_together(
        lambda: Gunicorn(tmp_path, workers=2, db_url=pg_url, name="a"),
        lambda: Gunicorn(tmp_path, workers=2, db_url=pg_url, name="b"),
    )
    workers = [worker(pg_url, agent.url, tmp_path, f"worker{n}") for n in (1, 2)]
    rng = random.Random(20261130)
    pairs = [(f"+1415555{n:04d}", to) for n in range(40) for to in ("+15005550006", "+15005550007")]
    plans = {
        pair: [(rng.choice([*KEYWORDS, "hello", "what time is it?", "ok"]), new_sid()) for _ in range(8)]
        for pair in pairs
    }

    def run_pair(pair):
        sender, to = pair
        answers = []
        for body, sid in plans[pair]:
            params = sms_params(body, sender=sender, to=to, sid=sid)
            targets = [a.base, b.base]
            rng_local = random.Random(sid)
            rng_local.shuffle(targets)
            with ThreadPoolExecutor(2) as both:  # Twilio's retry lands on the other instance, at the same time
                answers.append(list(both.map(lambda base, params=params: post_webhook(base, params), targets)))
        return pair, answers

    try:
        with ThreadPoolExecutor(16) as pool:
            outcomes = dict(pool.map(run_pair, pairs))
        store = Store(pg_url)
        wait_for(lambda: not store.outbox("pending"), 90, "the workers to empty the queue")
        time.sleep(0.3)  # a delivery in flight when the queue emptied
    finally:
        for proc in workers:
            proc.terminate()
            proc.wait(15)
        a.stop()
        b.stop()
        agent.close()

    statuses = Counter(
        status for answers in outcomes.values() for pair_answers in answers for status, _ in pair_answers
    )
    assert statuses == Counter({200: 2 * sum(len(plan) for plan in plans.values())}), statuses  # zero 5xx
    for answers in outcomes.values():
        for (_, first), (_, second) in answers:
            assert first == second  # both instances gave the first processing's TwiML

    sids = [sid for plan in plans.values() for _, sid in plan]
    with psycopg.connect(pg_url) as conn:
        processed = Counter(row[0] for row in conn.execute("SELECT message_sid FROM inbound_messages"))
    assert set(processed) == set(sids) and set(processed.values()) == {1}  # each MessageSid processed once
    events = store.events()
    logged = Counter(e["message_sid"] for e in events if e["message_sid"])
    assert max(logged.values()) == 1  # and logged at most once

    current = {(r["number"], r["twilio_number"]) for r in store.current_opt_outs()}
    for pair, plan in plans.items():
        last = next((KEYWORDS[body] for body, _ in reversed(plan) if KEYWORDS.get(body) in ("stop", "start")), None)
        assert (pair in current) == (last == "stop"), (pair, plan)

    verified = runner.invoke(cli, ["audit", "verify"], env={"DATABASE_URL": pg_url})
    assert verified.exit_code == 0 and verified.output.startswith(f"ledger intact: {len(events)} events checked")

    ids = agent.delivery_ids()
    assert len(ids) == len(set(ids))  # every delivery once, by whichever worker
    received = defaultdict(list)
    for message in agent.received:
        received[(message["from"], message["to"])].append(message["message_sid"])
    dropped = dropped_at_delivery(store)
    for pair, plan in plans.items():
        queued = expected_queue(plan)
        assert received[pair] == [sid for sid in queued if sid not in dropped], pair  # in order, none missing
        assert set(received[pair]) | (dropped & set(queued)) == set(queued)
    store.close()
    for server in (a, b):
        log = server.log.read_text()
        assert "Traceback" not in log and "deadlock" not in log.lower()


@pytest.fixture(scope="module")
def cluster():
    """A private PostgreSQL cluster this module may stop and start."""
    server = postgres.Cluster()
    yield server
    server.destroy()


@pytest.fixture
def cluster_url(cluster) -> str:
    name = f"gateway_fault_{new_sid()[2:10]}"
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return postgres.with_database(cluster.url, name)


def test_database_outage_mid_burst(tmp_path: Path, cluster, cluster_url):
    """PostgreSQL stops (fast shutdown) and comes back in the middle of a burst: 503s meanwhile, never a 200
    for a message that was not stored, every acknowledged STOP kept, the chain intact, the worker resumes,
    and nothing needs a restart."""
    agent = FakeAgent(AGENT_SECRET)
    gateway = Gunicorn(
        tmp_path, workers=2, db_url=cluster_url, name="gw", env={"GATEWAY_DATABASE_POOL_TIMEOUT_SECONDS": "2"}
    )
    # A batch the outage cut short stays leased until its lease ends: keep that short here. And the worker
    # waits for a connection at most 1 s, well inside the 3 s outage, so it surely sees the outage.
    delivery = worker(
        cluster_url,
        agent.url,
        tmp_path,
        "worker",
        GATEWAY_LOG_LEVEL="INFO",
        GATEWAY_AGENT_LEASE_SECONDS="5",
        GATEWAY_DATABASE_POOL_TIMEOUT_SECONDS="1",
    )
    # The outage is of a running worker: one that cannot open the database at start stops, by design.
    started = tmp_path / "worker.log"
    wait_for(lambda: "worker: not sending SMS" in started.read_text(), 60, "the worker to start")
    messages = [
        sms_params("STOP" if n % 3 == 0 else f"message {n}", sender=f"+1415556{n % 50:04d}", sid=new_sid())
        for n in range(600)
    ]
    health_during: list[int] = []

    def outage():
        cluster.stop("fast")
        time.sleep(0.5)
        health_during.append(_health(gateway.base))
        time.sleep(2.5)
        cluster.start()

    try:
        answers = burst(gateway.base, messages, outage, midway=150)  # a quarter answered, however fast
        # After the outage: everything recovers by itself.
        wait_for(lambda: _health(gateway.base) == 200, 30, "/healthz to answer 200 again")
        # One more message after the outage: the worker must deliver something once the database is back.
        messages.append(sms_params("after the outage", sender="+14155569999", sid=new_sid()))
        retry_unacknowledged(gateway.base, messages, answers)
        store = Store(cluster_url)
        wait_for(lambda: not store.outbox("pending"), 60, "the worker to deliver what waited")
    finally:
        delivery.terminate()
        delivery.wait(15)
        gateway.stop()
        agent.close()

    statuses = Counter(status for tries in answers.values() for status, _ in tries)
    assert statuses[503] > 0, f"the outage was not seen: {statuses}"
    assert set(statuses) <= {200, 503}, statuses  # a clear 503, never a 500 or a dropped connection
    assert health_during == [503]
    assert all(tries[-1][0] == 200 for tries in answers.values())  # every message stored in the end
    with psycopg.connect(cluster_url) as conn:
        stored = {row[0] for row in conn.execute("SELECT message_sid FROM inbound_messages")}
    acknowledged = {sid for sid, tries in answers.items() if any(status == 200 for status, _ in tries)}
    assert acknowledged <= stored  # no 200 for a message that was not stored
    stops = {dict(p)["MessageSid"] for p in messages if dict(p)["Body"] == "STOP"}
    opt_out_sids = {e["message_sid"] for e in store.events() if e["event"] == "opt_out"}
    assert stops <= opt_out_sids  # every acknowledged STOP is on record
    assert store.verify_ledger().ok
    plain = {dict(p)["MessageSid"] for p in messages if dict(p)["Body"] != "STOP"}
    delivered = {m["message_sid"] for m in agent.received}
    dropped = dropped_at_delivery(store)
    queued = {row["message_sid"] for row in store.outbox()}
    assert queued <= plain and queued == delivered | (dropped & queued)  # the worker resumed and finished
    store.close()
    log = gateway.log.read_text()
    assert "Traceback" not in log
    worker_log = (tmp_path / "worker.log").read_text()
    assert "database unavailable, waiting for it" in worker_log and "database available again" in worker_log


@pytest.fixture
def replicated():
    """A private primary and its streaming standby, replicating synchronously: a commit returns only once
    the standby has it too (``synchronous_standby_names``)."""
    primary = postgres.Cluster()
    standby = None
    try:
        standby = postgres.Cluster(primary=primary)
        with psycopg.connect(primary.url, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
            conn.execute("SELECT pg_reload_conf()")
            synchronous = "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'"
            wait_for(lambda: conn.execute(synchronous).fetchone()[0] == 1, 30, "the standby to replicate synchronously")
        yield primary, standby
    finally:
        for cluster in (standby, primary):
            if cluster is not None:
                cluster.destroy()


def test_failover_to_a_synchronous_standby_mid_burst(tmp_path: Path, replicated):
    """The primary crashes mid-burst and its standby is promoted. The gateway, whose URL names both hosts
    with ``target_session_attrs=read-write``, answers 503 meanwhile (never a 200 for what was not stored),
    then writes to the new primary without a restart; every acknowledged STOP is there and the chain
    verifies."""
    primary, standby = replicated
    name = f"gateway_failover_{new_sid()[2:10]}"
    with psycopg.connect(primary.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = (
        f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/{name}"
        "?target_session_attrs=read-write"
    )
    gateway = Gunicorn(tmp_path, workers=2, db_url=url, name="gw", env={"GATEWAY_DATABASE_POOL_TIMEOUT_SECONDS": "2"})
    messages = [
        sms_params("STOP" if n % 3 == 0 else f"message {n}", sender=f"+1415558{n % 50:04d}", sid=new_sid())
        for n in range(300)
    ]

    def failover():
        primary.stop("immediate")  # a crash: no shutdown checkpoint, clients cut off
        time.sleep(1)
        standby.promote()

    try:
        answers = burst(gateway.base, messages, failover, midway=100)
        wait_for(lambda: _health(gateway.base) == 200, 60, "/healthz to answer 200 on the new primary")
        retry_unacknowledged(gateway.base, messages, answers)
    finally:
        gateway.stop()

    statuses = Counter(status for tries in answers.values() for status, _ in tries)
    assert statuses[503] > 0, f"the failover was not seen: {statuses}"
    assert set(statuses) <= {200, 503}, statuses
    assert all(tries[-1][0] == 200 for tries in answers.values())  # every message stored in the end
    store = Store(url)
    try:
        with store.backend.read() as tx:
            assert tx.scalar("SELECT pg_is_in_recovery()") is False  # the promoted standby answers
            stored = {row[0] for row in tx.execute("SELECT message_sid FROM inbound_messages").fetchall()}
        assert set(answers) <= stored
        stops = {dict(p)["MessageSid"] for p in messages if dict(p)["Body"] == "STOP"}
        assert stops <= {e["message_sid"] for e in store.events() if e["event"] == "opt_out"}
        assert store.verify_ledger().ok
    finally:
        store.close()
    assert "Traceback" not in gateway.log.read_text()


def burst(base: str, messages: list, fault, midway: int) -> dict[str, list[tuple[int, str]]]:
    """Twilio's webhooks for ``messages`` from 8 threads; ``fault()`` runs beside them once ``midway`` have
    been answered. Each MessageSid's answers, in order."""
    answers: dict[str, list[tuple[int, str]]] = defaultdict(list)
    reached = threading.Event()

    def send(params):
        answers[dict(params)["MessageSid"]].append(post_webhook(base, params, timeout=30))
        if len(answers) >= midway:
            reached.set()

    def when_reached():
        reached.wait(60)
        fault()

    thread = threading.Thread(target=when_reached)
    thread.start()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, messages))
    thread.join()
    return answers


def retry_unacknowledged(base: str, messages: list, answers: dict[str, list[tuple[int, str]]]) -> None:
    """What Twilio does with a message that got no 200: send it again."""
    for params in messages:
        sid = dict(params)["MessageSid"]
        if not any(status == 200 for status, _ in answers[sid]):
            answers[sid].append(post_webhook(base, params, timeout=30))


def _health(base: str) -> int:
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def test_killed_instance_while_the_other_serves(tmp_path, pg_url):
    """kill -9 of one instance mid-burst: the other keeps answering; Twilio's retries to it are processed
    once, every acknowledged STOP is kept and the chain stays intact."""
    a, b = start_together(
        lambda: Gunicorn(tmp_path, workers=2, db_url=pg_url, name="a"),
        lambda: Gunicorn(tmp_path, workers=2, db_url=pg_url, name="b"),
    )
    messages = [
        sms_params("STOP" if n % 4 == 0 else f"hello {n}", sender=f"+1415557{n % 40:04d}", sid=new_sid())
        for n in range(400)
    ]
    answers: dict[str, list[tuple[str, int]]] = defaultdict(list)

    def send(indexed):
        n, params = indexed
        target = a if n % 2 else b
        if n == 150:
            a.kill()
        answers[dict(params)["MessageSid"]].append((target.base, post_webhook(target.base, params, timeout=30)[0]))

    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(send, enumerate(messages)))
        for params in messages:  # Twilio retries what got no answer, and it reaches the instance still up
            sid = dict(params)["MessageSid"]
            if not any(status == 200 for _, status in answers[sid]):
                answers[sid].append((b.base, post_webhook(b.base, params, timeout=30)[0]))
    finally:
        a.stop()
        b.stop()
    statuses = Counter(status for tries in answers.values() for _, status in tries)
    assert statuses[0] > 0, f"the killed instance went on answering: {statuses}"
    assert set(statuses) <= {200, 0}, statuses
    assert all(status == 200 for tries in answers.values() for base, status in tries if base == b.base)
    assert all(tries[-1][1] == 200 for tries in answers.values())
    store = Store(pg_url)
    stops = {dict(p)["MessageSid"] for p in messages if dict(p)["Body"] == "STOP"}
    events = store.events()
    assert stops <= {e["message_sid"] for e in events if e["event"] == "opt_out"}
    assert len({e["message_sid"] for e in events}) == len(events)
    assert store.verify_ledger().ok
    queued = [m["message_sid"] for m in store.queued_messages()]
    assert len(queued) == len(set(queued))
    store.close()
    assert "Traceback" not in b.log.read_text()


def test_an_instance_frozen_half_way_through_a_stop_holds_the_others_up_only_briefly(tmp_path, pg_url):
    """Another instance stops half-way through a STOP (its VM paused, its network cut) holding the sender's
    lock and the ledger's head, which every keyword waits for. With the default settings the server ends
    that transaction within seconds: STOPs to a live instance, from that sender and from another, are
    answered within Twilio's 15 s and recorded; the frozen one's writes never land."""
    server = Gunicorn(tmp_path, workers=2, db_url=pg_url)
    frozen_instance = Store(pg_url)
    frozen, wake = threading.Event(), threading.Event()

    stops = [sms_params("STOP", sender=sender) for sender in (SENDER, "+14155550177")]
    try:
        with ThreadPoolExecutor(3) as threads:
            held = threads.submit(stop_half_way_through_a_stop, frozen_instance, frozen, wake)
            assert frozen.wait(10)
            try:
                answers = list(threads.map(lambda params: post_webhook(server.base, params, timeout=15)[0], stops))
            finally:
                wake.set()
            with pytest.raises(StoreUnavailable):
                held.result(30)
    finally:
        server.stop()
        frozen_instance.close()
    assert answers == [200, 200]
    store = Store(pg_url)
    try:
        assert {e["message_sid"] for e in store.events()} == {dict(p)["MessageSid"] for p in stops}
        assert store.verify_ledger().ok
        assert sorted(row["number"] for row in store.current_opt_outs()) == sorted([SENDER, "+14155550177"])
    finally:
        store.close()
    assert "Traceback" not in server.log.read_text()


def test_a_writer_stopped_half_way_through_a_write_holds_sqlite_webhooks_only_until_the_busy_timeout(tmp_path):
    """On SQLite another gateway process stops while it holds the writer lock (a command suspended at a
    terminal, a frozen process). With the default settings a STOP to the live instance is answered 503 within
    Twilio's 15 s, without a traceback, and leaves nothing, and /healthz says so; once the other process goes on,
    the retry is recorded."""
    server = Gunicorn(tmp_path, workers=2)
    stop = sms_params("STOP", sender="+14155550177")
    try:
        with stopped_writer(server.db_url) as resume, ThreadPoolExecutor(1) as health:
            began = time.monotonic()
            healthy = health.submit(lambda: time.sleep(WRITE_TRUSTED_SECONDS + 0.5) or _health(server.base))
            status, body = post_webhook(server.base, stop, timeout=15)
            assert (status, time.monotonic() - began < 15) == (503, True), body
            assert healthy.result(15) == 503
            resume()
        assert post_webhook(server.base, stop)[0] == 200
    finally:
        server.stop()
    store = Store(server.db_url)
    try:
        assert [e["message_sid"] for e in store.events()] == [dict(stop)["MessageSid"]]
        assert sorted(row["number"] for row in store.current_opt_outs()) == sorted([SENDER, "+14155550177"])
        assert store.verify_ledger().ok
    finally:
        store.close()
    assert "Traceback" not in server.log.read_text()


def test_instances_starting_together_migrate_once(pg_url, tmp_path):
    """Four instances start at once on an empty database: one migrates, the others wait and find it done."""
    servers = start_together(
        *(lambda n=n: Gunicorn(tmp_path, workers=1, db_url=pg_url, name=f"s{n}") for n in range(4))
    )
    for server in servers:
        server.stop()
        assert "Traceback" not in server.log.read_text()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(POSTGRES_VERSION,)]


def test_gateway_worker_and_auditor_behind_a_transaction_pooler(tmp_path, pooled, runner):
    """Everything through PgBouncer in transaction mode (as behind a platform's pooled URL), which hands each
    transaction to whichever of its two server connections is free: the release phase's migration, two
    gunicorn workers, a delivery worker and an auditor's read-only commands all at once. Zero 5xx, every
    message stored once, the chain intact, every queued message delivered in order."""
    migrated = runner.invoke(cli, ["init-db"], env={"DATABASE_URL": pooled.url})
    assert migrated.exit_code == 0, migrated.output
    agent = FakeAgent(AGENT_SECRET)
    gateway = Gunicorn(tmp_path, workers=2, db_url=pooled.url, name="gw")
    delivery = worker(pooled.url, agent.url, tmp_path, "worker")
    rng = random.Random(20261202)
    plans = {
        (f"+1415557{n:04d}", "+15005550006"): [
            (rng.choice([*KEYWORDS, "hello", "what time is it?", "ok", "sure"]), new_sid()) for _ in range(10)
        ]
        for n in range(24)
    }
    env = child_environ({"DATABASE_URL": pooled.url})
    audits: list[subprocess.CompletedProcess] = []
    sending = threading.Event()

    def audit():
        commands = (["optouts", "list"], ["stats"], ["audit", "verify"], ["optouts", "history", "+14155570001"])
        while sending.is_set():
            for command in commands:
                audits.append(
                    subprocess.run(
                        [sys.executable, "-m", "gateway.cli", *command], cwd=ROOT, env=env, capture_output=True
                    )
                )

    def run_pair(pair):
        sender, to = pair
        return [
            post_webhook(gateway.base, sms_params(body, sender=sender, to=to, sid=sid))[0] for body, sid in plans[pair]
        ]

    sending.set()
    auditor = threading.Thread(target=audit)
    auditor.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            statuses = Counter(status for answers in pool.map(run_pair, plans) for status in answers)
        sending.clear()
        auditor.join(60)
        store = Store(pooled.direct)
        wait_for(lambda: not store.outbox("pending"), 90, "the worker to empty the queue")
        time.sleep(0.3)  # a delivery in flight when the queue emptied
    finally:
        sending.clear()
        delivery.terminate()
        delivery.wait(15)
        gateway.stop()
        agent.close()

    assert statuses == Counter({200: sum(len(plan) for plan in plans.values())}), statuses  # zero 5xx
    assert audits and all(done.returncode == 0 for done in audits), [done.stderr for done in audits[:3]]
    with psycopg.connect(pooled.direct) as conn:
        processed = Counter(row[0] for row in conn.execute("SELECT message_sid FROM inbound_messages"))
    assert set(processed) == {sid for plan in plans.values() for _, sid in plan} and set(processed.values()) == {1}
    assert store.verify_ledger().ok
    received = defaultdict(list)
    for message in agent.received:
        received[(message["from"], message["to"])].append(message["message_sid"])
    dropped = dropped_at_delivery(store)
    for pair, plan in plans.items():
        assert received[pair] == [sid for sid in expected_queue(plan) if sid not in dropped], pair
    store.close()
    assert "Traceback" not in gateway.log.read_text()


def test_database_outage_behind_a_pooler(cluster, cluster_url):
    """PostgreSQL stops behind PgBouncer: every store operation fails as unavailable (a 503 to Twilio, never a
    500), and works again once PgBouncer logs in anew, without a new store. PgBouncer's waits are short here
    (the README says to keep query_wait_timeout under Twilio's 15 s)."""
    pooler = postgres.Pooler(cluster.url, query_wait_timeout=2, server_login_retry=1)
    name = cluster_url.rsplit("/", 1)[1]
    store = Store(pooler.url(name), pool_timeout=2)
    try:
        store.init_schema()
        assert process(store, "stop", "SM1").outcome == "opt_out"
        cluster.stop("fast")
        try:
            for n in range(3):
                with pytest.raises(StoreUnavailable):
                    process(store, None, f"SM2{n}")
        finally:
            cluster.start()
        deadline = time.monotonic() + 30
        while True:
            try:
                assert process(store, None, "SM3", sender="+14155550111").outcome == "queued"
                break
            except StoreUnavailable:
                assert time.monotonic() < deadline, "still unavailable 30 s after the server came back"
                time.sleep(0.5)
        assert store.is_opted_out("+14155550100", "+15005550006") and store.verify_ledger().ok
    finally:
        store.close()
        pooler.stop()
