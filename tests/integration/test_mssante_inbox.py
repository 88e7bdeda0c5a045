"""Receiving by MSSanté, end to end on the real local servers: a professional's mail with an
``IHE_XDM.ZIP`` in an application mailbox (Dovecot, client certificate) → the volet's MDM to the
DPI (MLLP peer) → the mail moved; a refusal → the volet's error mail; a DPI outage → nothing lost,
nothing twice. The mails are composed from the project's samples (no ``../shared`` needed)."""

from __future__ import annotations

import email.policy
import uuid
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from pfi.base.errors import TransientError
from pfi.base.settings import load_settings
from pfi.flows.mssante_inbox import (
    EVENT_ERROR_MAIL_SENT,
    ReceivingConfig,
    deliver_to_dpi,
    poll_mailbox,
)
from pfi.protocols.ins import InsPolicy
from pfi.protocols.mllp import MllpClient, MllpEndpoint
from pfi.protocols.mssante.error_mail import reply_message_id
from pfi.protocols.mssante.imap import ImapClient
from pfi.protocols.mssante.inbound import read_mail
from pfi.protocols.mssante.smtp import SmtpClient
from pfi_devkit.mllp_peer import AckError
from pfi_fixtures.mail import (
    HUMAN,
    INBOX_TEST_MAILBOX,
    document_mail,
    empty_inbox,
    mail_from_human,
    mailbox_endpoints,
    received_mails,
    renumber_inbox,
)
from pfi_fixtures.site import write_settings

pytestmark = pytest.mark.integration

POLICY = InsPolicy.for_environment("test")
MAILBOX = f"""
[[mailbox]]
name = "inbox"
address = "{INBOX_TEST_MAILBOX}"
finess_geo = "010000032"
"""


@pytest.fixture
def site(tmp_path):
    (tmp_path / "in").mkdir()
    return load_settings(write_settings(tmp_path, mailboxes=[MAILBOX]))


@pytest.fixture
def config():
    return ReceivingConfig(
        processed_folder=f"PFI-ok-{uuid.uuid4().hex[:6]}",
        errors_folder=f"PFI-ko-{uuid.uuid4().hex[:6]}",
    )


class Partners:
    """The application mailbox's clients and the DPI, as the DAG's hooks give them."""

    def __init__(self, mail_servers, test_pki, mllp_peer):
        self.smtp_endpoint, self.imap_endpoint = mailbox_endpoints(
            mail_servers, test_pki, INBOX_TEST_MAILBOX
        )
        self.peer = mllp_peer
        self.dpi = MllpClient(MllpEndpoint(mllp_peer.host, mllp_peer.port, read_timeout=5))

    def imap(self, *_):
        return ImapClient(self.imap_endpoint)

    def smtp(self, *_):
        return SmtpClient(self.smtp_endpoint)

    def folder_ids(self, folder: str) -> list[str]:
        with ImapClient(self.imap_endpoint) as imap:
            imap.select_folder(folder)
            return [
                email.message_from_bytes(imap.fetch(uid), policy=email.policy.default)["Message-ID"]
                for uid in imap.list_uids(limit=1000)
            ]


@pytest.fixture
def partners(mail_servers, test_pki, mllp_peer):
    empty_inbox(mail_servers, test_pki, INBOX_TEST_MAILBOX)  # each test starts from an empty INBOX
    return Partners(mail_servers, test_pki, mllp_peer)


def deliver(mail_servers, test_pki, message: EmailMessage) -> str:
    return mail_from_human(mail_servers, test_pki, message)


def poll(ledger, site, partners, config):
    with partners.imap() as imap, partners.smtp() as smtp:
        return poll_mailbox(
            ledger, site, site.mailboxes[0], imap, smtp=smtp, actor="test", config=config
        )


def to_dpi(ledger, site, partners, config, **options):
    return deliver_to_dpi(
        ledger,
        site,
        dpi=partners.dpi,
        smtp_for=partners.smtp,
        imap_for=partners.imap,
        actor="test",
        config=config,
        **options,
    )


