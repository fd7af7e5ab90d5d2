"""Real gunicorn, several workers, concurrent signed requests on loopback."""

import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from gateway.core import keys
from gateway.store import Store

from .support import syncspy
from .support.constants import ROOT
from .support.servers import Gunicorn
from .support.webhooks import new_sid, post_webhook, sms_params

pytestmark = pytest.mark.slow

KEYWORDS = {"STOP": "stop", "Stop!": "stop", "opt out": "stop", "START": "start", "yes": "start", "HELP": "help"}


@pytest.fixture
def server(tmp_path):
    server = Gunicorn(tmp_path, workers=3)
    yield server
    server.stop()


def test_concurrent_traffic_keeps_every_opt_out(server):
    rng = random.Random(20261123)
    pairs = [(f"+1415555{n:04d}", to) for n in range(30) for to in ("+15005550006", "+15005550007")]
    plans = {pair: [rng.choice([*KEYWORDS, "hello", "what time is it?"]) for _ in range(10)] for pair in pairs}

    def run_pair(pair):
        sender, to = pair
        results = []
        for body in plans[pair]:
            params = sms_params(body, sender=sender, to=to, sid=new_sid())
            with ThreadPoolExecutor(2) as dup:  # every message delivered twice, at once
                first, second = dup.map(lambda p: post_webhook(server.base, p), [params, params])
            third = post_webhook(server.base, params) if rng.random() < 0.2 else first  # and sometimes again later
            results.append((body, dict(params)["MessageSid"], first, second, third))
        return pair, results

    with ThreadPoolExecutor(16) as pool:
        outcomes = dict(pool.map(run_pair, pairs))

    statuses = Counter(r[i][0] for results in outcomes.values() for r in results for i in (2, 3, 4))
    assert statuses == Counter({200: statuses[200]}), statuses  # zero 5xx, zero anything else
    for results in outcomes.values():
        for _, _, first, second, third in results:
            assert first[1] == second[1] == third[1]  # duplicates got the same TwiML

    store = Store(server.db_url)
    every = store.events()
    events = [e for e in every if e["event"] != "consent_granted"]  # a START's grant names its message in evidence
    grants = [e["detail"]["evidence"]["message_sid"] for e in every if e["event"] == "consent_granted"]
    assert sorted(grants) == sorted(e["message_sid"] for e in events if e["event"] == "opt_in")
    stop_sids = {e["message_sid"] for e in events if e["event"] == "opt_out"}
    current = {(r["number"], r["twilio_number"]) for r in store.current_opt_outs()}
    assert len({e["message_sid"] for e in events}) == len(events)  # each message logged once
    assert store.verify_ledger().ok  # concurrent workers built one unbroken hash chain

    for pair, results in outcomes.items():
        kinds = [KEYWORDS.get(body) for body, *_ in results]
        for (_body, sid, *_), kind in zip(results, kinds, strict=True):
            if kind == "stop":
                assert sid in stop_sids, f"acknowledged STOP {sid} missing"
        last = next((k for k in reversed(kinds) if k in ("stop", "start")), None)
        assert (pair in current) == (last == "stop"), (pair, kinds)

        # Plain messages are queued exactly when the pair was not opted out at the time.
        opted_out, expected_queued = False, 0
        for kind in kinds:
            opted_out = True if kind == "stop" else False if kind == "start" else opted_out
            expected_queued += kind is None and not opted_out
        queued = [m for m in store.queued_messages() if (m["from_number"], m["to_number"]) == pair]
        assert len(queued) == expected_queued
    store.close()

    log = server.log.read_text()
    assert "database is locked" not in log and "Traceback" not in log


def test_workers_initialise_a_fresh_database_together(tmp_path, db_url):
    """Bare gunicorn without --preload: every worker creates/migrates the schema at once."""
    server = Gunicorn(tmp_path, workers=4, preload=False, db_url=db_url, config=False)
    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(
                pool.map(lambda i: post_webhook(server.base, sms_params("STOP", sender=f"+1415555{i:04d}")), range(40))
            )
        assert {status for status, _ in results} == {200}
    finally:
        server.stop()
    log = server.log.read_text()
    assert "Traceback" not in log and "locked" not in log
    assert log.count("Booting worker") == 4
    store = Store(server.db_url)
    assert len(store.current_opt_outs()) == 40
    store.close()


