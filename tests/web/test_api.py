"""The read-only /v1 API: the auth matrix, filters, pagination, CSV, verify."""

import csv
import io
import json
import re
import subprocess
import sys

import pytest

from gateway.core import keys, ledger
from gateway.messaging import services
from gateway.store import Store

from ..support.constants import BRAND_NUMBER, REGION_ACCOUNT, REGION_NUMBER, SENDER, TWILIO_NUMBER
from ..support.servers import Gunicorn
from ..support.webhooks import post_webhook, sms_params


@pytest.fixture
def api_keys(store):
    made = {}
    for role in ("auditor", "admin", "sender"):
        made[role] = keys.new_key()
        store.add_api_key(keys.hash_key(made[role]), role)
    made["recorder"] = keys.new_key()
    store.add_api_key(keys.hash_key(made["recorder"]), "recorder", label="signup form")
    made["revoked"] = keys.new_key()
    store.revoke_api_key(store.add_api_key(keys.hash_key(made["revoked"]), "admin"))
    return made


def auth(key):
    return {"Authorization": f"Bearer {key}"}


ENDPOINTS = ["/v1/opt-outs", f"/v1/opt-outs/{SENDER}/history", "/v1/audit/verify"]


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    ("who", "status"),
    [(None, 401), ("bad", 401), ("revoked", 401), ("sender", 403), ("auditor", 200), ("admin", 200)],
)
def test_auth_matrix(client, api_keys, path, who, status):
    headers = {} if who is None else auth("gwk_not_a_key" if who == "bad" else api_keys[who])
    response = client.get(path, headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json["error"] == "Unauthorized"
    if status == 403:
        assert response.json["message"] == "this key's role (sender) may not do this; it needs auditor"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Basic abc", "the Authorization header uses the Basic scheme: send Authorization: Bearer <key>"),
        ("Bearer", "the Authorization header says Bearer but holds no key: send Authorization: Bearer <key>"),
        ("Bearer   ", "the Authorization header says Bearer but holds no key: send Authorization: Bearer <key>"),
        ("gwk_x", "the Authorization header holds a key without its scheme: send Authorization: Bearer <key>"),
        ("gwk_x y", "the Authorization header holds a key without its scheme: send Authorization: Bearer <key>"),
        ("Token gwk_x", "the Authorization header uses the Token scheme: send Authorization: Bearer <key>"),
        ("secret-123:x", "the Authorization header is not of the form Bearer <key>: send Authorization: Bearer <key>"),
        ("", "missing API key: send Authorization: Bearer <key>"),
    ],
)
def test_malformed_authorization_is_401_saying_what_is_wrong(client, api_keys, header, message):
    """A key without ``Bearer `` is not "missing": the answer names the expected form, never the key."""
    response = client.get("/v1/opt-outs", headers={"Authorization": header} if header else {})
    assert response.status_code == 401 and response.json["message"] == message
    assert "gwk_x" not in response.text and "secret" not in response.text


def test_keys_are_never_logged(client, api_keys, gateway_log):
    client.get("/v1/opt-outs", headers=auth(api_keys["auditor"]))
    client.get("/v1/opt-outs", headers=auth("gwk_guess"))
    assert "GET /v1/opt-outs 200" in gateway_log.text and "GET /v1/opt-outs 401" in gateway_log.text
    assert api_keys["auditor"] not in gateway_log.text and "gwk_guess" not in gateway_log.text