def test_a_document_mail_reaches_the_dpi_once_and_is_moved_to_processed(
    fresh_ledger, site, config, partners, mail_servers, test_pki, samples_dir
):
    message_id = deliver(mail_servers, test_pki, document_mail(samples_dir, INBOX_TEST_MAILBOX))

    assert poll(fresh_ledger, site, partners, config)["accepted"] == 1
    counts = to_dpi(fresh_ledger, site, partners, config)

    assert counts["sent"] == 1
    (mdm,) = partners.peer.received
    assert "MDM^T02^MDM_T02" in mdm and "CISIS_CDA_HL7_LPS" in mdm
    assert message_id in partners.folder_ids(config.processed_folder)
    # A replay of both steps sends nothing again and keeps the mail where it is.
    assert poll(fresh_ledger, site, partners, config)["listed"] == 0
    assert to_dpi(fresh_ledger, site, partners, config)["claimed"] == 0
    assert len(partners.peer.received) == 1


def test_each_mail_is_recorded_with_its_message_id_whatever_becomes_of_it(
    fresh_ledger, site, config, partners, mail_servers, test_pki, samples_dir
):
    taken = deliver(mail_servers, test_pki, document_mail(samples_dir, INBOX_TEST_MAILBOX))
    refused = deliver(
        mail_servers, test_pki, document_mail(samples_dir, INBOX_TEST_MAILBOX, with_xdm=False)
    )

    poll(fresh_ledger, site, partners, config)

    items = fresh_ledger.find_inbound(source="inbox", kind="mail")
    assert {(i.control_id, i.status) for i in items} == {(taken, "done"), (refused, "rejected")}


def test_a_refusal_by_the_dpi_gives_the_volet_error_mail_and_the_errors_folder(
    fresh_ledger, site, config, partners, mail_servers, test_pki, samples_dir
):
    sent = document_mail(samples_dir, INBOX_TEST_MAILBOX)
    message_id = deliver(mail_servers, test_pki, sent)
    partners.peer.ack_code = "AE"
    partners.peer.ack_error = AckError.application("902")

    poll(fresh_ledger, site, partners, config)
    counts = to_dpi(fresh_ledger, site, partners, config)

    assert counts["refused"] == 1
    assert message_id in partners.folder_ids(config.errors_folder)
    reply_id = reply_message_id(
        read_mail(sent.as_bytes(policy=email.policy.SMTP)), INBOX_TEST_MAILBOX
    )
    (reply,) = received_mails(mail_servers, test_pki, HUMAN, reply_id)
    assert reply["Subject"].startswith("[KO Intégration système !][902]")
    # The error mail is sent once, however often the outcome is followed up.
    to_dpi(fresh_ledger, site, partners, config)
    assert len(received_mails(mail_servers, test_pki, HUMAN, reply_id)) == 1


def test_a_mail_without_xdm_is_refused_with_the_pfi_reason_without_calling_the_dpi(
    fresh_ledger, site, config, partners, mail_servers, test_pki, samples_dir
):
    message_id = deliver(
        mail_servers, test_pki, document_mail(samples_dir, INBOX_TEST_MAILBOX, with_xdm=False)
    )

    counts = poll(fresh_ledger, site, partners, config)

    assert counts["refused"] == 1 and counts["moved"] == 1
    assert message_id in partners.folder_ids(config.errors_folder)
    assert partners.peer.received == []
    (item,) = fresh_ledger.find_inbound(source="inbox", kind="mail", status="rejected")
    assert item.reason_code == "MSS_NO_XDM"


def test_a_dpi_outage_defers_without_error_mail_then_sends_once(
    fresh_ledger, site, config, partners, mail_servers, test_pki, samples_dir
):
    message_id = deliver(mail_servers, test_pki, document_mail(samples_dir, INBOX_TEST_MAILBOX))
    poll(fresh_ledger, site, partners, config)
    partners.peer.mode = "silent"
    partners.dpi = MllpClient(
        MllpEndpoint(partners.peer.host, partners.peer.port, read_timeout=0.5)
    )

    assert to_dpi(fresh_ledger, site, partners, config)["deferred"] == 1
    assert message_id in partners.folder_ids("INBOX")
    assert fresh_ledger.events(kind=EVENT_ERROR_MAIL_SENT) == []

    partners.peer.mode = "ack"
    later = fresh_ledger.find_inbound(source="inbox", kind="mail")[0].received_at
    counts = to_dpi(fresh_ledger, site, partners, config, now=later + config.retry.max_delay * 2)
    assert counts["sent"] == 1
    assert message_id in partners.folder_ids(config.processed_folder)
    # The DPI saw the silent attempt and the answered one under the same MSH-10: it can tell.
    control_ids = {m.split("\r")[0].split("|")[9] for m in partners.peer.received}
    assert len(control_ids) == 1


