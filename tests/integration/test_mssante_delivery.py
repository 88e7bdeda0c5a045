"""The MSSanté executor end to end, without Airflow: the project's samples (``pfi_devkit.samples``,
twins of the official v2.1 examples) dropped, taken in by intake, their ``mss_*`` deliveries sent
over real TLS to the devkit mailboxes, business acknowledgements written, notifications (MDN,
DSN) read back over IMAP. The official ANS examples themselves go through the same path in
``test_each_official_example_asking_for_mssante_mails_each_recipient_once``."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from pfi.base.errors import TransientError
from pfi.base.settings import load_settings
from pfi.flows import mssante as service
from pfi.flows.mssante import deliver_due, poll_notifications
from pfi.flows.traces import mss_traces, traces_csv
from pfi.protocols.mssante.imap import ImapClient
from pfi.protocols.mssante.smtp import SmtpClient
from pfi.protocols.xdm import read_xdm
from pfi_devkit.samples import MDM_DEL, MDM_INIT, MDM_RPLC, ORU_INIT
from pfi_fixtures import site as official
from pfi_fixtures.mail import (
    APPLICATION_MAILBOXES,
    DroppingSmtpServer,
    mailbox_endpoints,
    received_mails,
    send_as_human,
)
from pfi_fixtures.site import (
    V21,
    drop_sample,
    hl7_source,
    ingest,
    mailbox,
    write_settings,
)

pytestmark = pytest.mark.integration

SENDER = APPLICATION_MAILBOXES[0]
PROFESSIONAL = "adam.hoda@test-ci-sis.mssante.fr"
PATIENT = "279035121518989@patient.mssante.fr"


@pytest.fixture
def site(tmp_path, fresh_ledger):
    path = write_settings(
        tmp_path,
        name="CH de Démonstration",
        geo_name="Site principal",
        sources=[hl7_source(tmp_path, finess_geo="010000032")],
        mailboxes=[mailbox(SENDER)],
        extra="""