def test_rate_limit_holds_across_workers(tmp_path):
    """Two gunicorn workers draw from one bucket per key: the burst is granted once, not once per worker."""
    env = {
        "TWILIO_ACCOUNT_SID": "AC" + "a" * 32,
        "GATEWAY_SENDERS": "+15005550006",
        "GATEWAY_TWILIO_API_BASE": "http://127.0.0.1:9",  # the web process never sends; nothing listens here
        "GATEWAY_RATE_LIMIT_PER_SECOND": "0.01",
        "GATEWAY_RATE_LIMIT_BURST": "5",
    }
    server = Gunicorn(tmp_path, workers=2, env=env)
    store = Store(server.db_url)
    key = keys.new_key()
    store.add_api_key(keys.hash_key(key), "sender")

    def send(_):
        request = urllib.request.Request(
            server.base + "/v1/outbound-sms",
            data=json.dumps({"to_number": "+14155550100", "content": "hi"}).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, None
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("Retry-After")

    def served_by() -> set[str]:
        lines = server.log.read_text().splitlines()
        return {line.split("[")[1].split("]")[0] for line in lines if "POST /v1/outbound-sms" in line}

    results: list = []
    try:
        with ThreadPoolExecutor(10) as pool:
            # The kernel may hand one burst to a single worker: go on until both have answered.
            while len(results) < 400 and (len(results) < 40 or len(served_by()) < 2):
                results += pool.map(send, range(40))
    finally:
        server.stop()
    assert len(served_by()) == 2, "both workers must have answered for this test to prove anything"
    assert Counter(status for status, _ in results) == Counter({202: 5, 429: len(results) - 5})
    assert {retry for status, retry in results if status == 429} <= {str(n) for n in range(1, 101)}
    assert len(store.list_outbound()) == 5
    assert "Traceback" not in server.log.read_text()
    store.close()


@pytest.mark.parametrize("durability", ["full", "compliance"])
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_threaded_workers_killed_mid_burst_lose_nothing_acknowledged(tmp_path, request, backend, durability):
    """gunicorn's gthread workers (8 threads each), whose concurrent requests share group commits on SQLite:
    plain messages, STOPs, STARTs, HELPs and Twilio's duplicate retries at once, then kill -9 mid-burst and a
    restart. No answer but 200 (or none, while killed); every message is answered as its first delivery was,
    processed once, each acknowledged opt-out kept; and on SQLite each answer waited for the disk exactly
    where its own rule says (the sync spy counts the fsyncs each answer waited for)."""
    url = request.getfixturevalue("pg_url") if backend == "postgresql" else f"sqlite:///{tmp_path / 'live.db'}"
    spied = tmp_path / "syncspy"
    spied.mkdir()
    env = {"GATEWAY_DURABILITY": durability, "SYNCSPY_DIR": str(spied)}
    config = str(ROOT / "tests" / "support" / "gunicorn_syncspy.py") if backend == "sqlite" else True
    rng = random.Random(20261207)
    pairs = [(f"+1415559{n:04d}", "+15005550006") for n in range(24)]
    plans = {pair: [(rng.choice([*KEYWORDS, "hello", "hello", "ok?"]), new_sid()) for _ in range(10)] for pair in pairs}
    answered: Counter = Counter()
    statuses: Counter = Counter()
    replies: dict[str, set[str]] = {}

    def send_pair(base: str, pair, start: int) -> int:
        """Send the pair's messages from ``start``, each twice at once (Twilio's retry racing the first); the
        index of the first that got no answer at all (the server is gone), or the plan's length."""
        sender, to = pair
        for index in range(start, len(plans[pair])):
            body, sid = plans[pair][index]
            params = sms_params(body, sender=sender, to=to, sid=sid)
            with ThreadPoolExecutor(2) as twice:
                both = list(twice.map(lambda p: post_webhook(base, p, timeout=30), [params, params]))
            statuses.update(status for status, _ in both)
            replies.setdefault(sid, set()).update(text for status, text in both if status == 200)
            if not any(status == 200 for status, _ in both):
                return index
            answered[base] += 1
        return len(plans[pair])

    first = Gunicorn(tmp_path, workers=2, threads=8, db_url=url, env=env, config=config, name="first")

    def kill_midway():
        deadline = time.monotonic() + 60
        while answered[first.base] < 80 and time.monotonic() < deadline:
            time.sleep(0.01)
        first.kill()

    killer = threading.Thread(target=kill_midway)
    killer.start()
    try:
        with ThreadPoolExecutor(12) as pool:
            stopped = dict(zip(pairs, pool.map(lambda pair: send_pair(first.base, pair, 0), pairs), strict=True))
    finally:
        killer.join()
        first.stop()
    assert statuses[0] > 0 and any(index < 10 for index in stopped.values()), "the kill was not seen"
    with Gunicorn(tmp_path, workers=2, threads=8, db_url=url, env=env, config=config, name="after") as after:
        finished = {pair: send_pair(after.base, pair, index) for pair, index in stopped.items()}  # Twilio retries

    assert set(statuses) <= {200, 0}, statuses  # never a 500 or a 503
    assert all(finished[pair] == len(plan) for pair, plan in plans.items())
    assert all(len(texts) == 1 for texts in replies.values())  # every copy answered as the first was
    sids = [sid for plan in plans.values() for _, sid in plan]
    store = Store(url)
    try:
        with store.backend.read() as tx:
            stored = Counter(row[0] for row in tx.execute("SELECT message_sid FROM inbound_messages").fetchall())
        assert set(stored) == set(sids) and set(stored.values()) == {1}
        events = store.events()
        opt_outs = {e["message_sid"] for e in events if e["event"] == "opt_out"}
        current = {(r["number"], r["twilio_number"]) for r in store.current_opt_outs()}
        for pair, plan in plans.items():
            kinds = [KEYWORDS.get(body) for body, _ in plan]
            assert {sid for (_, sid), kind in zip(plan, kinds, strict=True) if kind == "stop"} <= opt_outs
            last = next((kind for kind in reversed(kinds) if kind in ("stop", "start")), None)
            assert (pair in current) == (last == "stop"), (pair, kinds)
        assert store.verify_ledger().ok
    finally:
        store.close()
    if backend == "sqlite":
        answers = syncspy.read_answers(spied)
        assert {answer.sid for answer in answers} >= set(replies)  # the spy saw every acknowledged answer
        for answer in answers:
            assert answer.on_disk or not syncspy.must_be_on_disk(answer, durability), answer
        if durability == "compliance":  # and no fsync where none was asked for: plain messages went without
            assert any(not answer.on_disk for answer in answers if answer.outcome == "queued")
    for server in (first, after):
        assert "Traceback" not in server.log.read_text()