def test_a_hostile_xdm_is_refused_with_the_reader_code_and_the_mail_kept(
    fresh_ledger, site, config, partners, mail_servers, test_pki, samples_dir
):
    message = document_mail(samples_dir, INBOX_TEST_MAILBOX)
    for part in message.iter_attachments():
        if part.get_filename() == "IHE_XDM.ZIP":
            part.set_content(
                b"PK\x03\x04 not a zip at all",
                "application",
                "zip",
                disposition="attachment",
                filename="IHE_XDM.ZIP",
            )
    message_id = deliver(mail_servers, test_pki, message)

    assert poll(fresh_ledger, site, partners, config)["refused"] == 1

    (item,) = fresh_ledger.find_inbound(source="inbox", kind="mail")
    assert item.reason_code.startswith("XDM_") and item.status == "rejected"
    assert Path(item.storage_path).read_bytes().count(b"not a zip") == 0  # base64 in the mail
    assert read_mail(Path(item.storage_path).read_bytes()).message_id == message_id
    assert message_id in partners.folder_ids(config.errors_folder)
    assert partners.peer.received == []


def test_a_delivery_given_up_leaves_the_mail_in_the_inbox_without_error_mail(
    fresh_ledger, site, config, partners, mail_servers, test_pki, samples_dir
):
    message_id = deliver(mail_servers, test_pki, document_mail(samples_dir, INBOX_TEST_MAILBOX))
    poll(fresh_ledger, site, partners, config)
    partners.dpi = MllpClient(MllpEndpoint("127.0.0.1", 9, connect_timeout=0.5))  # nobody there
    (item,) = fresh_ledger.find_inbound(source="inbox", kind="mail")

    counts = to_dpi(fresh_ledger, site, partners, config, now=item.received_at + timedelta(days=4))

    assert counts["failed"] == 1
    (delivery,) = fresh_ledger.deliveries_asked_by(item.id)
    assert delivery.status == "failed"
    assert message_id in partners.folder_ids("INBOX")
    assert fresh_ledger.events(kind=EVENT_ERROR_MAIL_SENT) == []


def test_the_dpi_peer_answers_per_document_type_and_per_patient_from_its_rules_file(
    fresh_ledger, site, config, partners, mail_servers, test_pki, samples_dir, tmp_path
):
    """The devkit's DPI answers as ``python -m pfi_devkit dpi-answers`` sets it, read at each
    message: a CR de biologie refused (906, the demo's rule), then a patient unknown (902)."""
    from pfi_devkit.mllp_peer import AnswerRules
    from pfi_devkit.samples import ORU_INIT
    from pfi_devkit.stack import dpi_answers

    partners.peer.policy = AnswerRules(tmp_path / "dpi-answers.json")
    dpi_answers(tmp_path, {"document_type": "11502-2", "code": "AE", "error": "906"})
    imaging = deliver(mail_servers, test_pki, document_mail(samples_dir, INBOX_TEST_MAILBOX))
    lab = document_mail(samples_dir, INBOX_TEST_MAILBOX, sample=ORU_INIT)
    deliver(mail_servers, test_pki, lab)
    poll(fresh_ledger, site, partners, config)

    counts = to_dpi(fresh_ledger, site, partners, config)

    assert (counts["sent"], counts["refused"]) == (1, 1)
    assert imaging in partners.folder_ids(config.processed_folder)
    reply_id = reply_message_id(
        read_mail(lab.as_bytes(policy=email.policy.SMTP)), INBOX_TEST_MAILBOX
    )
    (reply,) = received_mails(mail_servers, test_pki, HUMAN, reply_id)
    assert reply["Subject"].startswith("[KO Intégration système !][906]")

    dpi_answers(tmp_path, {"patient": "pat-trois", "code": "AR", "error": "902"})
    again = document_mail(samples_dir, INBOX_TEST_MAILBOX)
    deliver(mail_servers, test_pki, again)
    poll(fresh_ledger, site, partners, config)
    assert to_dpi(fresh_ledger, site, partners, config)["refused"] == 1
    reply_id = reply_message_id(
        read_mail(again.as_bytes(policy=email.policy.SMTP)), INBOX_TEST_MAILBOX
    )
    (reply,) = received_mails(mail_servers, test_pki, HUMAN, reply_id)
    assert reply["Subject"].startswith("[KO Intégration système !][902]")