[mssante]
software_reference = "PFI-TEST"
contact_address = "secretariat@ch-demo.mssante.test"
[mssante.retry]
first_delay_seconds = 60
""",
    )
    return load_settings(path), fresh_ledger, tmp_path


def intake(settings, ledger, folder, inputs, *paths):
    """Drop ``inputs / path`` for each path (project samples or official examples), take in."""
    for index, path in enumerate(paths):
        drop_sample(folder / "in", inputs / path, f"{index}.hl7", age=10)
    ingest(ledger, settings)


def smtp_for(mail_servers, test_pki):
    def make(mailbox):
        assert mailbox.address == SENDER
        return SmtpClient(mailbox_endpoints(mail_servers, test_pki, SENDER)[0])

    return make


def imap_for(mail_servers, test_pki):
    return lambda mailbox: ImapClient(mailbox_endpoints(mail_servers, test_pki, mailbox.address)[1])


def mss_deliveries(ledger):
    from sqlalchemy import select

    from pfi.ledger import Delivery
    from pfi.ledger.schema import delivery

    query = (
        select(delivery)
        .where(delivery.c.channel.in_(("mss_professional", "mss_patient")))
        .order_by(delivery.c.id)
    )
    with ledger.engine.connect() as conn:
        return [Delivery.from_row(r._mapping) for r in conn.execute(query)]


def send_all(settings, ledger, mail_servers, test_pki, now=None):
    return {
        channel: deliver_due(
            ledger,
            settings,
            smtp_for(mail_servers, test_pki),
            channel=channel,
            actor="test",
            now=now,
        )
        for channel in ("mss_professional", "mss_patient")
    }


def zams(folder, event):
    out = folder / "out"
    return sorted(p.read_bytes().decode() for p in out.glob(f"ZAM_{event}_*.hl7"))


def test_samples_reach_each_mailbox_exactly_once_and_the_producer_gets_its_zam(
    site, mail_servers, test_pki, samples_dir
):
    settings, ledger, folder = site
    intake(settings, ledger, folder, samples_dir, MDM_INIT, ORU_INIT)
    deliveries = mss_deliveries(ledger)
    # MDM: professionals only; ORU: professional and patient.
    assert sorted((d.channel, d.recipient) for d in deliveries) == [
        ("mss_patient", None),
        ("mss_professional", PROFESSIONAL),
        ("mss_professional", PROFESSIONAL),
    ]
    counts = send_all(settings, ledger, mail_servers, test_pki)
    assert counts["mss_professional"]["sent"] == 2 and counts["mss_patient"]["sent"] == 1

    # A second run finds nothing due: no mail twice.
    again = send_all(settings, ledger, mail_servers, test_pki)
    assert again["mss_professional"]["claimed"] == again["mss_patient"]["claimed"] == 0

    for d in mss_deliveries(ledger):
        assert d.status == "sent" and d.partner_ref == f"<{d.request_id}@ch-demo.mssante.test>"
        address = d.recipient or PATIENT
        (mail,) = received_mails(mail_servers, test_pki, address, d.partner_ref)
        document = ledger.get_document(d.document_id)
        assert mail["X-MSS-CODECDA"] == document.type_code
        xdm = next(p for p in mail.iter_attachments() if p.get_filename() == "IHE_XDM.ZIP")
        (doc,) = read_xdm(xdm.get_content()).documents
        assert doc.entry.unique_id == document.unique_id

    # Every mail asked the relay for a DSN; only the ORU asks ACK_RECEPTION=Y, so its Z02s wait
    # for the operator's "delivered" report, read back from the sending mailbox.
    assert zams(folder, "Z02") == []
    polled = poll_notifications(ledger, settings, imap_for(mail_servers, test_pki), actor="test")
    assert polled["dsn"] == 3 and polled["errors"] == 0
    receipts = zams(folder, "Z02")
    assert len(receipts) == 2
    assert all("ACK_RECEPTION_MSS" in z and "|Y^^expandedYes-NoIndicator|" in z for z in receipts)
    assert any(f"^^X.400^{PATIENT}" in z for z in receipts)
    # Traces (SC.MSS/CONF.17-18): who, to whom, when, which document, outcome — no patient data.
    traces = mss_traces(ledger)
    sent = [t for t in traces if t.what == "sent"]
    assert len(sent) == 3 and all(t.mailbox == "pfi" and t.actor == "test" for t in sent)
    assert {t.recipient for t in sent} == {PROFESSIONAL, "patient"}
    assert {t.document for t in sent} == {
        ledger.get_document(d.document_id).unique_id for d in mss_deliveries(ledger)
    }
    assert [t.what for t in traces if t.recipient == "patient"] == [
        "attempt",
        "sent",
        "delivery-notification",
        "acknowledgement",
    ]
    patient_sent = next(t for t in traces if t.recipient == "patient" and t.what == "sent")
    assert patient_sent.outcome == "accepted (dsn+mdn requested)"
    csv_text = traces_csv(traces)
    assert "279035121518989" not in csv_text and "PAT-TROIS" not in csv_text
    assert mss_traces(ledger, channel="mss_patient", recipient=PROFESSIONAL) == []


def test_pfi_mss_traces_prints_the_traces_as_csv(site, mail_servers, test_pki, samples_dir, capsys):
    from pfi.cli import main

    settings, ledger, folder = site
    intake(settings, ledger, folder, samples_dir, MDM_INIT)
    send_all(settings, ledger, mail_servers, test_pki)
    url = ledger.engine.url.render_as_string(hide_password=False)
    capsys.readouterr()
    assert main(["mss", "traces", "--url", url, "--channel", "mss_professional"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("at;what;actor;mailbox;channel;recipient;document")
    assert [line.split(";")[1] for line in lines[1:]] == ["attempt", "sent"]
    assert all(PROFESSIONAL in line for line in lines[1:])
    assert main(["mss", "traces", "--url", url, "--since", "2999-01-01"]) == 0
    assert capsys.readouterr().out.count("\n") == 1  # the header only


def test_relay_down_then_back_defers_then_sends_once(site, mail_servers, test_pki, samples_dir):
    settings, ledger, folder = site
    intake(settings, ledger, folder, samples_dir, MDM_INIT)
    try:
        mail_servers.set_relay_state("refuse")
        counts = send_all(settings, ledger, mail_servers, test_pki)
    finally:
        mail_servers.set_relay_state("up")
    assert counts["mss_professional"]["deferred"] == 1
    (waiting,) = mss_deliveries(ledger)
    assert (waiting.status, waiting.attempts, waiting.reason_code) == (
        "pending",
        1,
        "MSS_CONNECTION",
    )
    # Not due before its backoff; due after it.
    assert send_all(settings, ledger, mail_servers, test_pki)["mss_professional"]["claimed"] == 0
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert (
        send_all(settings, ledger, mail_servers, test_pki, now=later)["mss_professional"]["sent"]
        == 1
    )
    (sent,) = mss_deliveries(ledger)
    assert sent.status == "sent" and sent.attempts == 2
    outcomes = [(t.what, t.outcome) for t in mss_traces(ledger, delivery_id=sent.id)]
    assert outcomes == [
        ("attempt", "attempt 1"),
        ("error", "MSS_CONNECTION"),
        ("attempt", "attempt 2"),
        ("sent", "accepted (dsn requested)"),
    ]
    assert len(received_mails(mail_servers, test_pki, PROFESSIONAL, sent.partner_ref)) == 1


def _report(kind: str, original_id: str, fields: str, reporter: str) -> bytes:
    """A multipart/report as a recipient's client (MDN) or an operator (DSN) writes it."""
    part = (
        "message/disposition-notification"
        if kind == "disposition-notification"
        else "message/delivery-status"
    )
    returned = (
        f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {original_id}\r\n"
        if kind == "delivery-status"
        else ""
    )
    return (
        f"From: {reporter}\r\nTo: {SENDER}\r\nSubject: rapport\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type={kind}; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nRapport automatique.\r\n"
        f"--B\r\nContent-Type: {part}\r\n\r\n{fields}\r\n{returned}--B--\r\n"
    ).encode()


