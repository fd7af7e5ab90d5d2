"""The console in real headless Chromium (Debian's package) against real gunicorn."""

import csv
import io
import shutil
import urllib.request
from urllib.parse import urlencode

import pytest

from gateway.core import keys
from gateway.store import Store

from ..support.constants import ARTEFACTS
from ..support.database import load_opt_outs
from ..support.servers import Gunicorn
from ..support.webhooks import sign, sms_params

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


def _evidenced():
    from gateway.core.consent import Grant

    return Grant(
        "+14155550104",
        "+15005550006",
        "marketing",
        "web_form",
        "2026-11-02T15:04:05.000000Z",
        "Yes, send me offers from Acme Dental, up to four texts a month. Reply STOP to cancel.",
        "signup form",
        {"form_url": "https://acme.example/join?campaign=winter-2026", "ip": "203.0.113.7", "checkbox": {"id": "c7"}},
    )


EVIDENCED = _evidenced()


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
    store.record_consent(EVIDENCED)  # evidence with a nested field, on the page every width is checked at
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
    assert page.locator("svg.chart.wide rect.bar-out").count() == 30  # one bar a day for 30 days
    assert page.locator("svg.chart.wide rect.bar-in").count() == 30
    assert page.locator("svg.chart.narrow").is_hidden()  # drawn for phones
    today_bar = page.locator("svg.chart.wide rect.bar-out").last
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


def test_evidence_page_for_a_legal_file(browser, site, tmp_path):
    """One number's consent timeline, self-contained, with its chain hashes and the verification; prints to PDF."""
    from gateway.core.consent import Grant

    base, made, store = site
    number = "+14155550109"
    store.record_consent(
        Grant(
            number,
            "+15005550006",
            "marketing",
            "web_form",
            "2026-11-02T15:04:05.000000Z",
            "Yes, send me offers from Acme.",
            "signup form",
            {"form_url": "https://acme.example/join", "ip": "203.0.113.7"},
        )
    )
    post_sms(base.replace("localhost", "127.0.0.1"), "STOP", number)
    post_sms(base.replace("localhost", "127.0.0.1"), "START", number)
    page = browser.new_page()
    sign_in(page, base, made["auditor"])
    page.wait_for_url(base + "/console/opt-outs")
    page.goto(base + "/console/numbers/%2B14155550109")
    changes = [item.split(" · ")[0] for item in page.locator("ol.timeline li p:first-child").all_inner_texts()]
    assert changes == [
        "granted (consent granted)",
        "revoked (opt out)",
        "opted in (opt in)",
        "granted (consent granted)",
    ]
    assert "Current consents: informational from +15005550006" in page.locator("main").inner_text()
    fetched = []
    page.on("request", lambda request: fetched.append(request.url))
    page.get_by_role("link", name="Evidence page").click()
    page.wait_for_url("**/evidence")
    assert fetched == [page.url]  # self-contained: no stylesheet, script or image to fetch
    assert page.get_by_role("heading", name="Consent evidence for +14155550109").is_visible()
    assert page.locator("p.ok").inner_text() == "Ledger intact."
    events = store.history(number, links=True)
    text = page.locator("body").inner_text()
    for event in events:  # every event with both of its chain hashes, as stored
        assert f"prev {event['prev_hash']}" in text and f"hash {event['hash']}" in text
    consents = page.locator("table").first.locator("tbody tr")
    assert consents.count() == 2
    assert "Yes, send me offers from Acme." in consents.first.inner_text()
    stop = next(e for e in events if e["event"] == "opt_out")
    evidence = consents.first.locator("td[data-label=Evidence] dl.fields")
    assert evidence.locator("dt").all_inner_texts() == ["form url", "ip"]
    assert evidence.locator("dd").all_inner_texts() == ["https://acme.example/join", "203.0.113.7"]
    assert f"by event {stop['id']}" in consents.first.inner_text()
    assert "{'" not in text  # no raw dictionary anywhere: the consent's grant event shows its evidence as fields
    page.screenshot(path=str(tmp_path / "evidence.png"), full_page=True)
    pdf = page.pdf(format="Letter")
    assert pdf.startswith(b"%PDF") and len(pdf) > 5000
    (tmp_path / "evidence.pdf").write_bytes(pdf)
    page.close()


WIDTHS = {"desktop": 1280, "phone": 390}