def test_a_uidvalidity_change_between_polls_neither_reimports_nor_loses_a_mail(
    fresh_ledger, site, config, partners, mail_servers, test_pki, samples_dir
):
    first = deliver(mail_servers, test_pki, document_mail(samples_dir, INBOX_TEST_MAILBOX))
    second = deliver(mail_servers, test_pki, document_mail(samples_dir, INBOX_TEST_MAILBOX))
    assert poll(fresh_ledger, site, partners, config)["recorded"] == 2
    recorded = {i.original_ref for i in fresh_ledger.find_inbound(source="inbox", kind="mail")}

    validity = renumber_inbox(mail_servers, INBOX_TEST_MAILBOX)
    # The DPI takes both documents; the recorded UIDs name nothing sure now: nothing is moved.
    assert to_dpi(fresh_ledger, site, partners, config)["sent"] == 2
    assert {first, second} <= set(partners.folder_ids("INBOX"))

    # The next poll knows both mails by their bytes: moved, not recorded nor sent again.
    counts = poll(fresh_ledger, site, partners, config)

    assert (counts["known"], counts["recorded"], counts["moved"]) == (2, 0, 2)
    assert {first, second} <= set(partners.folder_ids(config.processed_folder))
    assert len(partners.peer.received) == 2
    items = fresh_ledger.find_inbound(source="inbox", kind="mail")
    assert {i.original_ref for i in items} == recorded
    assert all(not ref.startswith(f"{validity}/") for ref in recorded)


@pytest.mark.parametrize(
    ("sample", "event"),
    [("mdm_init.hl7", "T02"), ("mdm_rplc.hl7", "T10"), ("mdm_del.hl7", "T04")],
)
def test_what_the_sending_side_mails_comes_to_the_dpi_as_the_same_action(
    fresh_ledger, site, config, partners, mail_servers, test_pki, samples_dir, sample, event
):
    """The PFI's own mails (an initial document, its replacement, its deletion) read back by a
    receiving PFI: the XDM's "action" extra-metadata makes the T10 and the T04."""
    deliver(mail_servers, test_pki, document_mail(samples_dir, INBOX_TEST_MAILBOX, sample=sample))
    poll(fresh_ledger, site, partners, config)

    assert to_dpi(fresh_ledger, site, partners, config)["sent"] == 1

    (mdm,) = partners.peer.received
    assert mdm.split("\r")[0].split("|")[8] == f"MDM^{event}^MDM_T02"


def test_a_worker_killed_between_the_dpi_ack_and_the_ledger_line_resends_the_same_msh10(
    fresh_ledger, fresh_ledger_url, site, config, partners, mail_servers, test_pki, samples_dir
):
    """``kill -9`` of the worker once the DPI answered AA, before the ledger says ``sent``: the
    delivery stays claimed until its lease ends, then goes again — with the same MSH-10
    (``PFIR<delivery id>``), which is how the DPI recognises the resend (HL7's duplicate check
    on the control id). Nothing else goes twice: one move, no error mail."""
    import multiprocessing
    import os
    import signal

    from pfi.ledger import Ledger

    message_id = deliver(mail_servers, test_pki, document_mail(samples_dir, INBOX_TEST_MAILBOX))
    poll(fresh_ledger, site, partners, config)

    def worker() -> None:  # a worker process that dies right after the DPI's ACK
        mark = Ledger.mark_delivery

        def dying(self, delivery_id, status, **options):
            if status == "sent":
                os.kill(os.getpid(), signal.SIGKILL)
            return mark(self, delivery_id, status, **options)

        Ledger.mark_delivery = dying
        ledger = Ledger.from_url(fresh_ledger_url)
        to_dpi(ledger, site, partners, config)

    child = multiprocessing.get_context("fork").Process(target=worker)
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    assert len(partners.peer.received) == 1  # the DPI has it; the ledger does not know
    (item,) = fresh_ledger.find_inbound(source="inbox", kind="mail")
    (delivery,) = fresh_ledger.deliveries_asked_by(item.id)
    assert delivery.status == "pending"

    # Before the lease ends nobody takes it; after, it goes once more under the same MSH-10.
    assert to_dpi(fresh_ledger, site, partners, config)["claimed"] == 0
    later = delivery.next_attempt_at + timedelta(seconds=1)
    assert to_dpi(fresh_ledger, site, partners, config, now=later)["sent"] == 1
    control_ids = [m.split("\r")[0].split("|")[9] for m in partners.peer.received]
    assert control_ids == [f"PFIR{delivery.id}"] * 2
    assert message_id in partners.folder_ids(config.processed_folder)
    assert fresh_ledger.events(kind=EVENT_ERROR_MAIL_SENT) == []