def test_read_notification_gives_z03_and_failure_dsn_fails_the_delivery_with_z02(
    site, mail_servers, test_pki, samples_dir
):
    settings, ledger, folder = site
    intake(settings, ledger, folder, samples_dir, ORU_INIT)
    send_all(settings, ledger, mail_servers, test_pki)
    by_channel = {d.channel: d for d in mss_deliveries(ledger)}
    professional, patient = by_channel["mss_professional"], by_channel["mss_patient"]

    # The professional's software displays the mail and answers the MDN it was asked for.
    mdn = _report(
        "disposition-notification",
        professional.partner_ref,
        f"Final-Recipient: rfc822; {PROFESSIONAL}\r\n"
        f"Original-Message-ID: {professional.partner_ref}\r\n"
        "Disposition: manual-action/MDN-sent-manually; displayed\r\n",
        PROFESSIONAL,
    )
    send_as_human(mail_servers, test_pki, PROFESSIONAL, SENDER, mdn)
    # The patient's operator bounces the mail after accepting it (DSN "failed", 550).
    dsn = _report(
        "delivery-status",
        patient.partner_ref,
        f"Reporting-MTA: dns; mx.patient.mssante.fr\r\nOriginal-Envelope-Id: {patient.request_id}"
        f"\r\n\r\nFinal-Recipient: rfc822; {PATIENT}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 mailbox unavailable\r\n",
        PROFESSIONAL,
    )
    send_as_human(mail_servers, test_pki, PROFESSIONAL, SENDER, dsn)

    counts = poll_notifications(ledger, settings, imap_for(mail_servers, test_pki), actor="test")
    # The relay's two "delivered" DSNs, the operator's "failed" one, the professional's MDN.
    assert counts["mdn"] == 1 and counts["dsn"] == 3 and counts["errors"] == 0
    (read,) = zams(folder, "Z03")
    assert "ACK_LECTURE_MSS" in read and "|Y^^expandedYes-NoIndicator|" in read
    assert "LECTEUR_MSS^Lecteur du courriel MSSanté^AckMetierZAM" in read
    failed = ledger.get_delivery(patient.id)
    assert (failed.status, failed.reason_code) == ("failed", "SMTP_550")
    receipts = zams(folder, "Z02")
    negative = [z for z in receipts if "|N^^expandedYes-NoIndicator|" in z]
    assert len(negative) == 1 and "550^" in negative[0] and "SMTPERRORCODE" in negative[0]
    assert len(receipts) == 3  # two "delivered", then the patient's failure (its own id)

    # Reports are flagged: a second poll finds nothing new and writes nothing.
    again = poll_notifications(ledger, settings, imap_for(mail_servers, test_pki), actor="test")
    assert again["reports"] == 0
    assert len(zams(folder, "Z03")) == 1


