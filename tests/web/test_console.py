"""The console through the Flask client: sessions, CSRF, roles, headers."""

import html
import re

import pytest
from flask import request
from flask.sessions import NullSession

from gateway.core import imports, keys

from ..support.constants import SENDER

BASE = "https://localhost"


@pytest.fixture
def console(client):
    client.application.config["SERVER_NAME"] = None
    return client


@pytest.fixture
def make_key(store):
    def make(role):
        key = keys.new_key()
        key_id = store.add_api_key(keys.hash_key(key), role)
        return key, key_id

    return make


def csrf(client, path="/console/sign-in"):
    page = client.get(path, base_url=BASE)
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def sign_in(client, key):
    return client.post("/console/sign-in", data={"key": key, "csrf_token": csrf(client)}, base_url=BASE)


def test_pages_need_sign_in(console):
    for path in ("/console/opt-outs", "/console/integrity", "/console/candidates", f"/console/numbers/{SENDER}"):
        response = console.get(path, base_url=BASE)
        assert response.status_code == 302 and "/console/sign-in" in response.headers["Location"]


def test_sign_in_sets_a_safe_cookie(console, make_key):
    key, _ = make_key("auditor")
    response = sign_in(console, key)
    assert response.status_code == 302 and response.headers["Location"] == "/console/opt-outs"
    cookie = response.headers["Set-Cookie"]
    for flag in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/console"):
        assert flag in cookie
    assert key not in cookie
    page = console.get("/console/opt-outs", base_url=BASE)
    assert page.status_code == 200 and "Current opt-outs" in page.text


@pytest.mark.parametrize(
    ("next_path", "expected"),
    [
        ("/console/candidates", "/console/candidates"),
        ("/console/numbers/+14155550100", "/console/numbers/+14155550100"),
        ("/console/opt-outs?page=2&number=%2B14155550100", "/console/opt-outs?page=2&number=%2B14155550100"),
        ("/console\r\nX-Injected: 1", "/console/opt-outs"),  # a header, were it followed
        ("//evil.example/console", "/console/opt-outs"),
        ("https://evil.example/console", "/console/opt-outs"),
        ("/consoles", "/console/opt-outs"),
        ("/console/../v1/opt-outs", "/console/opt-outs"),
        ("/console\\@evil.example", "/console/opt-outs"),
        ("/console/\n", "/console/opt-outs"),
        ("", "/console/opt-outs"),
    ],
)
def test_sign_in_follows_only_this_consoles_own_paths(console, make_key, next_path, expected):
    key, _ = make_key("auditor")
    response = console.post(
        "/console/sign-in",
        query_string={"next": next_path},  # as the sign-in redirect encodes it
        data={"key": key, "csrf_token": csrf(console)},
        base_url=BASE,
    )
    assert response.status_code == 302 and response.headers["Location"] == expected
    assert "X-Injected" not in response.headers


def test_a_server_error_never_carries_a_session(app):
    """Whatever a request did to the session before failing (a sign-in half done), the 500 does not set it."""
    from flask import Response, session

    with app.test_request_context("/console/sign-in", base_url=BASE):
        opened = app.session_interface.open_session(app, request)
        opened["key_hash"] = "x" * 64
        failed, done = Response(status=500), Response(status=302)
        app.session_interface.save_session(app, opened, failed)
        app.session_interface.save_session(app, opened, done)
        assert "Set-Cookie" not in failed.headers and "Set-Cookie" in done.headers
        assert session is not None


@pytest.mark.parametrize(
    ("path", "has_session"),
    [
        ("/console", True),
        ("/console/opt-outs", True),
        ("/twilio/sms", False),
        ("/v1/outbound-sms", False),
        ("/consoles", False),
    ],
)
def test_only_the_console_has_sessions(app, path, has_session):
    """The webhooks and the API skip the cookie session, a cost on every request."""
    with app.test_request_context(path, base_url=BASE):
        opened = app.session_interface.open_session(app, request)
        assert (not isinstance(opened, NullSession)) is has_session


