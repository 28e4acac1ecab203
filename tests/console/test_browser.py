"""The console in a real browser: Playwright driving Debian's Chromium against a running server.

Playwright's own browser download does not work on these machines, so the tests launch
/usr/bin/chromium (Debian's package, installed by tests/run.py) through ``executable_path``,
headless, with the background-networking features off (the machine's network is closed).
The student flow runs end to end; screenshots land in docs/console/ for docs/console.md.
"""

from __future__ import annotations

import base64
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from asn1crypto import crl as acrl
from cryptography import x509 as pyx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp as pyocsp

from tests.support.pki import HOLDER, ROOT
from tests.support.server import Server

pytestmark = [pytest.mark.server, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "docs" / "console"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: tests/run.py installs Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def srv(server_factory: Any) -> Server:
    return server_factory(env_extra={"JPKI_MOCK_TIME_TRAVEL": "1"}, workers=1)


@pytest.fixture
def page(browser: Any, srv: Server) -> Iterator[Any]:
    context = browser.new_context(base_url=srv.base, viewport={"width": 1280, "height": 900}, locale="en-US")
    pg = context.new_page()
    problems: list[str] = []
    pg.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    pg.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    pg.problems = problems
    yield pg
    context.close()


def sign_in(pg: Any, srv: Server) -> None:
    pg.goto("/console/")
    assert "/console/login" in pg.url
    pg.fill("#token", srv.token)
    pg.keyboard.press("Enter")
    pg.wait_for_url("**/console/")


def shot(pg: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SHOTS / name), full_page=False)


def test_student_flow_end_to_end(page: Any, srv: Server) -> None:
    pg = page
    sign_in(pg, srv)
    # Create a holder with the keyboard only: focus the first field, type, Tab to the next.
    pg.goto("/console/holders/new")
    pg.focus("#name")
    pg.keyboard.type(HOLDER["name"])
    pg.keyboard.press("Tab")
    assert pg.evaluate("document.activeElement.id") == "date_of_birth"
    pg.fill("#date_of_birth", HOLDER["date_of_birth"])
    pg.select_option("#gender", HOLDER["gender"])
    pg.fill("#address", HOLDER["address"])
    pg.fill("#municipality", "13101")
    pg.focus("#municipality")
    pg.keyboard.press("Enter")
    pg.wait_for_url(re.compile(r".*/console/holders/[0-9]+$"))
    holder_id = pg.url.rsplit("/", 1)[1]
    # Issue a card: both certificates.
    pg.fill("#auth_pin", "1234")
    pg.fill("#sign_password", "ABC123")
    pg.click("#issue-form button")
    pg.wait_for_selector("#card-state")
    assert pg.locator("#certificates .cert-sign.status-good").count() == 1
    # Move house: the signature certificate is revoked (affiliationChanged), the auth one stays.
    pg.fill("#move-address", "東京都中央区銀座1-1")
    pg.fill("#move-municipality", "13102")
    pg.click("#event-move button")
    pg.wait_for_selector("#event-result")
    assert "affiliationChanged" in pg.inner_text("#event-result")
    assert pg.locator("#certificates .cert-sign.status-revoked").count() == 1
    assert pg.locator("#certificates .cert-auth.status-good").count() == 1
    shot(pg, "holder-after-move.png")
    # The revoked signature certificate's page: status, then OCSP says revoked with the reason.
    pg.click("#certificates .cert-sign.status-revoked a")
    pg.wait_for_selector("#cert-status")
    cert_url = pg.url
    assert "revoked" in pg.inner_text("#cert-status") and "affiliationChanged" in pg.inner_text("#cert-status")
    pg.select_option("#method", "GET")
    pg.select_option("#hash", "sha256")
    pg.check("#nonce")
    pg.click("#ocsp-form button")
    pg.wait_for_selector("#ocsp-status")
    assert pg.inner_text("#ocsp-status") == "revoked"
    assert pg.inner_text("#ocsp-reason") == "affiliationChanged"
    # Hovering a node of the response highlights exactly its bytes in the hex view.
    node = pg.locator('#hex-resp').locator("xpath=ancestor::div[@class='explained']").locator(".node").nth(1)
    node.hover()
    li = node.locator("xpath=..")
    start, header, end = (int(li.get_attribute(a)) for a in ("data-s", "data-h", "data-e"))
    assert pg.locator("#hex-resp .b.h").count() == header - start
    assert pg.locator("#hex-resp .b.c").count() == end - header
    shot(pg, "certificate-ocsp.png")
    # Publish CRLs and find the certificate on its municipality's partition (the old address: 13101).
    pg.goto("/console/crls")
    pg.click("#publish-form button")
    pg.wait_for_selector("#published")
    pg.goto(cert_url)
    pg.click("#find-on-crl")
    pg.wait_for_selector("#serial-result")
    assert "affiliationChanged" in pg.inner_text("#serial-result")
    assert "/13101" in pg.url or "13101" in pg.inner_text("h1")
    # The same entry, read by an independent parser from the partition CRL the server publishes.
    serial = int(pg.url.split("serial=")[1].split("&")[0])
    crl = acrl.CertificateList.load(requests.get(f"{srv.base}/crl/sign/g1/13101.crl", timeout=10).content)
    entries = crl["tbs_cert_list"]["revoked_certificates"]
    listed = {rc["user_certificate"].native: rc.crl_reason_value.native for rc in entries}
    assert listed[serial] == "affiliation_changed"
    # The holder list finds them.
    pg.goto("/console/holders?q=" + HOLDER["name"].split("\u3000")[0])
    assert pg.locator(f'#holders a[href="/console/holders/{holder_id}"]').count() == 1
    pg.goto("/console/")
    shot(pg, "overview.png")
    assert not pg.problems, pg.problems