def test_a_second_worker_on_the_same_mailbox_leaves_it_to_the_first(
    fresh_ledger, fresh_ledger_url, site, config, partners, mail_servers, test_pki, samples_dir
):
    """Two pollers of one mailbox at once (a replayed task beside the scheduled one, the CLI
    beside the DAG): the second finds it busy and reads nothing, so no mail is taken or answered
    twice. The lock is the ledger's, held by the first worker's session."""
    from pfi.ledger import Ledger

    deliver(mail_servers, test_pki, document_mail(samples_dir, INBOX_TEST_MAILBOX, with_xdm=False))
    other_worker = Ledger.from_url(fresh_ledger_url)
    try:
        with other_worker.exclusive("mailbox:inbox", wait=False) as held:
            assert held
            busy = poll(fresh_ledger, site, partners, config)
        assert busy["busy"] == 1 and busy["listed"] == 0
        assert fresh_ledger.find_inbound(source="inbox", kind="mail") == []

        counts = poll(fresh_ledger, site, partners, config)  # the lock went with the block
    finally:
        other_worker.dispose()
    assert counts["refused"] == 1 and "busy" not in counts
    assert len(fresh_ledger.events(kind=EVENT_ERROR_MAIL_SENT)) == 1


def test_a_mail_given_up_is_listed_then_released_by_the_operator_and_sent_once(
    fresh_ledger,
    fresh_ledger_url,
    site,
    config,
    partners,
    mail_servers,
    test_pki,
    samples_dir,
    capsys,
):
    from pfi.cli import main

    message_id = deliver(mail_servers, test_pki, document_mail(samples_dir, INBOX_TEST_MAILBOX))
    poll(fresh_ledger, site, partners, config)
    reachable, partners.dpi = (
        partners.dpi,
        MllpClient(MllpEndpoint("127.0.0.1", 9, connect_timeout=0.5)),
    )
    (item,) = fresh_ledger.find_inbound(source="inbox", kind="mail")
    later = item.received_at + timedelta(days=4)
    assert to_dpi(fresh_ledger, site, partners, config, now=later)["failed"] == 1
    cli = ["--settings", str(site.source_file), "mss"]
    url = ["--url", fresh_ledger_url]

    assert main([*cli, "inbox", "inbox", "--given-up", *url]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert '"stands": "given_up"' in line
    assert main([*cli, "release", "inbox", "--mail", str(item.id + 1000), *url]) == 0
    assert capsys.readouterr().out == ""  # not that mail: nothing released
    assert main([*cli, "release", "inbox", *url]) == 0
    assert f'"item": {item.id}' in capsys.readouterr().out

    # Due at once, with a fresh retry period: the next run sends it, the mail moves.
    partners.dpi = reachable
    counts = to_dpi(fresh_ledger, site, partners, config, now=later + timedelta(minutes=1))
    assert counts["sent"] == 1
    assert len(partners.peer.received) == 1
    assert message_id in partners.folder_ids(config.processed_folder)
    assert main([*cli, "release", "inbox", *url]) == 0  # a sent delivery is never released
    assert capsys.readouterr().out == ""
    trail = [
        (e.detail.get("from"), e.detail.get("to"), e.actor)
        for e in fresh_ledger.events(delivery_id=fresh_ledger.deliveries_asked_by(item.id)[0].id)
        if e.kind == "delivery.status"
    ]
    assert ("failed", "pending") in [(a, b) for a, b, _ in trail]
    assert any(actor.startswith("cli") for a, b, actor in trail if (a, b) == ("failed", "pending"))


def test_a_mail_too_large_is_refused_on_its_header_with_an_error_mail_and_kept(
    fresh_ledger, site, partners, mail_servers, test_pki, samples_dir
):
    config = ReceivingConfig(
        processed_folder=f"PFI-ok-{uuid.uuid4().hex[:6]}",
        errors_folder=f"PFI-ko-{uuid.uuid4().hex[:6]}",
        max_mail_bytes=4096,
    )
    sent = document_mail(samples_dir, INBOX_TEST_MAILBOX)
    message_id = deliver(mail_servers, test_pki, sent)

    counts = poll(fresh_ledger, site, partners, config)

    assert counts["refused"] == 1 and counts["moved"] == 1
    (item,) = fresh_ledger.find_inbound(source="inbox", kind="mail")
    assert item.reason_code == "MSS_MAIL_TOO_LARGE"
    assert item.reason_text.startswith("Le courriel dépasse la taille maximale")
    assert message_id in partners.folder_ids(config.errors_folder)  # moved whole, never deleted
    assert partners.peer.received == []
    reply_id = reply_message_id(
        read_mail(sent.as_bytes(policy=email.policy.SMTP)), INBOX_TEST_MAILBOX
    )
    (reply,) = received_mails(mail_servers, test_pki, HUMAN, reply_id)
    assert reply["Subject"].startswith("[KO Intégration système !][MSS_MAIL_TOO_LARGE]")
    assert poll(fresh_ledger, site, partners, config)["listed"] == 0


def test_an_error_mail_that_failed_is_sent_by_the_next_poll_and_the_batch_goes_on(
    fresh_ledger, site, config, partners, mail_servers, test_pki, samples_dir
):
    sent = document_mail(samples_dir, INBOX_TEST_MAILBOX, with_xdm=False)
    message_id = deliver(mail_servers, test_pki, sent)
    deliver(mail_servers, test_pki, document_mail(samples_dir, INBOX_TEST_MAILBOX))

    class Down:
        def send(self, mail):
            raise TransientError("relay down", code="MSS_CONNECTION")

    with partners.imap() as imap, pytest.raises(TransientError):
        poll_mailbox(
            fresh_ledger, site, site.mailboxes[0], imap, smtp=Down(), actor="test", config=config
        )
    assert message_id in partners.folder_ids("INBOX")
    # The batch went on: the other mail, with its document, was taken.
    assert len(fresh_ledger.find_inbound(source="inbox", kind="mail", status="done")) == 1

    counts = poll(fresh_ledger, site, partners, config)

    assert counts["known"] == 2 and counts["moved"] == 1  # the other waits for the DPI
    reply_id = reply_message_id(
        read_mail(sent.as_bytes(policy=email.policy.SMTP)), INBOX_TEST_MAILBOX
    )
    assert len(received_mails(mail_servers, test_pki, HUMAN, reply_id)) == 1
    assert message_id in partners.folder_ids(config.errors_folder)


def test_pfi_mss_inspect_and_inbox_say_what_happens_without_patient_data_by_default(
    fresh_ledger,
    fresh_ledger_url,
    site,
    config,
    partners,
    mail_servers,
    test_pki,
    samples_dir,
    tmp_path,
    capsys,
):
    from pfi.cli import main

    good = document_mail(samples_dir, INBOX_TEST_MAILBOX)
    eml = tmp_path / "mail.eml"
    eml.write_bytes(good.as_bytes(policy=email.policy.SMTP))
    settings = str(site.source_file)

    assert main(["--settings", settings, "mss", "inspect", str(eml)]) == 0
    out = capsys.readouterr().out
    assert '"decision": "to the DPI"' in out and '"action": "new"' in out
    assert "MDM^T02" not in out and "PAT-TROIS" not in out.upper()
    assert main(["--settings", settings, "mss", "inspect", str(eml), "--show-identity"]) == 0
    assert "MDM^T02^MDM_T02" in capsys.readouterr().out

    bare = tmp_path / "bare.eml"
    text_only = document_mail(samples_dir, INBOX_TEST_MAILBOX, with_xdm=False)
    bare.write_bytes(text_only.as_bytes(policy=email.policy.SMTP))
    assert main(["--settings", settings, "mss", "inspect", str(bare)]) == 1
    assert '"code": "MSS_NO_XDM"' in capsys.readouterr().out

    deliver(mail_servers, test_pki, good)
    poll(fresh_ledger, site, partners, config)
    url = ["--url", fresh_ledger_url]
    assert main(["--settings", settings, "mss", "inbox", "inbox", *url]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert '"status": "done"' in line and '"status": "pending"' in line


def _xdm_of(message: EmailMessage):
    return next(p for p in message.iter_attachments() if p.get_filename() == "IHE_XDM.ZIP")


def _oru_xdm(samples_dir) -> bytes:
    """The ``IHE_XDM.ZIP`` of the ORU sample's mail to a professional (another document)."""
    from pfi.protocols.hl7v2 import decide_request, parse_message
    from pfi.protocols.ins import InsPolicy
    from pfi.protocols.mssante import Mailbox, MssConfig, compose, mail_orders
    from pfi_devkit.samples import ORU_INIT

    policy = InsPolicy.for_environment("test")
    request = parse_message((samples_dir / ORU_INIT).read_bytes())
    order = next(
        o
        for o in mail_orders(request, decide_request(request, policy), policy)
        if o.channel == "mss_professional"
    )
    mail = compose(request, order, Mailbox(HUMAN), MssConfig(software_reference="PFI-TEST"))
    return _xdm_of(mail.message).get_content()


def test_a_mail_with_two_xdm_sends_each_document_once_and_moves_after_both(
    fresh_ledger, site, config, partners, mail_servers, test_pki, samples_dir
):
    message = document_mail(samples_dir, INBOX_TEST_MAILBOX)
    message.add_attachment(_oru_xdm(samples_dir), "application", "zip", filename="IHE_XDM.ZIP")
    message_id = deliver(mail_servers, test_pki, message)

    assert poll(fresh_ledger, site, partners, config)["accepted"] == 1
    assert to_dpi(fresh_ledger, site, partners, config)["sent"] == 2

    assert len(partners.peer.received) == 2
    (item,) = fresh_ledger.find_inbound(source="inbox", kind="mail")
    assert [d.status for d in fresh_ledger.deliveries_asked_by(item.id)] == ["sent", "sent"]
    assert message_id in partners.folder_ids(config.processed_folder)


def test_a_cda_contradicting_its_xdm_metadata_is_refused_before_the_dpi(
    fresh_ledger, site, config, partners, mail_servers, test_pki, samples_dir
):
    import io
    import zipfile

    message = document_mail(samples_dir, INBOX_TEST_MAILBOX)
    part = _xdm_of(message)
    original = zipfile.ZipFile(io.BytesIO(part.get_content()))
    forged = io.BytesIO()
    with zipfile.ZipFile(forged, "w", zipfile.ZIP_DEFLATED) as out:
        for info in original.infolist():
            data = original.read(info)
            if info.filename.upper().endswith("METADATA.XML"):
                data = data.replace(b"279035121518989", b"279035121518990")
            out.writestr(info.filename, data)
    part.set_content(
        forged.getvalue(), "application", "zip", disposition="attachment", filename="IHE_XDM.ZIP"
    )
    message_id = deliver(mail_servers, test_pki, message)

    assert poll(fresh_ledger, site, partners, config)["refused"] == 1

    (item,) = fresh_ledger.find_inbound(source="inbox", kind="mail")
    assert item.reason_code == "MSS_IDENTITY_MISMATCH"
    assert "279035121518989" not in (item.reason_text or "")
    assert partners.peer.received == []
    assert message_id in partners.folder_ids(config.errors_folder)


def test_the_same_document_in_two_mails_is_one_document_and_two_messages_to_the_dpi(
    fresh_ledger, site, config, partners, mail_servers, test_pki, samples_dir
):
    first = deliver(mail_servers, test_pki, document_mail(samples_dir, INBOX_TEST_MAILBOX))
    second = deliver(mail_servers, test_pki, document_mail(samples_dir, INBOX_TEST_MAILBOX))

    assert poll(fresh_ledger, site, partners, config)["accepted"] == 2
    assert to_dpi(fresh_ledger, site, partners, config)["sent"] == 2

    items = fresh_ledger.find_inbound(source="inbox", kind="mail")
    documents = {d.document_id for i in items for d in fresh_ledger.deliveries_asked_by(i.id)}
    assert len(documents) == 1 and len(partners.peer.received) == 2
    assert {first, second} <= set(partners.folder_ids(config.processed_folder))