def test_a_report_that_cannot_be_recorded_blocks_no_other_and_is_read_again_next_poll(
    site, mail_servers, test_pki, samples_dir, monkeypatch
):
    settings, ledger, folder = site
    intake(settings, ledger, folder, samples_dir, ORU_INIT)
    send_all(settings, ledger, mail_servers, test_pki)  # the relay sends two "delivered" DSNs
    record, calls = service._record, []

    def fails_once(sender, note, counts):
        calls.append(note)
        if len(calls) == 1:
            raise RuntimeError("a bug met by one report")
        return record(sender, note, counts)

    monkeypatch.setattr(service, "_record", fails_once)
    with pytest.raises(TransientError) as raised:
        poll_notifications(ledger, settings, imap_for(mail_servers, test_pki), actor="test")
    assert "RuntimeError" in str(raised.value) and "a bug met" not in str(raised.value)
    assert len(zams(folder, "Z02")) == 1  # the other report was recorded

    again = poll_notifications(ledger, settings, imap_for(mail_servers, test_pki), actor="test")
    assert (again["reports"], again["dsn"], again["errors"]) == (1, 1, 0)
    assert len(zams(folder, "Z02")) == 2


def test_a_wave_of_reports_is_drained_in_one_poll(site, mail_servers, test_pki, samples_dir):
    """A wave of mails gives a wave of DSNs: one poll reads them ``limit`` at a time while the
    batches come back full (200 a run once left 2,403 DSNs waiting during a campaign, and a
    mail whose outcome is unknown waits for its DSN)."""
    settings, ledger, folder = site
    intake(settings, ledger, folder, samples_dir, MDM_INIT, ORU_INIT)
    send_all(settings, ledger, mail_servers, test_pki)  # three mails, three "delivered" DSNs
    imaps = imap_for(mail_servers, test_pki)
    one = poll_notifications(ledger, settings, imaps, actor="test", limit=1)
    assert one["reports"] == 1  # no drain asked: one batch
    drained = poll_notifications(ledger, settings, imaps, actor="test", limit=1, drain_seconds=60)
    assert (drained["reports"], drained["dsn"], drained["errors"]) == (2, 2, 0)
    assert poll_notifications(ledger, settings, imaps, actor="test")["reports"] == 0


def test_a_worker_dying_before_the_zam_leaves_it_to_a_later_run_which_still_waits_for_the_dsn(
    site, mail_servers, test_pki, samples_dir
):
    from pfi.base.retry import RetryPolicy
    from pfi.flows.queue import follow_up_missed, record_outcome

    settings, ledger, folder = site
    intake(settings, ledger, folder, samples_dir, ORU_INIT)
    sender = service.MssSender(ledger, settings, smtp_for(mail_servers, test_pki), actor="test")
    (claimed,) = ledger.claim_due_deliveries("mss_professional", actor="test")
    record_outcome(ledger, claimed, sender.send_one(claimed), policy=RetryPolicy(), actor="test")
    sender.close()  # the worker died here, before its follow-up

    later = datetime.now(UTC) + timedelta(minutes=10)
    fresh = service.MssSender(ledger, settings, smtp_for(mail_servers, test_pki), actor="test")
    assert follow_up_missed(ledger, "mss_professional", fresh.after, actor="t", now=later) == 1
    assert zams(folder, "Z02") == []  # the mail asked for a DSN: the Z02 waits for it

    poll_notifications(ledger, settings, imap_for(mail_servers, test_pki), actor="test")
    (receipt,) = zams(folder, "Z02")
    assert "|Y^^expandedYes-NoIndicator|" in receipt


def test_a_mail_whose_answer_was_lost_after_its_data_waits_for_its_dsn_before_a_retry(
    site, mail_servers, test_pki, samples_dir
):
    settings, ledger, folder = site
    intake(settings, ledger, folder, samples_dir, ORU_INIT)  # asks for receipts: DSN wanted
    server = DroppingSmtpServer(test_pki)
    server.offer_dsn, server.drop_next_data = True, True
    endpoint = mailbox_endpoints(mail_servers, test_pki, SENDER)[0]
    endpoint = type(endpoint)(
        **{**endpoint.__dict__, "port": server.port, "security": "tls", "sasl": "none"}
    )
    try:
        counts = deliver_due(
            ledger,
            settings,
            lambda mailbox: SmtpClient(endpoint),
            channel="mss_professional",
            actor="test",
        )
    finally:
        server.close()

    assert counts["deferred"] == 1
    (waiting,) = [d for d in mss_deliveries(ledger) if d.channel == "mss_professional"]
    assert (waiting.status, waiting.reason_code) == ("pending", "MSS_OUTCOME_UNKNOWN")
    # not retried before the DSN had its time (dsn_wait_hours, 24 by default)
    assert waiting.next_attempt_at - waiting.last_attempt_at >= timedelta(hours=23)


