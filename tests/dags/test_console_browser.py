"""The operator console in a real browser: headless Debian ``chromium`` driven by Playwright,
against a real ``airflow api-server`` (the session's metadata database, the project's plugins
folder, the simple auth manager with one user per role) and the devkit's DMP endpoint.

The story of the issue: an operator logs in through Airflow's own login page, finds a document
by its unique id, opens its timeline (each step linked to its task instance), replays the DMP
delivery the DMP refused — with a reason — and, the DMP accepting again, sees it sent once; the
replay is in the operators' trail; a viewer sees no identity and no action. The sending step is
the DMP sender itself (:class:`pfi.flows.dmp.DmpSender` through the queue), called in-process as
``deliver_dmp`` calls it, so that the test needs one Airflow process, not ``make run``'s stack.

Screenshots of each step are kept in ``var/test-artefacts/console/`` (git-ignored). Marker
``browser``: ``pytest -m browser`` runs only these, ``-m "not browser"`` leaves them out.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from pfi.ledger import Ledger, upgrade
from pfi_fixtures.ledger import record_document
from pfi_fixtures.partners import dmp_signer, dmp_tls

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
        yield Stack(url, ledger)
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
def refused_document(stack, dmp_endpoint, test_pki, samples_dir, tmp_path):
    """The official-twin MDM^T02 recorded as intake records it, sent to a DMP that refuses it;
    the sender and its queue to send again."""
    from pfi.base.retry import RetryPolicy
    from pfi.base.settings import load_settings
    from pfi.flows.dmp import DmpSender
    from pfi.flows.queue import run_due
    from pfi.protocols.dmp.client import DmpClient, DmpEndpoints
    from pfi.protocols.dmp.config import DmpConfig
    from pfi.protocols.dmp.submission import DmpSubmission
    from pfi.protocols.hl7v2 import parse_message
    from pfi_devkit.samples import MDM_INIT
    from pfi_fixtures.site import write_settings

    raw = (samples_dir / MDM_INIT).read_bytes()
    request = parse_message(raw)
    submission = DmpSubmission.from_request(request)
    control_id = f"CONSOLE{int(time.time())}"
    recorded = record_document(
        stack.ledger,
        submission.unique_id,
        "dmp",
        checksum=hashlib.sha256(raw + control_id.encode()).hexdigest(),
        control_id=control_id,
        message_type=request.message_type,
        ins_matricule=INS,
        ins_oid=INS_OID,
        ins_qualified=True,
        finess_geo="750712184",
    )
    settings = load_settings(write_settings(tmp_path, name="CH TEST"))
    client = DmpClient(
        DmpEndpoints(dmp_endpoint.repository_url, dmp_endpoint.registry_url), dmp_tls(test_pki)
    )
    policy = RetryPolicy(
        first_delay=timedelta(minutes=2),
        max_delay=timedelta(minutes=30),
        give_up_after=timedelta(days=2),
    )
    sender = DmpSender(
        stack.ledger,
        client,
        dmp_signer(test_pki),
        DmpConfig(source_id="1.2.250.1.71.4.2.2", structure_name="CH TEST", retry=policy),
        load_request=lambda _ledger, _item: request,
        settings=settings,
        actor=ACTOR,
    )

    def send_due() -> dict:
        return run_due(
            stack.ledger,
            "dmp",
            sender,
            policy=policy,
            actor=ACTOR,
            now=datetime.now(UTC) + timedelta(seconds=1),
            after=sender.after,
        )

    dmp_endpoint.set_mode("fail")
    send_due()
    assert stack.ledger.get_delivery(recorded.delivery_id).status in ("refused", "failed")
    dmp_endpoint.set_mode("normal")
    yield submission.unique_id, recorded, send_due
    client.close()


def test_an_operator_finds_a_refused_document_replays_it_and_sees_it_sent_once(
    stack, browser, refused_document, dmp_endpoint
):
    unique_id, recorded, send_due = refused_document
    delivery = recorded.delivery_id
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
    links = page.locator("#steps a.task-link")
    assert links.count() >= 1
    href = links.first.get_attribute("href")
    assert href.startswith("/dags/deliver_dmp/runs/manual__2026-12-03T10")
    assert href.endswith("/tasks/send_due_deliveries/mapped/0")
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

    # deliver_dmp's step sends it: the DMP accepts it this time
    before = len(dmp_endpoint.submissions) if hasattr(dmp_endpoint, "submissions") else None
    counts = send_due()
    assert counts["sent"] == 1
    page.reload()
    status = page.locator(f"#deliveries tr[data-delivery='{delivery}'] .status")
    assert status.inner_text() == "envoyé"
    sent = stack.ledger.get_delivery(delivery)
    assert sent.status == "sent" and sent.attempts == 2
    if before is not None:
        assert len(dmp_endpoint.submissions) == before + 1
    kinds = [s.get_attribute("data-kind") for s in page.locator("#steps tr.step").all()]
    assert "operator.replay" in kinds
    shot(page, "06-envoye")

    # a second replay would be a duplicate: the page warns and asks to confirm
    page.locator(f"#deliveries tr[data-delivery='{delivery}'] button.replay").click()
    assert page.locator("#duplicate-warning").is_visible()
    shot(page, "07-avertissement-doublon")
    page.locator("#confirm-cancel").click()
    assert send_due()["claimed"] == 0  # nothing sent twice

    # the operators' trail
    page.goto(f"{stack.url}/pfi/audit")
    line = page.locator("#audit tr[data-kind='operator.replay']").first
    assert "operateur" in line.inner_text() and "DMP de nouveau disponible" in line.inner_text()
    shot(page, "08-journal")
    page.context.close()


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