@pytest.mark.parametrize("key", ["gwk_wrong", ""])
def test_wrong_key_is_refused(console, make_key, key):
    make_key("auditor")
    response = sign_in(console, key)
    assert response.status_code == 401
    assert "That key is not valid for the console" in response.text
    assert console.get("/console/opt-outs", base_url=BASE).status_code == 302


def test_sender_key_is_refused(console, make_key):
    key, _ = make_key("sender")
    assert sign_in(console, key).status_code == 401


def test_post_without_csrf_is_rejected(console, make_key):
    key, _ = make_key("auditor")
    response = console.post("/console/sign-in", data={"key": key}, base_url=BASE)
    assert response.status_code == 400 and "the form has expired" in response.text


def test_a_token_from_another_session_is_rejected(console, app, make_key):
    key, _ = make_key("admin")
    other = app.test_client()
    foreign = csrf(other)  # a valid token, of someone else's session
    csrf(console)
    response = console.post("/console/sign-in", data={"key": key, "csrf_token": foreign}, base_url=BASE)
    assert response.status_code == 400 and "the form has expired" in response.text


def test_a_token_without_a_session_is_rejected(console, app, make_key):
    key, _ = make_key("admin")
    foreign = csrf(app.test_client())
    response = console.post("/console/sign-in", data={"key": key, "csrf_token": foreign}, base_url=BASE)
    assert response.status_code == 400
    assert console.post("/console/sign-in", data={"key": key, "csrf_token": ""}, base_url=BASE).status_code == 400


def test_revoking_the_key_ends_the_session(console, make_key, store):
    key, key_id = make_key("auditor")
    sign_in(console, key)
    assert console.get("/console/opt-outs", base_url=BASE).status_code == 200
    store.revoke_api_key(key_id)
    assert console.get("/console/opt-outs", base_url=BASE).status_code == 302


def test_sign_out(console, make_key):
    key, _ = make_key("auditor")
    sign_in(console, key)
    token = csrf(console, "/console/opt-outs")
    assert console.post("/console/sign-out", data={"csrf_token": token}, base_url=BASE).status_code == 302
    assert console.get("/console/opt-outs", base_url=BASE).status_code == 302


def test_no_open_redirect(console, make_key):
    key, _ = make_key("auditor")
    response = console.post(
        "/console/sign-in?next=https://evil.example/", data={"key": key, "csrf_token": csrf(console)}, base_url=BASE
    )
    assert response.headers["Location"] == "/console/opt-outs"


def test_security_headers(console):
    headers = console.get("/console/sign-in", base_url=BASE).headers
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Cache-Control"] == "no-store"


def test_auditor_cannot_resolve_candidates(console, make_key, twilio, store):
    twilio.sms("opt me out")
    key, _ = make_key("auditor")
    sign_in(console, key)
    page = console.get("/console/candidates", base_url=BASE)
    assert "opt me out" in page.text and "Confirm opt-out" not in page.text
    token = csrf(console, "/console/candidates")
    response = console.post("/console/candidates/1/confirm", data={"by": "x", "csrf_token": token}, base_url=BASE)
    assert response.status_code == 403
    assert store.revocation_candidates()[0]["status"] == "open"


def test_admin_dismiss_needs_a_reason(console, make_key, twilio, store):
    twilio.sms("opt me out")
    key, _ = make_key("admin")
    sign_in(console, key)
    token = csrf(console, "/console/candidates")
    response = console.post(
        "/console/candidates/1/dismiss", data={"by": "Sam", "csrf_token": token}, base_url=BASE, follow_redirects=True
    )
    assert "why it is not a revocation" in response.text
    assert store.revocation_candidates()[0]["status"] == "open"