def test_a_dsn_for_a_mail_whose_smtp_reply_was_lost_stops_its_retries(
    site, mail_servers, test_pki, samples_dir
):
    settings, ledger, folder = site
    intake(settings, ledger, folder, samples_dir, MDM_INIT)
    # The attempt ends in a connection failure: as when the connection broke after the data,
    # before the operator's "250" (here the relay is down; the ledger cannot tell the two apart).
    try:
        mail_servers.set_relay_state("refuse")
        send_all(settings, ledger, mail_servers, test_pki)
    finally:
        mail_servers.set_relay_state("up")
    (waiting,) = mss_deliveries(ledger)
    assert waiting.status == "pending"
    message_id = f"<{waiting.request_id}@ch-demo.mssante.test>"
    # The operator had the mail: its DSN says so. Sending it again would be a second copy.
    dsn = _report(
        "delivery-status",
        message_id,
        f"Reporting-MTA: dns; mx.test-ci-sis.mssante.fr\r\nOriginal-Envelope-Id: "
        f"{waiting.request_id}\r\n\r\nFinal-Recipient: rfc822; {PROFESSIONAL}\r\n"
        "Action: delivered\r\nStatus: 2.0.0\r\n",
        PROFESSIONAL,
    )
    send_as_human(mail_servers, test_pki, PROFESSIONAL, SENDER, dsn)
    counts = poll_notifications(ledger, settings, imap_for(mail_servers, test_pki), actor="test")
    assert counts["dsn"] == 1
    later = datetime.now(UTC) + timedelta(hours=2)
    again = send_all(settings, ledger, mail_servers, test_pki, now=later)
    assert again["mss_professional"]["claimed"] == 0
    (sent,) = mss_deliveries(ledger)
    assert (sent.status, sent.partner_ref) == ("sent", message_id)
    assert received_mails(mail_servers, test_pki, PROFESSIONAL, message_id) == []


def test_a_dsn_whose_diagnostic_is_in_raw_utf8_is_read_and_blocks_nothing(
    site, mail_servers, test_pki, samples_dir
):
    settings, ledger, folder = site
    intake(settings, ledger, folder, samples_dir, MDM_INIT)
    send_all(settings, ledger, mail_servers, test_pki)
    (sent,) = mss_deliveries(ledger)
    # A French operator's bounce, its diagnostic in 8-bit UTF-8 as many MTAs write it.
    dsn = _report(
        "delivery-status",
        sent.partner_ref,
        f"Reporting-MTA: dns; mx.test-ci-sis.mssante.fr\r\nOriginal-Envelope-Id: "
        f"{sent.request_id}\r\n\r\nFinal-Recipient: rfc822; {PROFESSIONAL}\r\n"
        "Action: failed\r\nStatus: 5.2.2\r\n"
        "Diagnostic-Code: smtp; 552 5.2.2 Boîte aux lettres pleine\r\n",
        PROFESSIONAL,
    )
    send_as_human(mail_servers, test_pki, PROFESSIONAL, SENDER, dsn)
    counts = poll_notifications(ledger, settings, imap_for(mail_servers, test_pki), actor="test")
    assert counts["errors"] == 0
    failed = ledger.get_delivery(sent.id)
    assert (failed.status, failed.reason_code) == ("failed", "SMTP_552")


