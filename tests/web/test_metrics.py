"""GET /metrics: Prometheus text from the process counters and the database."""

import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.messaging import services

from ..support.accounts import outbound_config
from ..support.constants import (
    ACCOUNT,
    BRAND_ACCOUNT,
    BRAND_NUMBER,
    BRAND_TOKEN,
    REGION_ACCOUNT,
    REGION_NUMBER,
    REGION_TOKEN,
    SENDER,
    TOKEN,
    TWILIO_NUMBER,
)
from ..support.servers import Gunicorn
from ..support.webhooks import TwilioSender, new_sid, sign, sms_params


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} from exposition text."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.content_type.startswith("text/plain; version=")
    return samples(response.text)


def inbound(values, outcome, account=None):
    """Inbound webhooks counted with ``outcome``, for ``account`` (a label value) or all of them."""
    return sum(
        value
        for (name, labels), value in values.items()
        if name == "gateway_inbound_messages_total"
        and dict(labels)["outcome"] == outcome
        and account in (None, dict(labels)["account"])
    )


@pytest.fixture
def app_config(db_url, fake):
    return outbound_config(db_url, fake)


def test_counts_outcomes_state_changes_and_latency(app, client, twilio, store, fake):
    before = scrape(client)
    twilio.sms("STOP")
    twilio.sms("STOP")  # already opted out
    twilio.post(sms_params("hello", sid="SMdup"))
    twilio.post(sms_params("hello", sid="SMdup"))  # Twilio's retry
    twilio.sms("hello", sender="+14155550101")
    twilio.post(sms_params("forged"), token="not-the-token")
    outbound = services.of(app).outbound
    outbound.queue(SENDER, content="offer")  # suppressed
    fake.failures.append((503, {}))
    outbound.backoff_base = 0.01
    outbound.queue("+14155550101", content="hi")
    outbound.dispatch_once()  # a 503: one send failure, retried later
    callback = [("MessageSid", "SM" + "0" * 32), ("MessageStatus", "delivered"), ("AccountSid", ACCOUNT)]
    TwilioSender(client).post(callback, url="http://localhost/twilio/status")
    after = scrape(client)

    for outcome, added in (
        ("opt_out", 1),
        ("already_opted_out", 1),
        ("dropped", 1),
        ("queued", 1),
        ("duplicate", 1),
        ("forbidden", 1),
    ):
        assert inbound(after, outcome) - inbound(before, outcome) == added, outcome
    # From the database: exact for this gateway's records.
    # The webhooks name AccountSid AC11...1, which is not the configured one: its last 6 characters label it.
    assert after[("gateway_opt_outs_total", (("account", "111111"), ("source", "keyword")))] == 1
    assert after[("gateway_outbound_suppressed_total", (("account", "default"),))] == 1
    assert after[("gateway_outbound_messages", (("account", "default"), ("status", "retrying")))] == 1
    assert inbound(after, "forbidden", "unverified") - inbound(before, "forbidden", "unverified") == 1
    assert inbound(after, "queued", "111111") - inbound(before, "queued", "111111") == 1
    # Process counters (global to this test process): compare with before.
    failures = ("gateway_outbound_send_failures_total", (("account", "default"), ("reason", "server_error")))
    assert after[failures] - before.get(failures, 0) == 1
    delivered = ("gateway_status_callbacks_total", (("account", "default"), ("status", "delivered")))
    assert after[delivered] - before.get(delivered, 0) == 1
    count = ("gateway_request_duration_seconds_count", (("method", "POST"), ("route", "/twilio/sms")))
    assert after[count] - before.get(count, 0) == 6


def test_agent_queue_backlog_and_sessions(app, client, twilio, store):
    now = ["2026-11-23T09:00:00.000000Z"]
    store.clock = lambda: now[0]
    twilio.sms("hello")  # no agent configured: it waits
    now[0] = "2026-11-23T09:01:30.000000Z"
    values = scrape(client)
    assert values[("gateway_agent_queue", (("kind", "message"), ("status", "pending")))] == 1
    assert values[("gateway_agent_queue_oldest_pending_seconds", ())] == 90.0
    store.claim_deliveries(10, 60)  # the worker picks it up: a session opens
    values = scrape(client)
    assert values[("gateway_sessions", (("state", "active"),))] == 1


def test_no_phone_number_in_metrics(client, twilio):
    twilio.sms("STOP")
    text = client.get("/metrics").text
    assert SENDER not in text and TWILIO_NUMBER not in text
    labels = [
        value for family in text_string_to_metric_families(text) for s in family.samples for value in s.labels.values()
    ]
    assert labels and not [value for value in labels if SENDER[-4:] in value or TWILIO_NUMBER[-4:] in value]