def test_opt_outs_filters_and_pagination(client, api_keys, twilio, store):
    for i in range(5):
        twilio.sms("STOP", sender=f"+1415555000{i}", to=TWILIO_NUMBER if i % 2 == 0 else "+15005550007")
    headers = auth(api_keys["auditor"])

    everything = client.get("/v1/opt-outs", headers=headers).json
    assert [row["number"] for row in everything["data"]] == [f"+1415555000{i}" for i in range(5)]
    assert everything["next_offset"] is None

    page = client.get("/v1/opt-outs?limit=2", headers=headers).json
    assert len(page["data"]) == 2 and page["next_offset"] == 2
    page2 = client.get("/v1/opt-outs?limit=2&offset=2", headers=headers).json
    assert [r["number"] for r in page2["data"]] == ["+14155550002", "+14155550003"]

    only = client.get("/v1/opt-outs?twilio_number=%2B15005550007", headers=headers).json["data"]
    assert [r["number"] for r in only] == ["+14155550001", "+14155550003"]
    one = client.get("/v1/opt-outs?number=%2B14155550004", headers=headers).json["data"]
    assert [r["number"] for r in one] == ["+14155550004"]

    third = everything["data"][2]["opted_out_at"]
    since = client.get(f"/v1/opt-outs?since={third}", headers=headers).json["data"]
    assert [r["opted_out_at"] for r in since] == [r["opted_out_at"] for r in everything["data"][2:]]
    until = client.get(f"/v1/opt-outs?until={third}", headers=headers).json["data"]
    assert len(until) == 3
    assert client.get("/v1/opt-outs?until=2000-01-01", headers=headers).json["data"] == []
    today = third[:10]
    assert len(client.get(f"/v1/opt-outs?since={today}&until={today}", headers=headers).json["data"]) == 5


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=0", "limit must be between 1 and 1000, got 0"),
        ("limit=x", "limit must be a whole number, got 'x'"),
        ("offset=-1", "offset must be between 0 and 1000000000000, got -1"),
        ("since=yesterday", "since: not a date or ISO 8601 date-time: 'yesterday'"),
        ("format=xml", "format must be json or csv, got 'xml'"),
    ],
)
def test_bad_query_is_400_json(client, api_keys, query, message):
    response = client.get(f"/v1/opt-outs?{query}", headers=auth(api_keys["auditor"]))
    assert response.status_code == 400 and response.json == {"error": "Bad Request", "message": message}


@pytest.mark.parametrize("how", ["query", "accept"])
def test_opt_outs_csv(client, api_keys, twilio, how):
    twilio.sms("STOP")
    headers = auth(api_keys["auditor"])
    if how == "accept":
        headers["Accept"] = "text/csv"
    response = client.get("/v1/opt-outs" + ("?format=csv" if how == "query" else ""), headers=headers)
    assert response.status_code == 200 and response.content_type.startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert rows[0]["number"] == SENDER and rows[0]["source"] == "keyword"


def test_history(client, api_keys, twilio):
    twilio.sms("STOP")
    twilio.sms("still there?")
    twilio.sms("START")
    response = client.get(f"/v1/opt-outs/{SENDER}/history", headers=auth(api_keys["auditor"]))
    body = response.json
    assert body["number"] == SENDER
    timeline = [("opt_out", "revoked"), ("dropped", "dropped"), ("opt_in", "opted in"), ("consent_granted", "granted")]
    assert [(e["event"], e["change"]) for e in body["data"]] == timeline
    assert all(len(e["hash"]) == 64 for e in body["data"])
    as_csv = client.get(f"/v1/opt-outs/{SENDER}/history?format=csv", headers=auth(api_keys["auditor"]))
    assert [(r["event"], r["change"]) for r in csv.DictReader(io.StringIO(as_csv.text))] == timeline