def test_initial_replacement_and_deletion_each_mail_the_professional_once(
    site, mail_servers, test_pki, samples_dir
):
    settings, ledger, folder = site
    intake(settings, ledger, folder, samples_dir, MDM_INIT, MDM_RPLC, MDM_DEL)
    assert send_all(settings, ledger, mail_servers, test_pki)["mss_professional"]["sent"] == 3
    mails = {}
    for d in mss_deliveries(ledger):
        (mail,) = received_mails(mail_servers, test_pki, PROFESSIONAL, d.partner_ref)
        mails[d.action] = mail
    assert sorted(mails) == ["delete", "new", "replace"]
    names = {a: [p.get_filename() for p in m.iter_attachments()] for a, m in mails.items()}
    assert names["delete"] == ["IHE_XDM.ZIP"]
    assert len(names["new"]) == len(names["replace"]) == 2
    text = mails["delete"].get_body(("plain",)).get_content()
    assert "supprimé" in text
    assert "annule et remplace" in mails["replace"].get_body(("plain",)).get_content()


def test_a_mail_sent_by_a_worker_that_died_before_recording_it_is_not_sent_again(
    site, mail_servers, test_pki, samples_dir
):
    settings, ledger, folder = site
    intake(settings, ledger, folder, samples_dir, MDM_INIT)
    (due,) = mss_deliveries(ledger)
    message_id = f"<{due.request_id}@ch-demo.mssante.test>"
    # What the dead worker managed to write: the mail was accepted, the outcome never recorded.
    ledger.add_event(
        "mss.sent",
        document_id=due.document_id,
        delivery_id=due.id,
        actor="dead-worker",
        detail={"message_id": message_id, "mailbox": "pfi", "dsn_requested": False},
    )
    counts = send_all(settings, ledger, mail_servers, test_pki)
    assert counts["mss_professional"]["sent"] == 1
    (sent,) = mss_deliveries(ledger)
    assert sent.status == "sent" and sent.partner_ref == message_id
    assert received_mails(mail_servers, test_pki, PROFESSIONAL, message_id) == []


def test_a_worker_killed_between_the_servers_250_and_the_trail_sends_no_second_copy(
    site, fresh_ledger_url, mail_servers, test_pki, samples_dir
):
    """``kill -9`` once the server accepted the mail, before any line says so (the duplicate
    the crash campaign found): the next attempt sees an attempt without outcome and waits for
    its DSN instead of mailing again; the DSN then records it sent. One copy."""
    import multiprocessing
    import os
    import signal

    from pfi.ledger import Ledger

    settings, ledger, folder = site
    intake(settings, ledger, folder, samples_dir, ORU_INIT)  # asks for receipts: DSN wanted

    def worker() -> None:  # a worker process that dies right after the server's 250
        record = service.MssSender._event

        def dying(self, kind, delivery, detail):
            if kind == service.EVENT_SENT:
                os.kill(os.getpid(), signal.SIGKILL)
            return record(self, kind, delivery, detail)

        service.MssSender._event = dying
        deliver_due(
            Ledger.from_url(fresh_ledger_url),
            settings,
            smtp_for(mail_servers, test_pki),
            channel="mss_professional",
            actor="dying-worker",
        )

    child = multiprocessing.get_context("fork").Process(target=worker)
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    (due,) = [d for d in mss_deliveries(ledger) if d.channel == "mss_professional"]
    message_id = f"<{due.request_id}@ch-demo.mssante.test>"
    assert len(received_mails(mail_servers, test_pki, PROFESSIONAL, message_id)) == 1

    # The lease ended: the next worker finds an attempt without outcome and waits for the DSN.
    later = due.next_attempt_at + timedelta(seconds=1)
    counts = send_all(settings, ledger, mail_servers, test_pki, now=later)
    assert counts["mss_professional"]["deferred"] == 1
    (waiting,) = [d for d in mss_deliveries(ledger) if d.id == due.id]
    assert (waiting.status, waiting.reason_code) == ("pending", "MSS_OUTCOME_UNKNOWN")
    assert len(received_mails(mail_servers, test_pki, PROFESSIONAL, message_id)) == 1

    poll_notifications(ledger, settings, imap_for(mail_servers, test_pki), actor="test")
    (sent,) = [d for d in mss_deliveries(ledger) if d.id == due.id]
    assert sent.status == "sent" and sent.partner_ref == message_id
    assert len(received_mails(mail_servers, test_pki, PROFESSIONAL, message_id)) == 1