def test_a_method_a_client_makes_up_is_one_series_not_one_each(client):
    key = ("gateway_request_duration_seconds_count", (("method", "other"), ("route", "unmatched")))
    before = scrape(client).get(key, 0)
    for method in ("FOO", "BAR1", "XYZZY"):
        assert client.open("/twilio/sms", method=method).status_code == 405
    assert scrape(client)[key] == before + 3
    assert not [line for line in client.get("/metrics").text.splitlines() if "FOO" in line or "XYZZY" in line]


@pytest.mark.slow
def test_workers_add_up(tmp_path):
    """Two gunicorn workers, one /metrics: every webhook counted once, whichever worker served it."""
    server = Gunicorn(tmp_path, workers=2)

    def post(i):
        params = sms_params("hello", sender=f"+1415555{i:04d}", sid=new_sid())
        url = server.base + "/twilio/sms"
        request = urllib.request.Request(
            url,
            data=urllib.parse.urlencode(params).encode(),
            headers={"X-Twilio-Signature": sign(url, params)},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status

    def pids() -> set[str]:
        lines = server.log.read_text().splitlines()
        return {line.split("[")[1].split("]")[0] for line in lines if "POST /twilio/sms" in line}

    sent = 0
    try:
        with ThreadPoolExecutor(8) as pool:
            while sent < 300 and (sent == 0 or len(pids()) < 2):  # until both workers have answered
                assert set(pool.map(post, range(sent, sent + 60))) == {200}
                sent += 60
        scrapes = []
        for _ in range(4):  # whichever worker answers the scrape, the sum is the same
            with urllib.request.urlopen(server.base + "/metrics", timeout=30) as response:
                scrapes.append(samples(response.read().decode()))
    finally:
        server.stop()
    assert len(pids()) == 2, "both workers must have answered for this test to prove anything"
    assert [inbound(s, "queued") for s in scrapes] == [float(sent)] * 4


def test_database_pool_is_reported_on_postgresql(client, db_kind):
    values = scrape(client)
    names = {name for name, _ in values}
    if db_kind == "sqlite":
        assert "gateway_database_pool_connections" not in names  # no pool: one file, one connection per thread
        return
    in_use = values[("gateway_database_pool_connections", (("state", "in_use"),))]
    idle = values[("gateway_database_pool_connections", (("state", "idle"),))]
    assert in_use + idle >= 1  # the connection the scrape's own queries used
    assert values[("gateway_database_pool_waiting", ())] == 0


def test_the_database_clock_offset_is_reported_on_postgresql(client, db_kind):
    """The server's clock against this machine's (the same machine here): near zero; SQLite has none."""
    values = scrape(client)
    if db_kind == "sqlite":
        assert ("gateway_database_clock_offset_seconds", ()) not in values
        return
    assert abs(values[("gateway_database_clock_offset_seconds", ())]) < 1.0


def test_a_missing_counters_folder_is_made_and_an_impossible_one_refused(tmp_path, monkeypatch, db_url):
    """A bare gunicorn with PROMETHEUS_MULTIPROC_DIR set to a folder nobody made must not answer 500s."""
    from gateway import create_app
    from gateway.settings import ConfigError

    folder = tmp_path / "not" / "yet"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    create_app({"DATABASE_URL": db_url, "TWILIO_AUTH_TOKEN": "t" * 32})
    assert folder.is_dir()
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(blocker / "metrics"))
    with pytest.raises(ConfigError, match="PROMETHEUS_MULTIPROC_DIR: cannot create .*file/metrics: Not a directory"):
        create_app({"DATABASE_URL": db_url, "TWILIO_AUTH_TOKEN": "t" * 32})


def test_each_account_is_counted_under_its_name_and_a_refused_request_under_none(accounts_app):
    app, _ = accounts_app
    client = app.test_client()
    before = scrape(client)
    sender = TwilioSender(client)
    for account, number, token in (
        (ACCOUNT, TWILIO_NUMBER, TOKEN),
        (BRAND_ACCOUNT, BRAND_NUMBER, BRAND_TOKEN),
        (REGION_ACCOUNT, REGION_NUMBER, REGION_TOKEN),
    ):
        assert sender.post(sms_params("STOP", to=number, account=account), token=token).status_code == 200
    forged = sms_params("STOP", account="AC" + "9" * 32)  # a SID of the sender's choosing never becomes a label
    assert sender.post(forged, token=TOKEN).status_code == 403
    after = scrape(client)
    for label in ("default", "brand", "region"):
        assert inbound(after, "opt_out", label) - inbound(before, "opt_out", label) == 1, label
        assert after[("gateway_opt_outs_total", (("account", label), ("source", "keyword")))] == 1, label
    assert inbound(after, "forbidden", "unverified") - inbound(before, "forbidden", "unverified") == 1
    changed = {dict(labels).get("account") for key, labels in after if after[key, labels] != before.get((key, labels))}
    assert changed - {None} == {"default", "brand", "region", "unverified"}