def test_audit_verify(client, api_keys, twilio, raw):
    twilio.sms("STOP")
    twilio.sms("HELP")
    good = client.get("/v1/audit/verify", headers=auth(api_keys["auditor"])).json
    assert good["ok"] is True and good["events_checked"] == 2 and len(good["head"]) == 64
    raw.tamper("UPDATE events SET body = 'START' WHERE id = 1")
    bad = client.get("/v1/audit/verify", headers=auth(api_keys["auditor"])).json
    assert bad["ok"] is False and bad["broken_event"] == 1 and "edited" in bad["reason"]


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_every_answer_matches_the_document(tmp_path, db_url):
    """schemathesis against GET /v1/openapi.json on a live gunicorn: positive and negative cases for every
    operation, with an admin key (auditor and admin operations) and a sender key (the outbound API)."""
    env = {
        "TWILIO_ACCOUNT_SID": "AC" + "a" * 32,
        "GATEWAY_SENDERS": "+15005550006",
        "GATEWAY_RATE_LIMIT_PER_SECOND": "100000",
        "GATEWAY_RATE_LIMIT_BURST": "100000",
    }
    server = Gunicorn(tmp_path, workers=2, env=env, db_url=db_url)
    try:
        store = Store(db_url)
        for body in ("STOP", "please stop texting me"):  # an opt-out, a candidate: records to read
            assert post_webhook(server.base, sms_params(body))[0] == 200
        checks = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
        for role in ("admin", "sender"):
            key = keys.new_key()
            store.add_api_key(keys.hash_key(key), role)
            run = subprocess.run(
                [sys.executable, "-m", "schemathesis.cli", "run", f"{server.base}/v1/openapi.json"]
                + ["--header", f"Authorization: Bearer {key}", "--checks", f"{checks},negative_data_rejection"]
                + ["--max-examples", "25", "--seed", "20261130", "--no-color", "--phases", "examples,coverage,fuzzing"]
                + ["--generation-database", "none"],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert run.returncode == 0, run.stdout[-4000:]
            assert " passed" in run.stdout and "failure" not in run.stdout.split("SUMMARY")[-1], run.stdout[-4000:]
        store.close()
    finally:
        server.stop()
    log = server.log.read_text()
    assert " 500 " not in log and "Traceback" not in log


def test_openapi_document_publishes_every_route_and_nothing_else(client, app):
    document = client.get("/v1/openapi.json").json
    assert document["openapi"] == "3.1.0" and document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    published = [(path, method) for path, operations in document["paths"].items() for method in operations]
    for path, method in published:  # each is served, and asks for a key
        concrete = path.replace("{number}", "+14155550100").replace("{candidate_id}", "1")
        answer = client.open(concrete, method=method.upper())
        assert answer.status_code == 401, (path, method, answer.status_code)
    served = {
        (rule.rule, method.lower())
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/v1/") and rule.endpoint != "api.openapi"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    for rule, method in served:  # and each route is published
        pattern = re.sub(
            r"<any\(([^)]*)\):\w+>", lambda m: "(" + "|".join(a.strip(" '") for a in m.group(1).split(",")) + ")", rule
        )
        pattern = re.sub(r"<[^>]+>", r"\{\\w+\}", pattern)
        assert any(re.fullmatch(pattern, path) and m == method for path, m in published), (rule, method)


@pytest.mark.parametrize("number", ["4155550100", "+1%20415%20555%200100", "+1415555"])
def test_history_of_a_malformed_number_is_400(client, api_keys, number):
    response = client.get(f"/v1/opt-outs/{number}/history", headers=auth(api_keys["auditor"]))
    assert response.status_code == 400 and "is not an E.164 number such as +14155550100" in response.json["message"]


def test_history_of_a_number_with_no_records_says_so(client, api_keys):
    body = client.get("/v1/opt-outs/+14155550177/history", headers=auth(api_keys["auditor"])).json
    assert body == {"number": "+14155550177", "records": 0, "data": []}


# -- keys limited to accounts ------------------------------------------------------------

READS = [
    "/v1/opt-outs",
    "/v1/opt-outs?format=csv",
    "/v1/opt-outs/{region_stop}/history",
    "/v1/opt-outs/{region_stop}/history?format=csv",
    "/v1/opt-outs/{brand_stop}/history",
    "/v1/audit/verify",
    "/v1/audit/proof",
    "/v1/stats",
    "/v1/revocation-candidates?status=all",
]


@pytest.mark.parametrize("path", READS)
def test_a_key_limited_to_one_account_reads_nothing_of_another(two_accounts, path):
    url = path.format(**two_accounts.users)
    client = two_accounts.app.test_client()
    limited = client.get(url, headers=auth(two_accounts.keys["brand_auditor"]), buffered=True)
    everyone = client.get(url, headers=auth(two_accounts.keys["everyone"]), buffered=True)
    assert limited.status_code == everyone.status_code == 200
    asked = url.split("/")[3] if "/history" in url else None  # a history answer names the number asked about
    for mark in two_accounts.region_marks:
        if mark != asked:
            assert mark not in limited.text, (url, mark)
    if "/history" not in url and "verify" not in url:
        assert any(mark in everyone.text for mark in two_accounts.region_marks), url  # the records are there


def test_what_a_limited_key_reads_is_its_own_accounts_whole(two_accounts):
    client, key = two_accounts.app.test_client(), auth(two_accounts.keys["brand_auditor"])
    listed = client.get("/v1/opt-outs", headers=key).json["data"]
    assert [(row["number"], row["twilio_number"]) for row in listed] == [
        (two_accounts.users["brand_stop"], BRAND_NUMBER)
    ]
    history = client.get(f"/v1/opt-outs/{two_accounts.users['region_stop']}/history", headers=key).json
    assert history["records"] == 0 and history["data"] == []  # as for a number nobody recorded
    verified = client.get("/v1/audit/verify", headers=key).json
    everything = client.get("/v1/audit/verify", headers=auth(two_accounts.keys["everyone"])).json
    assert verified["ok"] and verified["head"] == everything["head"]
    assert verified["events_checked"] + verified["other_accounts_events_checked"] == everything["events_checked"]
    assert verified["events_checked"] == 2  # the brand's opt-out and its candidate
    stats = client.get("/v1/stats", headers=key).json
    assert [row["twilio_number"] for row in stats["by_twilio_number"]] == [BRAND_NUMBER]
    candidates = client.get("/v1/revocation-candidates?status=all", headers=key).json["data"]
    assert [row["id"] for row in candidates] == [two_accounts.candidates["brand"]]


def test_a_limited_admin_cannot_touch_another_accounts_records(two_accounts):
    client, key = two_accounts.app.test_client(), auth(two_accounts.keys["brand_admin"])
    region = two_accounts.candidates["region"]
    confirm = client.post(f"/v1/revocation-candidates/{region}/confirm", json={"by": "ana"}, headers=key)
    missing = client.post("/v1/revocation-candidates/999999/confirm", json={"by": "ana"}, headers=key)
    assert confirm.status_code == missing.status_code == 404
    assert confirm.json["message"].replace(str(region), "N") == missing.json["message"].replace("999999", "N")
    manual = {"number": "+14155550130", "twilio_number": REGION_NUMBER, "reason": "call", "by": "ana"}
    assert client.post("/v1/opt-outs", json=manual, headers=key).status_code == 404
    own = client.post("/v1/opt-outs", json={**manual, "twilio_number": BRAND_NUMBER}, headers=key)
    assert own.status_code == 201
    brand = two_accounts.candidates["brand"]
    assert client.post(f"/v1/revocation-candidates/{brand}/confirm", json={"by": "ana"}, headers=key).status_code == 200


def test_a_limited_sender_sends_only_from_its_accounts_numbers(two_accounts):
    client, key = two_accounts.app.test_client(), auth(two_accounts.keys["brand_sender"])
    sent = client.post("/v1/outbound-sms", json={"to_number": "+14155550140", "content": "hi"}, headers=key)
    assert sent.status_code == 202 and sent.json["sender"] == BRAND_NUMBER  # its accounts' first number
    other = {"to_number": "+14155550140", "content": "hi", "agent_number": REGION_NUMBER}
    refused = client.post("/v1/outbound-sms", json=other, headers=key)
    assert refused.status_code == 400
    assert refused.json["message"] == f"agent_number {REGION_NUMBER!r} is not one of this environment's numbers"


def test_an_accounts_proof_from_the_api_checks_out_offline(two_accounts):
    client = two_accounts.app.test_client()
    answer = client.get("/v1/audit/proof", headers=auth(two_accounts.keys["region_auditor"]))
    assert answer.status_code == 200 and answer.content_type == "application/x-ndjson; charset=utf-8"
    records = [json.loads(line) for line in answer.text.splitlines()]
    assert records[0]["accounts"] == [REGION_ACCOUNT]
    result = ledger.verify_proof(records)
    assert (result.ok, result.checked, result.others) == (True, 2, 2)
    assert {record.get("account") for record in records[1:] if "digest" not in record} == {REGION_ACCOUNT}


# -- consent records -------------------------------------------------------------------

CONSENT = {
    "number": SENDER,
    "sender": TWILIO_NUMBER,
    "category": "marketing",
    "method": "web_form",
    "given_at": "2026-11-30T18:04:05Z",
    "wording": "Yes, text me offers from Acme. Msg & data rates may apply. Reply STOP to stop.",
    "evidence": {"form_url": "https://acme.example/join", "ip": "203.0.113.7", "user_agent": "Mozilla/5.0"},
}


def test_a_recorder_records_consent_and_an_auditor_reads_it(client, api_keys, store, twilio):
    response = client.post("/v1/consents", json=CONSENT, headers=auth(api_keys["recorder"]))
    assert response.status_code == 201, response.json
    record = response.json
    assert record["recorded_by"] == "API key 4 (signup form)"  # the key's id and label, never the key
    assert (record["given_at"], record["evidence"], record["ended_at"]) == (
        "2026-11-30T18:04:05.000000Z",
        CONSENT["evidence"],
        None,
    )
    listed = client.get(f"/v1/consents?number={SENDER.replace('+', '%2B')}", headers=auth(api_keys["auditor"])).json
    assert listed["records"] == 1 and listed["data"][0] == record
    twilio.sms("STOP")
    ended = client.get(f"/v1/consents?number=%2B{SENDER[1:]}", headers=auth(api_keys["auditor"])).json["data"][0]
    assert ended["ended_at"] and ended["ended_by_event_id"] == store.history(SENDER)[-1]["id"]
    assert (
        client.get(f"/v1/consents?number=%2B{SENDER[1:]}&current=true", headers=auth(api_keys["auditor"])).json["data"]
        == []
    )
    timeline = client.get(f"/v1/opt-outs/{SENDER}/history", headers=auth(api_keys["auditor"])).json["data"]
    assert [(e["change"], e["event"]) for e in timeline] == [("granted", "consent_granted"), ("revoked", "opt_out")]
    assert client.get("/v1/audit/verify", headers=auth(api_keys["auditor"])).json["ok"] is True


@pytest.mark.parametrize(
    ("role", "status"), [("admin", 201), ("recorder", 201), ("auditor", 403), ("sender", 403), ("revoked", 401)]
)
def test_who_may_record_consent(client, api_keys, role, status):
    assert client.post("/v1/consents", json=CONSENT, headers=auth(api_keys[role])).status_code == status


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"number": "4155550100"}, "number: '4155550100' is not an E.164 number"),
        ({"sender": "acme"}, "sender: 'acme' is not a Twilio number"),
        ({"category": "promos"}, "category: 'promos' is not one of the configured categories"),
        ({"method": "keyword"}, "method"),  # only the gateway records a keyword consent
        ({"given_at": "2099-01-01"}, "given_at: '2099-01-01' is in the future"),
        ({"given_at": "soon"}, "given_at: "),
        ({"evidence": {"ip": 7}}, "evidence"),
        ({"wording": ""}, "wording"),
        ({"extra": 1}, "extra"),
    ],
)
def test_a_bad_consent_is_400_and_records_nothing(client, api_keys, store, change, message):
    response = client.post("/v1/consents", json={**CONSENT, **change}, headers=auth(api_keys["recorder"]))
    assert response.status_code == 400 and message in response.json["message"], response.json
    assert store.events() == [] and store.consents(SENDER) == []