def test_a_mail_accepted_while_the_trail_cannot_be_written_is_recorded_sent_not_mailed_again(
    site, mail_servers, test_pki, samples_dir
):
    from sqlalchemy import text

    from pfi.base.errors import TransientError

    settings, ledger, folder = site
    intake(settings, ledger, folder, samples_dir, MDM_INIT)
    (due,) = mss_deliveries(ledger)
    message_id = f"<{due.request_id}@ch-demo.mssante.test>"
    # The database refuses the first "mss.sent" line (a lost connection, a full disk…) just
    # after the operator accepted the mail: that mail is gone, whatever the trail says.
    with ledger.engine.begin() as conn:
        conn.execute(text("CREATE SEQUENCE test_trail_once"))
        conn.execute(
            text(
                "CREATE FUNCTION test_trail_fails_once() RETURNS trigger AS $$ BEGIN "
                "IF NEW.kind = 'mss.sent' AND nextval('test_trail_once') = 1 THEN "
                "RAISE EXCEPTION 'the trail cannot be written'; END IF; RETURN NEW; END $$ "
                "LANGUAGE plpgsql"
            )
        )
        conn.execute(
            text(
                "CREATE TRIGGER test_trail_fails_once BEFORE INSERT ON event "
                "FOR EACH ROW EXECUTE FUNCTION test_trail_fails_once()"
            )
        )
    with pytest.raises(TransientError) as red:  # the task turns red: the trail lacks a line
        send_all(settings, ledger, mail_servers, test_pki)
    assert red.value.code == "INTERNAL"
    later = datetime.now(UTC) + timedelta(hours=2)
    again = send_all(settings, ledger, mail_servers, test_pki, now=later)
    assert again["mss_professional"]["claimed"] == 0
    (sent,) = mss_deliveries(ledger)
    assert (sent.status, sent.partner_ref) == ("sent", message_id)
    assert len(received_mails(mail_servers, test_pki, PROFESSIONAL, message_id)) == 1


EXAMPLES = [
    official.MDM_INIT,
    official.MDM_RPLC,
    official.MDM_DEL,
    official.ORU_INIT,
    f"{V21}/ORU/Remplacement ORU/message_ORU_CR_Bio_RPLC_N3_SEGUR.hl7",
    # Not …/Suppression ORU/message_ORU_CR_Bio_DEL_N3_SEGUR.hl7: intake refuses it (its embedded
    # CDA names another patient than PID: INS_MISMATCH_MATRICULE), so nothing is to be mailed.
]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.rsplit("/", 1)[1])
def test_each_official_example_asking_for_mssante_mails_each_recipient_once(
    site, mail_servers, test_pki, fixtures_dir, example
):
    from pfi.protocols.hl7v2 import parse_message

    settings, ledger, folder = site
    request = parse_message((fixtures_dir / example).read_bytes())
    wanted = {p.address.lower() for p in request.professional_recipients}
    wanted |= {PATIENT} if request.flags.dest_mss_patient else set()
    intake(settings, ledger, folder, fixtures_dir, example)
    send_all(settings, ledger, mail_servers, test_pki)
    poll_notifications(ledger, settings, imap_for(mail_servers, test_pki), actor="test")
    deliveries = mss_deliveries(ledger)
    assert {d.recipient or PATIENT for d in deliveries} == wanted
    for d in deliveries:
        assert d.status == "sent"
        (mail,) = received_mails(mail_servers, test_pki, d.recipient or PATIENT, d.partner_ref)
        xdm = next(p for p in mail.iter_attachments() if p.get_filename() == "IHE_XDM.ZIP")
        (doc,) = read_xdm(xdm.get_content()).documents
        assert doc.content == request.documents[0].content  # the CDA received, byte for byte
    # The producer gets a ZAM^Z02 per recipient when it asked (ACK_RECEPTION=Y), none otherwise.
    receipts = zams(folder, "Z02")
    assert len(receipts) == (len(deliveries) if request.flags.ack_reception else 0)
    assert all(f"|{request.control_id}|Y^^" in z for z in receipts)


def test_given_up_after_the_retry_age_fails_with_a_negative_z02(
    site, mail_servers, test_pki, samples_dir
):
    settings, ledger, folder = site
    intake(settings, ledger, folder, samples_dir, ORU_INIT)
    four_days_later = datetime.now(UTC) + timedelta(days=4)  # beyond give_up_after (3 days)
    try:
        mail_servers.set_relay_state("refuse")
        counts = send_all(settings, ledger, mail_servers, test_pki, now=four_days_later)
    finally:
        mail_servers.set_relay_state("up")
    assert counts["mss_professional"]["failed"] == counts["mss_patient"]["failed"] == 1
    assert {d.status for d in mss_deliveries(ledger)} == {"failed"}
    receipts = zams(folder, "Z02")
    assert len(receipts) == 2
    # No SMTP reply: the connection refusal is reported as SMTPERRORCODE 111.
    assert all("|N^^expandedYes-NoIndicator|" in z and "|111^" in z for z in receipts)


