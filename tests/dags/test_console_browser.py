"""The operator console in a real browser: headless Debian ``chromium`` driven by Playwright,
against a real ``airflow api-server`` (the session's metadata database, the project's plugins
folder, the simple auth manager with one user per role) and the devkit's DMP endpoint.

The story of the issue: a sample MDM is dropped and taken in by the real ``ingest_hl7_drop``
DAG, the real ``deliver_dmp`` DAG sends it to the devkit's DMP endpoint, which refuses it; an
operator logs in through Airflow's own login page, finds the document by its unique id, opens
its timeline (each step linked to its task instance, whose page shows), replays the refused
delivery — with a reason — and, the DMP accepting again and ``deliver_dmp`` running again, sees it
sent once; the replay is in the operators' trail; a viewer sees no identity and no action. The
DAGs run through ``dag.test()`` on the metadata database the api-server shows, so that the test
needs one Airflow process (the api-server), not ``make run``'s scheduler.

Screenshots of each step are kept in ``var/test-artefacts/console/`` (git-ignored). Marker
``browser``: ``pytest -m browser`` runs only these, ``-m "not browser"`` leaves them out.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from pfi.ledger import Ledger, upgrade
from pfi_fixtures.ledger import record_document

pytestmark = [pytest.mark.airflow, pytest.mark.integration, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
ARTEFACTS = ROOT / "var" / "test-artefacts" / "console"
CHROMIUM = "/usr/bin/chromium"
USERS = {"operateur": "user", "lecteur": "viewer", "admin": "admin"}
INS, INS_OID = "279035121518989", "1.2.250.1.213.1.4.10"
ACTOR = "deliver_dmp/send_due_deliveries/manual__2026-12-03T10:00:00+00:00[0]"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Stack:
    url: str
    ledger: Ledger
    ledger_url: str


@pytest.fixture(scope="module")
def stack(airflow_db, postgres_server, tmp_path_factory) -> Iterator[Stack]:
    """A real api-server on an ephemeral port, its console reading the test's ledger."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make install` installs Debian's chromium")
    ledger_url = postgres_server.create_database()
    upgrade(ledger_url)
    home = tmp_path_factory.mktemp("console-api")
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({user: user for user in USERS}))
    port = _free_port()
    env = {
        **os.environ,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": "pfi-console-browser-" + "x" * 64,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW_CONN_PFI_LEDGER": ledger_url,
        "PYTHONPATH": f"{ROOT / 'include'}:{ROOT / 'plugins'}",
    }
    env.pop("PFI_SETTINGS", None)
    log = (home / "api-server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "airflow", "api-server", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    ledger = Ledger.from_url(ledger_url)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/api/v2/monitor/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if server.poll() is not None:
                break
            time.sleep(0.5)
        else:
            server.poll()
        if server.returncode is not None or not requests.get(f"{url}/pfi/api/me").status_code:
            raise AssertionError((home / "api-server.log").read_text()[-3000:])
        yield Stack(url, ledger, ledger_url)
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        ledger.dispose()
        postgres_server.drop_database(ledger_url.rsplit("/", 1)[1])


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield chromium
        chromium.close()


def login(browser, stack: Stack, user: str, next_path: str = "/pfi/", *, console: bool = True):
    """A new browser context logged in through Airflow's own login page; its page at
    ``next_path`` (a console page unless ``console`` is false)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="fr-FR")
    page = context.new_page()
    page.goto(f"{stack.url}{next_path}")
    page.wait_for_url("**/auth/login**")
    page.locator("input[name='username']").fill(user)
    page.locator("input[name='password']").fill(user)
    page.locator("input[name='password']").press("Enter")
    page.wait_for_url(f"**{next_path}**", timeout=30_000)
    if console:
        page.wait_for_selector("header >> text=Console PFI")
    return page


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
def refused_document(stack, monkeypatch, dmp_endpoint, test_pki, samples_dir, tmp_path):
    """The project's MDM^T02 sample dropped and taken in by the real ``ingest_hl7_drop`` DAG,
    then sent by the real ``deliver_dmp`` DAG (``dag.test()``, the metadata database the
    api-server shows) to a DMP that refuses it; a function to run ``deliver_dmp`` again."""
    from pfi_devkit.samples import MDM_INIT, MDM_V1_ID
    from pfi_fixtures.partners import dmp_tls_extra
    from pfi_fixtures.site import drop_sample, hl7_source, load_dag, use_site, write_settings

    settings = write_settings(
        tmp_path,
        sources=[hl7_source(tmp_path)],
        extra="[dmp.retry]\nfirst_delay_seconds = 0.01\nmax_delay_seconds = 0.02",
    )
    dmp = {
        "conn_type": "http",
        "host": dmp_endpoint.host,
        "port": dmp_endpoint.port,
        "schema": "https",
        "extra": dmp_tls_extra(test_pki),
    }
    use_site(monkeypatch, settings, stack.ledger_url, pfi_dmp=dmp)
    _ensure_pool("dmp", 2)
    drop_sample(tmp_path / "in", samples_dir / MDM_INIT, "compte-rendu.hl7")
    assert load_dag("ingest_hl7_drop").test().state == "success"
    deliver = load_dag("deliver_dmp")
    dmp_endpoint.set_mode("fail")
    assert deliver.test().state == "success"  # a refusal is recorded, not a task failure
    document = stack.ledger.find_document(MDM_V1_ID)
    (delivery,) = [d for d in stack.ledger.deliveries_of(document.id) if d.channel == "dmp"]
    assert delivery.status == "refused"
    dmp_endpoint.set_mode("normal")

    def send_due() -> None:
        assert deliver.test().state == "success"

    yield MDM_V1_ID, document.id, delivery.id, send_due


def _ensure_pool(name: str, slots: int) -> None:
    """What ``make run`` does with ``airflow pools set dmp 2 …``."""
    from airflow.models.pool import Pool

    Pool.create_or_update_pool(name, slots, "DMP web services", include_deferred=False)


def test_an_operator_finds_a_refused_document_replays_it_and_sees_it_sent_once(
    stack, browser, refused_document, dmp_endpoint
):
    unique_id, document_id, delivery, send_due = refused_document
    page = login(browser, stack, "operateur")
    shot(page, "01-recherche")

    # find it by its unique id
    page.locator("#search input[name='unique_id']").fill(unique_id)
    page.locator("#search button[type='submit']").click()
    page.wait_for_selector(f"#results tr[data-delivery='{delivery}']")
    assert INS not in page.content()  # an operator without the content right
    shot(page, "02-resultats")

    # its timeline: every step, the task's ones linked to their task instance
    page.locator(f"#results tr[data-delivery='{delivery}'] a.doc-link").click()
    page.wait_for_selector("#steps")
    row = page.locator(f"#deliveries tr[data-delivery='{delivery}']")
    assert row.locator(".status").inner_text() in ("refusé", "en échec")
    links = [a.get_attribute("href") for a in page.locator("#steps a.task-link").all()]
    assert any(h.startswith("/dags/ingest_hl7_drop/runs/") for h in links)
    assert any(h.startswith("/dags/deliver_dmp/runs/") for h in links)
    shot(page, "03-chronologie")

    # replay it, with a reason
    row.locator("button.replay").click()
    dialog = page.locator("dialog#confirm")
    assert dialog.is_visible() and not page.locator("#duplicate-warning").is_visible()
    page.locator("#reason").fill("DMP de nouveau disponible")
    shot(page, "04-confirmation-rejeu")
    page.locator("#confirm-ok").click()
    page.wait_for_selector("#done")
    assert "nouvelle tentative" in page.locator("#done").inner_text()
    assert page.locator(f"#deliveries tr[data-delivery='{delivery}'] .status").inner_text() == (
        "en file"
    )
    shot(page, "05-rejeu-demande")

    # deliver_dmp runs again: the DMP accepts it this time
    send_due()
    page.reload()
    status = page.locator(f"#deliveries tr[data-delivery='{delivery}'] .status")
    assert status.inner_text() == "envoyé"
    sent = stack.ledger.get_delivery(delivery)
    assert sent.status == "sent" and sent.attempts == 2
    assert [s.entries[0] for s in dmp_endpoint.accepted] == [unique_id]  # sent once
    kinds = [s.get_attribute("data-kind") for s in page.locator("#steps tr.step").all()]
    assert "operator.replay" in kinds
    shot(page, "06-envoye")

    # a second replay would be a duplicate: the page warns and asks to confirm
    page.locator(f"#deliveries tr[data-delivery='{delivery}'] button.replay").click()
    assert page.locator("#duplicate-warning").is_visible()
    shot(page, "07-avertissement-doublon")
    page.locator("#confirm-cancel").click()
    send_due()
    assert len(dmp_endpoint.accepted) == 1 and dmp_endpoint.duplicates == 0  # nothing twice

    # a step's link opens its task instance, with its log, in the Airflow UI
    href = page.locator("#steps a.task-link").last.get_attribute("href")
    page.goto(f"{stack.url}{href}")
    page.wait_for_selector("text=submit_due", timeout=30_000)
    shot(page, "07b-instance-de-tache-deliver-dmp")
    page.goto(f"{stack.url}/pfi/documents/{document_id}")

    # the operators' trail
    page.goto(f"{stack.url}/pfi/audit")
    line = page.locator("#audit tr[data-kind='operator.replay']").first
    assert "operateur" in line.inner_text() and "DMP de nouveau disponible" in line.inner_text()
    shot(page, "08-journal")
    page.context.close()

    # an administrator reads the CDA the message carried; that view goes to the trail
    admin = login(browser, stack, "admin", f"/pfi/documents/{document_id}")
    admin.locator("#items tr:has(td:text-is('hl7_message')) a").first.click()
    assert "ClinicalDocument" in admin.locator("#cda").inner_text()
    shot(admin, "08b-original-cda")
    admin.goto(f"{stack.url}/pfi/audit")
    assert admin.locator("#audit tr[data-kind='operator.viewed']").count() >= 1
    admin.context.close()


def test_a_viewer_sees_no_identity_and_no_action(stack, browser):
    unique_id = "1.2.250.1.999.1.1^console-viewer"
    recorded = record_document(
        stack.ledger,
        unique_id,
        "dmp",
        ("mss_patient", None),
        ins_matricule=INS,
        ins_oid=INS_OID,
        ins_qualified=True,
        finess_geo="750712184",
        actor=ACTOR,
    )
    stack.ledger.mark_delivery(recorded.delivery_ids[0], "sent", partner_ref="urn:x", actor=ACTOR)
    page = login(browser, stack, "lecteur", f"/pfi/documents/{recorded.document_id}")
    assert page.locator("#ins").inner_text() == "masqué"
    assert INS not in page.content()
    assert page.locator("button.replay").count() == 0
    assert page.locator("#identity-link").count() == 0
    shot(page, "09-lecteur-chronologie")
    page.goto(f"{stack.url}/pfi/documents/{recorded.document_id}/identity")
    assert "droit requis" in page.locator("#error").inner_text()
    page.goto(f"{stack.url}/pfi/?unique_id={unique_id}")
    assert INS not in page.content() and "masqué" in page.content()

    # the indicators, and a month's CSV downloaded
    page.goto(f"{stack.url}/pfi/indicateurs?period=year")
    page.wait_for_selector("#periods >> text=Année en cours")
    shot(page, "12-indicateurs")
    with page.expect_download() as download:
        page.locator(".site button[type='submit']").first.click()
    saved = ARTEFACTS / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name.startswith("indicateurs_") and saved.read_bytes().startswith(b"\xef\xbb\xbf")
    page.context.close()

    # an administrator sees the INS, and that view is in the trail
    admin = login(browser, stack, "admin", f"/pfi/documents/{recorded.document_id}")
    assert admin.locator("#ins").inner_text() == INS
    shot(admin, "10-admin-identite")
    admin.goto(f"{stack.url}/pfi/audit")
    assert admin.locator("#audit tr[data-kind='operator.viewed']").count() >= 1
    admin.context.close()


def test_the_console_is_a_page_of_the_airflow_ui(stack, browser):
    """The menu entry's page shows the console in the UI; a step's link opens its task
    instance in the UI itself."""
    recorded = record_document(
        stack.ledger, "1.2.250.1.999.1.1^console-ui", "dmp", finess_geo="750712184", actor=ACTOR
    )
    page = login(browser, stack, "lecteur", "/plugin/pfi-console", console=False)
    frame = None
    for _ in range(60):
        frame = next((f for f in page.frames if f != page.main_frame and "/pfi/" in f.url), None)
        if frame is not None:
            break
        page.wait_for_timeout(500)
    assert frame is not None, [f.url for f in page.frames]
    frame.wait_for_selector("header >> text=Journal des opérateurs")
    shot(page, "00-dans-airflow")
    frame.goto(f"{stack.url}/pfi/documents/{recorded.document_id}")
    frame.wait_for_selector("#steps a.task-link")
    frame.locator("#steps a.task-link").first.click()
    page.wait_for_url("**/dags/deliver_dmp/runs/**", timeout=30_000)
    assert "/tasks/send_due_deliveries/mapped/0" in page.url
    shot(page, "11-instance-de-tache")
    page.context.close()