def test_filters_and_bad_dates(console, make_key, twilio):
    twilio.sms("STOP")
    twilio.sms("STOP", sender="+14155550999")
    key, _ = make_key("auditor")
    sign_in(console, key)
    page = console.get("/console/opt-outs?number=%2B14155550999", base_url=BASE)
    assert "+14155550999" in page.text and SENDER not in page.text.split('<table class="stack">', 2)[-1]
    bad = console.get("/console/opt-outs?since=someday", base_url=BASE)
    assert bad.status_code == 200 and "since: not a date" in bad.text
    assert console.get("/console/opt-outs.csv?since=someday", base_url=BASE).status_code == 400


def test_text_is_escaped(console, make_key, twilio):
    twilio.sms("<script>alert(1)</script> stop texting me")
    key, _ = make_key("auditor")
    sign_in(console, key)
    page = console.get(f"/console/numbers/{SENDER}", base_url=BASE)
    assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;" in page.text


def test_timeline_of_a_malformed_number_is_an_error_and_of_an_unknown_one_says_so(console, make_key):
    key, _ = make_key("auditor")
    sign_in(console, key)
    bad = console.get("/console/numbers/4155550100", base_url=BASE)
    assert bad.status_code == 400 and "'4155550100' is not an E.164 number" in html.unescape(bad.text)
    assert bad.content_type.startswith("text/html") and 'aria-label="Sections"' in bad.text  # the console's layout
    evidence = console.get("/console/numbers/hello/evidence", base_url=BASE)
    assert evidence.status_code == 400 and "Number history" in evidence.text  # a way on: the look-up box
    empty = console.get("/console/numbers/+14155550177", base_url=BASE)
    assert empty.status_code == 200 and "No records for" in empty.text and "+14155550177" in empty.text


def test_numbers_no_database_can_hold_are_not_a_server_error(console, make_key):
    key, _ = make_key("admin")
    sign_in(console, key)
    assert console.get("/console/opt-outs?page=99999999999999999999", base_url=BASE).status_code == 200  # ignored
    token = csrf(console, "/console/candidates")
    answer = console.post(
        "/console/candidates/99999999999999999999/confirm",
        data={"by": "ana", "csrf_token": token},
        base_url=BASE,
        follow_redirects=True,
    )
    assert answer.status_code == 200 and "no revocation candidate 99999999999999999999" in answer.text


def _listed(page) -> list[str]:
    return re.findall(r'<td data-label="Number"><a href="/console/numbers/[^"]+">(\+\d+)</a></td>', page.text)


def _link(page, label) -> str | None:
    found = re.search(rf'<a href="([^"]+)">{label}</a>', page.text)
    return html.unescape(found.group(1)) if found else None


def test_the_opt_out_list_pages_by_its_order(console, make_key, store):
    rows = [
        imports.ImportRow(
            n + 2, f"+1415555{n:04d}", "+15005550006", f"2024-01-01T00:{n // 60:02d}:{n % 60:02d}.000000Z"
        )
        for n in range(120)
    ]
    store.import_opt_outs(rows, "crm")
    key, _ = make_key("auditor")
    sign_in(console, key)
    first = console.get("/console/opt-outs", base_url=BASE)
    assert "1–50 of 120 opted-out pairs" in first.text
    assert _link(first, "First") is None and _link(first, "Previous") is None and _link(first, "Last")
    seen, page = [], first
    while True:
        seen += _listed(page)
        if not (after := _link(page, "Next")):
            break
        page = console.get(after, base_url=BASE)
    assert seen == [row.number for row in rows]  # every pair once, in time order
    assert "101–120 of 120" in page.text and _link(page, "Last") is None
    last = console.get(_link(first, "Last"), base_url=BASE)  # the final 50, wherever the walk's pages fell
    assert "71–120 of 120" in last.text and _listed(last) == [row.number for row in rows[70:]]
    back = console.get(_link(last, "Previous"), base_url=BASE)
    assert "21–70 of 120" in back.text and _listed(back) == [row.number for row in rows[20:70]]
    assert _link(back, "First") == "/console/opt-outs"