@pytest.mark.parametrize("query", ["", "?number=abc", f"?number=%2B{SENDER[1:]}&current=maybe"])
def test_listing_consents_needs_a_number(client, api_keys, query):
    response = client.get(f"/v1/consents{query}", headers=auth(api_keys["auditor"]))
    assert response.status_code == 400 and response.json["message"]


def test_keys_limited_to_an_account_record_consent_only_to_its_senders(two_accounts):
    client, store = two_accounts.app.test_client(), services.of(two_accounts.app).store
    recorder = keys.new_key()
    store.add_api_key(keys.hash_key(recorder), "recorder", accounts=[REGION_ACCOUNT])
    own = {**CONSENT, "sender": REGION_NUMBER}
    assert client.post("/v1/consents", json=own, headers=auth(recorder)).status_code == 201
    other = client.post("/v1/consents", json={**CONSENT, "sender": BRAND_NUMBER}, headers=auth(recorder))
    assert other.status_code == 404 and "not one of the numbers of this key's accounts" in other.json["message"]
    whole = client.post("/v1/consents", json={**CONSENT, "sender": "*"}, headers=auth(recorder))
    assert whole.status_code == 403 and "sender *" in whole.json["message"]
    (row,) = store.consents(SENDER)
    assert row["sender"] == REGION_NUMBER
    # An auditor of the other account does not see it.
    seen = client.get(f"/v1/consents?number=%2B{SENDER[1:]}", headers=auth(two_accounts.keys["brand_auditor"]))
    assert seen.json["records"] == 0