def test_without_any_dsn_the_z02_rests_on_the_smtp_acceptance_after_the_wait(
    site, mail_servers, test_pki, samples_dir
):
    settings, ledger, folder = site
    intake(settings, ledger, folder, samples_dir, ORU_INIT)
    send_all(settings, ledger, mail_servers, test_pki)
    # An operator that sends no DSN: the relay's reports vanish before the PFI reads them.
    with imap_for(mail_servers, test_pki)(settings.mailboxes[0]) as imap:
        for uid, _ in imap.reports():
            imap.mark_processed(uid)
    poll = imap_for(mail_servers, test_pki)
    assert poll_notifications(ledger, settings, poll, actor="test")["zam_without_dsn"] == 0
    assert zams(folder, "Z02") == []
    later = datetime.now(UTC) + timedelta(hours=25)  # beyond dsn_wait_hours (24)
    counts = poll_notifications(ledger, settings, poll, actor="test", now=later)
    assert counts["zam_without_dsn"] == 2
    receipts = zams(folder, "Z02")
    assert len(receipts) == 2 and all("|Y^^expandedYes-NoIndicator|" in z for z in receipts)
    again = poll_notifications(ledger, settings, poll, actor="test", now=later)
    assert again["zam_without_dsn"] == 0


def test_pfi_mss_check_opens_both_sessions_and_names_what_fails(
    site, mail_servers, test_pki, monkeypatch, capsys
):
    import json

    from pfi.cli import main

    settings, _, _ = site
    cred = test_pki.clients[SENDER]
    connection = {
        "host": mail_servers.host,
        "port": mail_servers.imap_port,
        "login": SENDER,
        "password": mail_servers.password_for(SENDER),
        "extra": {
            "smtp_port": mail_servers.smtp_port,
            "client_cert": str(cred.cert_path),
            "client_key": str(cred.key_path),
            "ca_bundle": str(test_pki.ca_bundle),
        },
    }
    monkeypatch.setenv("PFI_SETTINGS", str(settings.source_file or ""))
    monkeypatch.setenv("AIRFLOW_CONN_PFI_MSS_PFI", json.dumps(connection))
    assert main(["mss", "check"]) == 0
    assert capsys.readouterr().out.splitlines() == ["pfi\tsmtp\tOK", "pfi\timap\tOK"]
    rogue = {**connection["extra"], "client_cert": str(test_pki.rogue_client.cert_path)}
    rogue["client_key"] = str(test_pki.rogue_client.key_path)
    monkeypatch.setenv("AIRFLOW_CONN_PFI_MSS_PFI", json.dumps({**connection, "extra": rogue}))
    assert main(["mss", "check", "--mailbox", "pfi"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("pfi\tsmtp\tMSS_TLS") and out[1].startswith("pfi\timap\tMSS_AUTH")


def test_a_sender_keeps_only_the_latest_parsed_requests(site, monkeypatch):
    """A drain of thousands of mails kept every parsed request (about 300 KB each) until the
    task ended; a sender now keeps the latest few (a request's mails come together)."""
    from pfi.flows import archive

    settings, ledger, _ = site
    loads = []
    monkeypatch.setattr(archive, "load_request", lambda _l, item, **_k: loads.append(item) or item)
    sender = service.MssSender(ledger, settings, lambda _mailbox: None, actor="test")

    def request_of(item: int):
        return sender.request_of(SimpleNamespace(inbound_item_id=item), None)

    for item in range(1, service.REQUESTS_KEPT + 11):  # ledger ids start at 1
        assert request_of(item) == item
    request_of(service.REQUESTS_KEPT + 10)  # the latest: kept
    assert len(loads) == service.REQUESTS_KEPT + 10
    request_of(1)  # the oldest: dropped long ago, read again
    assert len(loads) == service.REQUESTS_KEPT + 11
