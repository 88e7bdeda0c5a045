"""Operations alerts (``pfi.flows.alerts``) on a real ledger and the devkit mail servers: a
delivery given up, a partner failing past the threshold, a quarantine past its threshold → one
French mail each in the operations mailbox, read back over IMAP; no INS nor patient name in it,
even when the ledger's reason texts hold them; nothing new within the repeat interval."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from pfi.base.settings import load_settings
from pfi.flows.alerts import EVENT_SENT, AlertsConfig, run_checks
from pfi.flows.queue import GIVEN_UP
from pfi.protocols.mssante.smtp import SmtpClient
from pfi_fixtures.ledger import record_document
from pfi_fixtures.mail import OPERATIONS_MAILBOX, alert_mails, mailbox_endpoints
from pfi_fixtures.site import mailbox, write_settings

pytestmark = pytest.mark.integration

INS, INS_OID = "279035121518989", "1.2.250.1.213.1.4.10"
PATIENT = "PAT-TROIS"
SENDER = "pfi@ch-demo.mssante.test"


@pytest.fixture
def tag() -> str:
    """In the site's name, so that this test's alerts are told from the others' (the mail
    servers are the session's)."""
    return f"CH-alertes-{uuid.uuid4().hex[:10]}"


def site(tmp_path, tag: str, alerts: str = ""):
    extra = f'[alerts]\nrecipients = ["{OPERATIONS_MAILBOX}"]\n{alerts}'
    return load_settings(
        write_settings(tmp_path, name=tag, mailboxes=[mailbox(SENDER)], extra=extra)
    )


def checks(ledger, settings, mail_servers, test_pki, now=None):
    def smtp_for(box):
        return SmtpClient(mailbox_endpoints(mail_servers, test_pki, box.address)[0])

    return run_checks(ledger, settings, smtp_for, actor="test", now=now)


def ids_line(mail) -> str:
    return next(line for line in mail.get_content().splitlines() if line.startswith("Envois ("))


def no_patient_data(mail, raw: bytes) -> None:
    text = raw.decode("utf-8", "replace") + mail["Subject"] + mail.get_content()
    assert INS not in text
    assert PATIENT not in text


def test_a_given_up_delivery_is_mailed_once_then_only_the_new_ones(
    fresh_ledger, tmp_path, tag, mail_servers, test_pki
):
    settings = site(tmp_path, tag)
    first = record_document(
        fresh_ledger, "1.2.250.1.999.7^1", "dmp", ins_matricule=INS, ins_oid=INS_OID
    ).delivery_id
    hostile = f"given up after 72.0 h; last error DMP_UNREACHABLE: {PATIENT} {INS}"
    fresh_ledger.mark_delivery(first, "failed", reason_code=GIVEN_UP, reason_text=hostile)

    counts = checks(fresh_ledger, settings, mail_servers, test_pki)

    assert counts["conditions"] == ["given_up"] and counts["mailed"] == 1
    ((mail, raw),) = alert_mails(mail_servers, test_pki, tag)
    assert mail["Subject"] == "[PFI] Alerte : 1 envoi(s) abandonné(s)"
    assert mail["From"] == SENDER and mail["Auto-Submitted"] == "auto-generated"
    body = mail.get_content()
    assert "DMP : 1" in body and "DMP_UNREACHABLE : 1" in body
    assert f"Envois (identifiants du registre) : {first}" in body
    assert "Console PFI : /pfi/" in body
    no_patient_data(mail, raw)
    (line,) = fresh_ledger.events(kind=EVENT_SENT)
    assert line.detail["condition"] == "given_up" and line.detail["delivery_ids"] == [first]
    assert INS not in str(line.detail) and PATIENT not in str(line.detail)

    # A second check within the repeat interval mails nothing, even with a new given-up delivery.
    second = record_document(fresh_ledger, "1.2.250.1.999.7^2", "dmp").delivery_id
    fresh_ledger.mark_delivery(second, "failed", reason_code=GIVEN_UP, reason_text="x")
    assert checks(fresh_ledger, settings, mail_servers, test_pki)["mailed"] == 0
    assert len(alert_mails(mail_servers, test_pki, tag)) == 1
    # After it, the next alert names only what was given up since the first one.
    later = datetime.now(UTC) + timedelta(minutes=61)
    assert checks(fresh_ledger, settings, mail_servers, test_pki, now=later)["mailed"] == 1
    mails = alert_mails(mail_servers, test_pki, tag)
    assert len(mails) == 2
    assert sorted(ids_line(m) for m, _ in mails) == sorted(
        [
            f"Envois (identifiants du registre) : {first}",
            f"Envois (identifiants du registre) : {second}",
        ]
    )