def test_explainer_on_each_artefact_kind(page: Any, srv: Server, tmp_path: Path) -> None:
    pg = page
    auth = {"Authorization": f"Bearer {srv.token}"}
    holder = requests.post(f"{srv.base}/admin/api/holders", json={**HOLDER, "municipality": "13101"},
                           headers=auth, timeout=10).json()
    issued = requests.post(f"{srv.base}/admin/api/holders/{holder['id']}/certificates",
                           json={"kinds": "sign", "pkcs12_passphrase": "p12-pass"}, headers=auth, timeout=30).json()
    requests.post(f"{srv.base}/admin/api/crl/publish", json={"ca": "sign", "partition": "full"}, headers=auth,
                  timeout=30).raise_for_status()
    p12 = tmp_path / "holder.p12"
    p12.write_bytes(base64.b64decode(issued[0]["pkcs12_base64"]))
    crl_file = tmp_path / "full.crl"
    crl_file.write_bytes(requests.get(f"{srv.base}/crl/sign/g1/full.crl", timeout=10).content)
    ca_pem = requests.get(f"{srv.base}/ca/sign-g1.pem", timeout=10).text
    # A CMS signature made by the holder's software card, and an OCSP exchange for the certificate.
    holder2 = requests.post(f"{srv.base}/admin/api/holders", json={**HOLDER, "municipality": "13101"},
                            headers=auth, timeout=10).json()
    requests.post(f"{srv.base}/admin/api/holders/{holder2['id']}/card",
                  json={"auth_pin": "1234", "sign_password": "ABC123"}, headers=auth, timeout=30).raise_for_status()
    cms = requests.post(f"{srv.base}/admin/api/holders/{holder2['id']}/card/sign",
                        json={"password": "ABC123", "data_base64": base64.b64encode(b"application").decode()},
                        headers=auth, timeout=30).json()["signature_base64"]
    cert = pyx509.load_pem_x509_certificate(issued[0]["pem"].encode())
    issuer = pyx509.load_pem_x509_certificate(ca_pem.encode())
    ocsp_request = pyocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build() \
        .public_bytes(serialization.Encoding.DER)
    ocsp_response = requests.post(f"{srv.base}/ocsp", data=ocsp_request, timeout=10,
                                  headers={"Content-Type": "application/ocsp-request"}).content

    def explain(text: str = "", file: Path | None = None, passphrase: str = "") -> str:
        pg.goto("/console/explain")
        if text:
            pg.fill("#input", text)
        if file is not None:
            pg.set_input_files("#file", str(file))
        if passphrase:
            pg.fill("#passphrase", passphrase)
        pg.click("#explain-form button")
        pg.wait_for_load_state()
        return str(pg.locator(".kind").first.get_attribute("data-kind")) if pg.locator(".kind").count() else ""

    # The explainer is public: no sign-in.
    assert explain(ca_pem) == "certificate"
    shot(pg, "explainer.png")
    assert explain(file=crl_file) == "crl"
    assert explain(cms) == "cms"
    assert pg.locator("text=signer certificate 1").count() >= 1
    assert explain(base64.b64encode(ocsp_request).decode()) == "ocsp-request"
    assert explain(base64.b64encode(ocsp_response).decode()) == "ocsp-response"
    assert pg.locator("text=responder certificate 1").count() >= 1
    # Keyboard: Tab reaches the tree's nodes, and focusing one highlights its bytes.
    first = pg.locator(".tree .node").nth(2)
    first.focus()
    assert pg.evaluate("document.activeElement.classList.contains('node')")
    li = first.locator("xpath=..")
    start, end = int(li.get_attribute("data-s")), int(li.get_attribute("data-e"))
    assert pg.locator(".explained").first.locator(".hex .b.h, .hex .b.c").count() == end - start
    assert explain(file=p12, passphrase="p12-pass") == "pkcs12"
    assert pg.locator("text=certificate 1").count() >= 1
    assert not pg.problems, pg.problems
    # Bad input: the page again with the error named, status 400 (which Chromium logs as such).
    assert explain(base64.b64encode(p12.read_bytes()).decode()) == ""
    assert "passphrase" in pg.inner_text("#error")
    assert explain("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----") == ""
    assert "input" in pg.inner_text("#error")
    assert pg.problems == [("console error: Failed to load resource: the server responded with a status of 400 "
                           "(Bad Request)")] * 2, pg.problems