def test_a_withdrawal_through_the_api(db_url, tmp_path):
    from gateway import create_app

    app = create_app({"TWILIO_AUTH_TOKEN": "t", "DATABASE_URL": db_url, "REQUIRE_CONSENT": ["marketing"]})
    store = services.of(app).store
    recorder = keys.new_key()
    store.add_api_key(keys.hash_key(recorder), "recorder")
    client = app.test_client()
    assert client.post("/v1/consents", json=CONSENT, headers=auth(recorder)).status_code == 201
    body = {"number": SENDER, "category": "marketing", "sender": TWILIO_NUMBER, "reason": "email", "by": "Dana"}
    done = client.post("/v1/consents/withdrawals", json=body, headers=auth(recorder))
    assert done.status_code == 201 and done.json["ended"] == [1]
    again = client.post("/v1/consents/withdrawals", json=body, headers=auth(recorder))
    assert again.status_code == 404 and "has no current consent to marketing" in again.json["message"]
    wrong = client.post("/v1/consents/withdrawals", json={**body, "category": "informational"}, headers=auth(recorder))
    assert wrong.status_code == 400 and "not in require_consent" in wrong.json["message"]
    bad = client.post("/v1/consents/withdrawals", json={**body, "sender": "acme"}, headers=auth(recorder))
    assert bad.status_code == 400 and bad.json["message"].startswith("sender: 'acme' is not a Twilio number")
    store.close()