def test_a_partner_failing_longer_than_the_threshold_is_mailed_once(
    fresh_ledger, tmp_path, tag, mail_servers, test_pki
):
    settings = site(tmp_path, tag, "partner_failing_minutes = 30\n")
    delivery = record_document(
        fresh_ledger, "1.2.250.1.999.8^1", "dmp", ins_matricule=INS, ins_oid=INS_OID
    ).delivery_id
    fresh_ledger.mark_delivery(
        delivery,
        "pending",
        attempted=True,
        reason_code="DMP_UNREACHABLE",
        reason_text=f"connection refused ({PATIENT})",
        next_attempt_at=datetime.now(UTC) + timedelta(minutes=5),
    )
    start = datetime.now(UTC)

    assert checks(fresh_ledger, settings, mail_servers, test_pki, now=start)["conditions"] == []
    counts = checks(
        fresh_ledger, settings, mail_servers, test_pki, now=start + timedelta(minutes=31)
    )

    assert counts["conditions"] == ["partner_failing:dmp"] and counts["mailed"] == 1
    ((mail, raw),) = alert_mails(mail_servers, test_pki, tag)
    assert mail["Subject"].startswith("[PFI] Alerte : le DMP ne répond plus depuis 3")
    body = mail.get_content()
    assert "DMP_UNREACHABLE : 1" in body and f"registre) : {delivery}" in body
    assert "seuil 30 min" in body
    no_patient_data(mail, raw)
    again = checks(
        fresh_ledger, settings, mail_servers, test_pki, now=start + timedelta(minutes=50)
    )
    assert again["conditions"] == ["partner_failing:dmp"] and again["mailed"] == 0
    assert len(alert_mails(mail_servers, test_pki, tag)) == 1

    # The partner answers: the condition is over.
    fresh_ledger.mark_delivery(delivery, "sent", partner_ref="DMP-1")
    assert checks(fresh_ledger, settings, mail_servers, test_pki)["conditions"] == []


def test_a_quarantine_past_its_threshold_is_mailed_once(
    fresh_ledger, tmp_path, tag, mail_servers, test_pki
):
    settings = site(tmp_path, tag, "quarantine_threshold = 2\n")
    for n in range(3):
        item, _ = fresh_ledger.record_inbound(
            kind="mail", source="pfi", checksum=f"{n:064x}", control_id=f"<{n}@x>"
        )
        fresh_ledger.set_inbound_status(
            item, "rejected", reason_code="MSS_NO_XDM", reason_text=f"{PATIENT} {INS}"
        )

    counts = checks(fresh_ledger, settings, mail_servers, test_pki)

    assert counts["conditions"] == ["quarantine"] and counts["mailed"] == 1
    ((mail, raw),) = alert_mails(mail_servers, test_pki, tag)
    assert mail["Subject"] == "[PFI] Alerte : 3 éléments reçus refusés en 24 h"
    body = mail.get_content()
    assert "MSS_NO_XDM : 3" in body and "pfi : 3" in body and "seuil 2" in body
    no_patient_data(mail, raw)
    assert checks(fresh_ledger, settings, mail_servers, test_pki)["mailed"] == 0
    assert len(alert_mails(mail_servers, test_pki, tag)) == 1


def test_a_pending_queue_past_its_threshold_is_a_condition(fresh_ledger, tmp_path, tag):
    settings = site(tmp_path, tag, "pending_threshold = { dmp = 1 }\n")
    record_document(fresh_ledger, "1.2.250.1.999.9^1", "dmp", ("mss_professional", "a@b.fr"))
    record_document(fresh_ledger, "1.2.250.1.999.9^2", "dmp")
    config = AlertsConfig.from_settings(settings)

    assert config.pending_threshold["dmp"] == 1 and config.pending_threshold["dpi"] == 500
    counts = run_checks(
        fresh_ledger,
        settings,
        lambda box: pytest.fail("nothing to mail without recipients"),
        actor="test",
        config=AlertsConfig(pending_threshold=config.pending_threshold),
    )
    assert counts == {"conditions": ["pending:dmp"], "due": 1, "mailed": 0}
    assert fresh_ledger.events(kind=EVENT_SENT) == []
