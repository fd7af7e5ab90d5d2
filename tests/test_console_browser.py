"""The console in real headless Chromium (Debian's package) against real gunicorn."""

import csv
import io
import shutil
import urllib.request
from urllib.parse import urlencode

import pytest

from gateway import keys
from gateway.store import Store

from .conftest import Gunicorn, sign, sms_params

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags for a closed network: no background fetches, no sandbox as root.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def post_sms(base: str, body: str, sender: str, to: str = "+15005550006") -> None:
    url = base + "/twilio/sms"
    params = sms_params(body, sender=sender, to=to)
    request = urllib.request.Request(
        url, data=urlencode(params).encode(), method="POST", headers={"X-Twilio-Signature": sign(url, params)}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert shutil.which(CHROMIUM), "Chromium is missing: `make test` installs Debian's chromium package"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def site(tmp_path):
    server = Gunicorn(tmp_path, workers=2)
    store = Store(server.db_url)
    made = {}
    for role in ("auditor", "admin"):
        made[role] = keys.new_key()
        store.add_api_key(keys.hash_key(made[role]), role)
    post_sms(server.base, "STOP", "+14155550101")
    post_sms(server.base, "Hi, is my table booked?", "+14155550102")
    post_sms(server.base, "STOP", "+14155550102", to="+15005550007")
    post_sms(server.base, "Please stop texting me", "+14155550103")
    yield server.base.replace("127.0.0.1", "localhost"), made, store
    store.close()
    server.stop()


def sign_in(page, base, key):
    from playwright.sync_api import expect

    page.goto(base + "/console/")
    assert page.url.startswith(base + "/console/sign-in")
    expect(page.get_by_label("API key")).to_be_focused()  # autofocus: keyboard only from here
    page.keyboard.type(key)
    page.keyboard.press("Enter")


def test_wrong_key_is_refused(browser, site):
    base, _, _ = site
    page = browser.new_page()
    sign_in(page, base, "gwk_not_a_real_key")
    assert page.get_by_role("alert").inner_text().startswith("That key is not valid for the console")
    page.goto(base + "/console/opt-outs")
    assert "/console/sign-in" in page.url
    page.close()


def test_auditor_journey(browser, site, tmp_path):
    base, made, _ = site
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    sign_in(page, base, made["auditor"])
    page.wait_for_url(base + "/console/opt-outs")
    assert page.get_by_role("heading", name="Current opt-outs").is_visible()
    assert page.locator("svg.chart rect.bar-out").count() == 30  # one bar a day for 30 days
    assert page.locator("svg.chart rect.bar-in").count() == 30
    today_bar = page.locator("svg.chart rect.bar-out").last
    assert today_bar.locator("title").text_content().endswith(": 2 opt-outs")
    rows = page.locator("table:not(.compact) tbody tr")
    assert rows.count() == 2
    page.screenshot(path=str(tmp_path / "opt-outs.png"), full_page=True)

    # Search the list for one number.
    page.get_by_label("Number", exact=True).fill("+14155550102")
    page.get_by_role("button", name="Search").click()
    assert rows.count() == 1 and "+15005550007" in rows.first.inner_text()

    # Download the CSV of what is shown.
    with page.expect_download() as info:
        page.get_by_role("link", name="Download CSV").click()
    path = tmp_path / "opt-outs.csv"
    info.value.save_as(path)
    downloaded = list(csv.DictReader(io.StringIO(path.read_text())))
    assert [(r["number"], r["twilio_number"]) for r in downloaded] == [("+14155550102", "+15005550007")]

    # One number's timeline, from the header's look-up box.
    page.get_by_label("Number history").fill("+14155550102")
    page.get_by_label("Number history").press("Enter")
    page.wait_for_url("**/console/numbers/**")
    events = page.locator("ol.timeline li")
    assert events.count() == 1 and "opt out" in events.first.inner_text()
    assert "Opted out now of" in page.content()

    # Chain verification status.
    page.get_by_role("link", name="Integrity").click()
    assert page.get_by_role("heading", name="Intact").is_visible()

    # Auditors see candidates but cannot resolve them.
    page.get_by_role("link", name="Revocation candidates").click()
    assert "Please stop texting me" in page.content()
    assert page.get_by_role("button", name="Confirm opt-out").count() == 0
    page.screenshot(path=str(tmp_path / "candidates-auditor.png"), full_page=True)
    context.close()


def test_admin_confirms_a_candidate(browser, site, tmp_path):
    base, made, store = site
    page = browser.new_page()
    sign_in(page, base, made["admin"])
    page.wait_for_url(base + "/console/opt-outs")
    page.get_by_role("link", name="Revocation candidates").click()
    page.get_by_label("Your name").first.fill("Dana Reyes")
    page.get_by_role("button", name="Confirm opt-out").click()
    assert "Candidate 1 confirmed by Dana Reyes." in page.get_by_role("status").first.inner_text()
    assert "No candidates." in page.content()
    assert store.is_opted_out("+14155550103", "+15005550006")
    page.goto(base + "/console/numbers/%2B14155550103")
    assert "Dana Reyes" in page.content()
    page.screenshot(path=str(tmp_path / "timeline.png"), full_page=True)
    page.close()