def test_filters_carry_across_pages(console, make_key, store):
    rows = [imports.ImportRow(n + 2, f"+1415555{n:04d}", f"+1500555000{6 + n % 2}", None) for n in range(120)]
    store.import_opt_outs(rows, "crm")
    key, _ = make_key("auditor")
    sign_in(console, key)
    first = console.get("/console/opt-outs?twilio_number=%2B15005550007", base_url=BASE)
    assert "1–50 of 60 opted-out pairs" in first.text
    second = console.get(_link(first, "Next"), base_url=BASE)
    assert "51–60 of 60" in second.text and len(_listed(second)) == 10
    assert "twilio_number=%2B15005550007" in _link(second, "First")


@pytest.mark.parametrize(
    "query",
    [
        "after=garbage",
        "before=2024-01-01T00:00:00.000000Z|+1415%00|+15005550006",
        f"before=2024-01-01T00:00:00.000000Z|{'1' * 65}|+15005550006",
        "after=2024-13-01T00:00:00.000000Z|+14155550100|+15005550006",
        "after=a|b|c|d",
    ],
)
def test_a_page_that_is_no_place_in_the_list_shows_the_first(console, make_key, twilio, query):
    twilio.sms("STOP")
    key, _ = make_key("auditor")
    sign_in(console, key)
    page = console.get(f"/console/opt-outs?{query}", base_url=BASE)
    assert page.status_code == 200 and "not a place in this list; showing the first page" in page.text
    assert _listed(page) == [SENDER]


def test_times_read_easily_and_keep_their_exact_value(console, make_key, store):
    store.import_opt_outs([imports.ImportRow(2, SENDER, "+15005550006", "2024-03-05T17:04:09.123456Z")], "crm")
    key, _ = make_key("auditor")
    sign_in(console, key)
    page = console.get("/console/opt-outs", base_url=BASE)
    assert (
        '<time datetime="2024-03-05T17:04:09.123Z" title="2024-03-05T17:04:09.123456Z">5 Mar 2024, 17:04:09 UTC</time>'
        in page.text
    )
    assert '<th scope="col">MessageSid</th>' in page.text
    timeline = console.get(f"/console/numbers/{SENDER}", base_url=BASE)
    assert "(since <time" in timeline.text and "5 Mar 2024, 17:04:09 UTC" in timeline.text


def test_each_candidate_asks_for_a_name_once(console, make_key, twilio, store):
    twilio.sms("opt me out")
    twilio.sms("please stop texting me", sender="+14155550111")
    key, _ = make_key("admin")
    sign_in(console, key)
    page = console.get("/console/candidates", base_url=BASE)
    assert page.text.count(">Your name</label>") == 2 and page.text.count('name="by"') == 2
    assert page.text.count('formaction="/console/candidates/') == 2  # Dismiss shares the row's form
    token = csrf(console, "/console/candidates")
    done = console.post(
        "/console/candidates/2/dismiss",
        data={"by": "Sam", "note": "a complaint about another firm", "csrf_token": token},
        base_url=BASE,
        follow_redirects=True,
    )
    assert "Candidate 2 dismissed by Sam." in done.text
    assert len(re.findall(r'<time datetime="[^"]+" title="[^"]+Z">\d+ \w{3} \d{4}, [\d:]+ UTC</time>', page.text)) == 2
    assert len(re.findall(r'<time datetime="\d{4}-\d\d-\d\d">', page.text)) == 2  # due dates


# -- a key limited to accounts ------------------------------------------------------------

PAGES = [
    "/console/opt-outs",
    "/console/opt-outs.csv",
    "/console/numbers/{region_stop}",
    "/console/numbers/{brand_stop}",
    "/console/integrity",
    "/console/candidates?status=all",
]