def test_language_switch_and_refusals(page: Any, srv: Server) -> None:
    pg = page
    sign_in(pg, srv)
    pg.click("#lang-switch")
    pg.wait_for_load_state()
    assert pg.get_attribute("html", "lang") == "ja"
    assert "利用者証明用電子証明書" in pg.inner_text("main")
    shot(pg, "overview-ja.png")
    pg.click("#lang-switch")
    pg.wait_for_load_state()
    assert pg.get_attribute("html", "lang") == "en"
    # A form posted without this session's CSRF token is refused and creates nothing.
    before = len(requests.get(f"{srv.base}/admin/api/holders", headers={"Authorization": f"Bearer {srv.token}"},
                              timeout=10).json())
    status = pg.evaluate("""async () => {
        const body = new URLSearchParams({name: 'x', date_of_birth: '19800101', gender: '1',
                                          address: '東京都千代田区千代田1-1', csrf_token: 'forged'});
        return (await fetch('/console/holders/new', {method: 'POST', body})).status; }""")
    assert status == 403
    after = len(requests.get(f"{srv.base}/admin/api/holders", headers={"Authorization": f"Bearer {srv.token}"},
                             timeout=10).json())
    assert after == before
    # Signing out ends the session: write pages send the browser back to sign-in.
    pg.goto("/console/")
    pg.click("header form button")
    pg.wait_for_url("**/console/login")
    pg.goto("/console/holders/new")
    assert "/console/login" in pg.url
    # A session cookie the browser cannot read from script (HttpOnly) and never sends cross-site.
    cookies = [c for c in pg.context.cookies() if c["name"] == "jpki_mock_console"]
    assert all(c["httpOnly"] and c["sameSite"] == "Strict" for c in cookies)
    assert "jpki_mock_console" not in pg.evaluate("document.cookie")
    pg.problems[:] = [p for p in pg.problems if "403" not in p]  # the refused fetch logs its status
    assert not pg.problems, pg.problems


def test_browser_is_debians_chromium() -> None:
    # The suite must not depend on Playwright's download, which cannot work here.
    assert shutil.which("chromium") == CHROMIUM or Path(CHROMIUM).exists()