def at_width(browser, width: int):
    """A browser context of ``width`` px, its page, and the folder its screenshots go to."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    folder = ARTEFACTS / "console"
    folder.mkdir(parents=True, exist_ok=True)
    return context, context.new_page(), folder


PAGES = {
    "opt-outs": "/console/opt-outs",
    "candidates": "/console/candidates",
    "integrity": "/console/integrity",
    "timeline": "/console/numbers/%2B14155550104",
    "evidence": "/console/numbers/%2B14155550104/evidence",
}
# Layout faults a person would see: the page scrolls sideways, a time or a number breaks across lines or runs
# out of its cell into the next, a control is off-screen, a dictionary shows as Python wrote it.
LAYOUT = """() => ({
    overflow: document.documentElement.scrollWidth - window.innerWidth,
    brokenTimes: [...document.querySelectorAll('time')]
        .filter(t => t.getClientRects().length > 1).map(t => t.textContent),
    brokenNumbers: [...document.querySelectorAll('.number, td[data-label=Number] a')]
        .filter(n => n.getClientRects().length > 1).map(n => n.textContent),
    outOfCell: [...document.querySelectorAll('td time, td .number')]
        .filter(e => { const r = e.getBoundingClientRect(), c = e.closest('td').getBoundingClientRect();
                       return r.width && (r.right > c.right + 1 || r.left < c.left - 1); })
        .map(e => e.textContent),
    rawDicts: document.body.innerText.includes("{'"),
    times: document.querySelectorAll('time').length,
    clipped: [...document.querySelectorAll('.scroll')].filter(e => e.scrollWidth > e.clientWidth).length,
    outOfReach: [...document.querySelectorAll('main a, main button, main input')]
        .filter(e => { const r = e.getBoundingClientRect(); return r.width && r.right > window.innerWidth + 1; })
        .map(e => e.textContent || e.name),
})"""


@pytest.mark.parametrize("device", WIDTHS)
def test_every_page_fits_a_desktop_and_a_phone(browser, site, device):
    base, made, _ = site
    width = WIDTHS[device]
    context, page, folder = at_width(browser, width)
    page.goto(base + "/console/sign-in")
    page.screenshot(path=str(folder / f"sign-in-{width}.png"), full_page=True)
    sign_in(page, base, made["admin"])
    page.wait_for_url(base + "/console/opt-outs")
    for name, path in PAGES.items():
        page.goto(base + path)
        layout = page.evaluate(LAYOUT)
        page.screenshot(path=str(folder / f"{name}-{width}.png"), full_page=True)
        assert layout["overflow"] <= 0, f"{name} scrolls sideways by {layout['overflow']} px at {width} px"
        assert layout["brokenTimes"] == [], f"{name} breaks times across lines at {width} px"
        assert layout["brokenNumbers"] == [], f"{name} breaks numbers across lines at {width} px"
        assert layout["outOfCell"] == [], f"{name} runs times or numbers out of their cells at {width} px"
        assert not layout["rawDicts"], f"{name} shows a raw dictionary"
        assert layout["outOfReach"] == [], f"{name} puts controls off-screen at {width} px"
        assert layout["clipped"] == 0, f"{name} has a table wider than the page at {width} px"
        assert name == "integrity" or layout["times"] > 0, f"{name} shows no times"
    page.goto(base + "/console/candidates")
    assert page.get_by_label("Your name").count() == 1  # one candidate, one name field
    page.goto(base + "/console/opt-outs")
    first_time = page.locator("table:not(.compact) time").first
    assert first_time.get_attribute("title").endswith("Z")  # the exact stored value, on hover
    context.close()


def test_a_hundred_thousand_opt_outs_page_in_the_browser(browser, tmp_path):
    from playwright.sync_api import expect

    server = Gunicorn(tmp_path, workers=2)
    store = Store(server.db_url)
    load_opt_outs(store, 100_000, spread=True)
    key = keys.new_key()
    store.add_api_key(keys.hash_key(key), "auditor")
    base = server.base.replace("127.0.0.1", "localhost")
    page = browser.new_page()
    try:
        sign_in(page, base, key)
        page.wait_for_url(base + "/console/opt-outs")
        caption = page.locator("table:not(.compact) caption")
        rows = page.locator("table:not(.compact) tbody tr")
        expect(caption).to_have_text("1–50 of 100,000 opted-out pairs")
        assert rows.count() == 50
        page.get_by_role("link", name="Next").click()
        expect(caption).to_have_text("51–100 of 100,000 opted-out pairs")
        expect(rows.first.locator("a")).to_have_text("+1200000050")
        page.get_by_role("link", name="Last").click()
        expect(caption).to_have_text("99,951–100,000 of 100,000 opted-out pairs")
        expect(rows.last.locator("a")).to_have_text("+1200099999")
        page.get_by_role("link", name="Previous").click()
        expect(caption).to_have_text("99,901–99,950 of 100,000 opted-out pairs")
        page.get_by_role("link", name="First").click()
        expect(rows.first.locator("a")).to_have_text("+1200000000")
        page.screenshot(path=str(ARTEFACTS / "console" / "opt-outs-100k-1280.png"))
    finally:
        page.close()
        store.close()
        server.stop()


@pytest.mark.parametrize("device", WIDTHS)
def test_the_number_search_takes_typed_forms_and_keeps_a_mistake(browser, site, device):
    """From the header's box: a national form finds the number; what is no number is explained and stays in
    the box to correct; a malformed number in the address is an error page of the console, not bare text."""
    base, made, _ = site
    width = WIDTHS[device]
    context, page, folder = at_width(browser, width)
    sign_in(page, base, made["auditor"])
    page.wait_for_url(base + "/console/opt-outs")
    box = page.get_by_label("Number history")
    box.fill("(415) 555-0102")
    box.press("Enter")
    page.wait_for_url(base + "/console/numbers/+14155550102")
    assert page.get_by_role("heading", name="Consent timeline of +14155550102").is_visible()
    box.fill("+1 415 555")
    box.press("Enter")
    page.wait_for_url("**/console/opt-outs?lookup=*")
    assert "'+1 415 555' is not a phone number: too short for its country" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("Number history").input_value() == "+1 415 555"
    page.screenshot(path=str(folder / f"search-mistake-{width}.png"), full_page=True)
    answer = page.goto(base + "/console/numbers/4155550100/evidence")
    assert answer.status == 400 and page.get_by_role("alert").is_visible()
    assert page.get_by_label("Number history").is_visible()  # the layout, with a way on
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    page.screenshot(path=str(folder / f"bad-number-{width}.png"), full_page=True)
    context.close()