@pytest.mark.parametrize("path", PAGES)
def test_a_console_signed_in_with_a_limited_key_shows_nothing_of_another_account(two_accounts, path):
    url = path.format(**two_accounts.users)
    limited, everyone = two_accounts.app.test_client(), two_accounts.app.test_client()
    sign_in(limited, two_accounts.keys["brand_auditor"])
    sign_in(everyone, two_accounts.keys["everyone"])
    page, full = limited.get(url, base_url=BASE, buffered=True), everyone.get(url, base_url=BASE, buffered=True)
    assert page.status_code == full.status_code == 200
    asked = url.rsplit("/", 1)[-1] if "/numbers/" in url else None  # the timeline names the number asked about
    for mark in two_accounts.region_marks:
        if mark != asked:
            assert mark not in page.text, (url, mark)
    if "/numbers/" not in url and "integrity" not in url:
        assert any(mark in full.text for mark in two_accounts.region_marks), url


def test_the_limited_consoles_counts_are_its_own(two_accounts):
    limited = two_accounts.app.test_client()
    sign_in(limited, two_accounts.keys["brand_auditor"])
    listing = limited.get("/console/opt-outs", base_url=BASE).text
    assert "1–1 of 1 opted-out pair" in html.unescape(listing)
    integrity = limited.get("/console/integrity", base_url=BASE).text
    assert "2 events of your accounts checked, and 2 of other accounts" in integrity


def test_a_limited_admin_cannot_resolve_another_accounts_candidate_in_the_console(two_accounts):
    admin = two_accounts.app.test_client()
    sign_in(admin, two_accounts.keys["brand_admin"])
    region = two_accounts.candidates["region"]
    token = csrf(admin, "/console/candidates")
    answer = admin.post(
        f"/console/candidates/{region}/confirm",
        data={"by": "ana", "csrf_token": token},
        base_url=BASE,
        follow_redirects=True,
    )
    assert f"no revocation candidate {region}" in answer.text
    store = two_accounts.app.extensions["gateway"].store
    assert [c["status"] for c in store.revocation_candidates("all") if c["id"] == region] == ["open"]


@pytest.mark.parametrize(
    ("typed", "found"),
    [
        ("+14155550102", "+14155550102"),
        ("+1 415 555 0102", "+14155550102"),
        ("(415) 555-0102", "+14155550102"),
        ("415.555.0102", "+14155550102"),
        ("4155550102", "+14155550102"),
        ("+44 20 7946 0958", "+442079460958"),
    ],
)
def test_the_number_search_reads_what_people_type(console, make_key, typed, found):
    """The look-up box takes the national and spaced forms people copy from a CRM (read in default_region,
    US unless set); records and URLs stay E.164."""
    key, _ = make_key("auditor")
    sign_in(console, key)
    answer = console.get("/console/numbers", query_string={"number": typed}, base_url=BASE)
    assert answer.status_code == 302 and answer.headers["Location"] == f"/console/numbers/{found}"


@pytest.mark.parametrize("typed", ["hello", "415", "+1 415 555", "1-800-FLOWERS"])
def test_a_search_that_is_no_number_says_why_and_keeps_what_was_typed(console, make_key, typed):
    key, _ = make_key("auditor")
    sign_in(console, key)
    page = console.get("/console/numbers", query_string={"number": typed}, base_url=BASE, follow_redirects=True)
    assert page.status_code == 200 and 'class="flash error"' in page.text
    text = html.unescape(page.text)
    assert f"{typed!r} is not a phone number" in text
    assert f'value="{typed}"' in text  # the box keeps it, to correct rather than retype


def test_the_opt_out_filter_reads_typed_numbers_too(console, make_key, twilio):
    twilio.sms("STOP", sender="+14155550102")
    key, _ = make_key("auditor")
    sign_in(console, key)
    page = console.get("/console/opt-outs", query_string={"number": "(415) 555-0102"}, base_url=BASE)
    assert _listed(page) == ["+14155550102"]
