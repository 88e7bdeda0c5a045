"""The receiving side against Dovecot and the SMTP relay, with the mailbox's client certificate:
a document mail delivered to an application mailbox is listed, fetched without being marked
read, moved to a folder created on the way, and answered with the volet's error mail (MDN or
standard) sent by the SMTP client. The mail is composed from the project's samples."""

import dataclasses
import email.policy
import uuid
from pathlib import Path

import pytest

from pfi.base.errors import ConfigurationError, InvalidInput, TransientError
from pfi.protocols.hl7v2 import decide_request, parse_message
from pfi.protocols.ins import InsPolicy
from pfi.protocols.mssante import Mailbox, MssConfig, compose, mail_orders
from pfi.protocols.mssante.error_mail import error_mail, reply_message_id
from pfi.protocols.mssante.imap import ImapClient, ImapEndpoint
from pfi.protocols.mssante.inbound import read_mail
from pfi.protocols.mssante.notifications import parse_notifications
from pfi.protocols.mssante.smtp import SmtpClient
from pfi.protocols.mssante.tls import TlsFiles
from pfi.protocols.xdm import read_xdm
from pfi_devkit.samples import MDM_INIT
from pfi_fixtures.mail import (
    APPLICATION_MAILBOXES,
    mailbox_endpoints,
    received_mails,
    send_as_human,
)

pytestmark = pytest.mark.integration

READER = APPLICATION_MAILBOXES[1]
HUMAN = "dr.test@ch-demo.mssante.test"
POLICY = InsPolicy.for_environment("test")
CONFIG = MssConfig(software_reference="PFI-TEST", sender_name="Laboratoire de test")


def deliver_document_mail(mail_servers, test_pki, samples_dir, *, mdn: bool = True):
    """A document mail (IHE_XDM.ZIP + PDF) from the human's mailbox into READER's INBOX, as an
    SGL's PFI would send it; ``(request, Message-ID)``."""
    request = parse_message((samples_dir / MDM_INIT).read_bytes())
    (order,) = mail_orders(request, decide_request(request, POLICY), POLICY)
    composed = compose(
        request, dataclasses.replace(order, recipient=READER), Mailbox(HUMAN), CONFIG
    )
    message = composed.message
    del message["Disposition-Notification-To"]
    if mdn:
        message["Disposition-Notification-To"] = HUMAN
    send_as_human(mail_servers, test_pki, HUMAN, READER, message.as_bytes(policy=email.policy.SMTP))
    return request, composed.message_id


def uid_of(imap: ImapClient, message_id: str) -> int:
    (uid,) = imap._call("SEARCH", "HEADER", "Message-ID", message_id)[0].split()
    return int(uid)


def flags(imap: ImapClient, uid: int) -> bytes:
    fetched = imap._call("FETCH", str(uid), "(FLAGS)")
    return b" ".join(f if isinstance(f, bytes) else f[0] for f in fetched if f)


def test_a_document_mail_is_listed_fetched_unseen_moved_and_answered_with_an_mdn(
    mail_servers, test_pki, samples_dir
):
    request, message_id = deliver_document_mail(mail_servers, test_pki, samples_dir)
    smtp_endpoint, imap_endpoint = mailbox_endpoints(mail_servers, test_pki, READER)
    folder = f"PFI/Refuses-{uuid.uuid4().hex[:8]}"
    with ImapClient(imap_endpoint) as imap:
        validity = imap.select_folder()
        assert validity > 0 and imap.select_folder("INBOX") == validity
        uids = imap.list_uids(limit=10_000)
        assert uids == sorted(uids)
        uid = uid_of(imap, message_id)
        assert uid in uids
        assert imap.list_uids(limit=10_000, after=uid - 1)[0] == uid
        assert imap.list_uids(limit=1, after=uid - 1) == [uid]

        raw = imap.fetch(uid)
        assert b"\\Seen" not in flags(imap, uid)  # BODY.PEEK: still unread for a human
        received = read_mail(raw)
        assert received.message_id == message_id
        assert received.sender == HUMAN and READER in received.recipients
        assert received.subject.startswith("XDM/1.0/DDM+")
        assert received.disposition_notification_to == HUMAN
        (archive,) = received.xdm_archives
        package = read_xdm(archive.data)
        assert package.documents[0].content == request.documents[0].content
        assert len(received.attachments) == 2  # the XDM and the PDF

        assert "MOVE" in imap.capabilities
        imap.move(uid, folder)
        assert imap.fetch(uid) is None
        assert uid not in imap.list_uids(limit=10_000)
        imap.select_folder(folder)
        (moved,) = imap.list_uids()
        assert read_mail(imap.fetch(moved)).message_id == message_id
        assert b"\\Seen" not in flags(imap, moved)
        # The sending side's reports are still read from the endpoint's folder (INBOX).
        imap.reports()
        assert imap.folder == "INBOX"

    reply = error_mail(
        received,
        from_address=READER,
        code="902",
        text="Identifiant patient inconnu",
        message_id=reply_message_id(received, READER),
    )
    with SmtpClient(smtp_endpoint) as smtp:
        receipt = smtp.send(reply)
    assert receipt.message_id == reply.message_id
    (got,) = received_mails(mail_servers, test_pki, HUMAN, reply.message_id)
    assert got["Subject"] == f"[KO Intégration système !][902] {received.subject}"
    assert got.get_content_type() == "multipart/report"
    (note,) = parse_notifications(got.as_bytes(policy=email.policy.SMTP))
    assert note.error_code == "902" and note.original_message_id == message_id
    again = {p.get_filename() for p in got.iter_attachments() if p.get_filename()}
    assert "IHE_XDM.ZIP" in again and len(again) == 2


@pytest.mark.parametrize("without", [{"MOVE"}, {"MOVE", "UIDPLUS"}])
def test_move_without_move_or_uidplus(mail_servers, test_pki, samples_dir, without):
    _, message_id = deliver_document_mail(mail_servers, test_pki, samples_dir, mdn=False)
    smtp_endpoint, imap_endpoint = mailbox_endpoints(mail_servers, test_pki, READER)
    folder = f"PFI/Integres-{uuid.uuid4().hex[:8]}"
    with ImapClient(imap_endpoint) as imap:
        imap.select_folder()
        uid = uid_of(imap, message_id)
        imap._capabilities = imap.capabilities - without  # as a server that lacks them
        imap.move(uid, folder)
        assert uid not in imap.list_uids(limit=10_000)
        if "UIDPLUS" in without:  # copied and flagged, never expunged with others' mails
            assert b"\\Deleted" in flags(imap, uid)
        else:
            assert imap.fetch(uid) is None
        imap.select_folder(folder)
        (moved,) = imap.list_uids()
        received = read_mail(imap.fetch(moved))
        assert received.message_id == message_id
        assert b"\\Deleted" not in flags(imap, moved)

    # No Disposition-Notification-To: a standard mail, here to a configured error mailbox.
    reply = error_mail(
        received,
        from_address=READER,
        code="XDM_UNREADABLE",
        text="L'archive IHE_XDM.ZIP est illisible",
        to_address=HUMAN,
        message_id=reply_message_id(received, READER),
    )
    assert reply.kind == "standard"
    with SmtpClient(smtp_endpoint) as smtp:
        smtp.send(reply)
    (got,) = received_mails(mail_servers, test_pki, HUMAN, reply.message_id)
    assert got.get_content_type() == "multipart/mixed"
    assert got["Subject"].startswith("[KO Intégration système !][XDM_UNREADABLE] XDM/1.0/DDM+")
    names = [p.get_filename() for p in got.iter_attachments()]
    assert names[0] == "message_original.eml" and "IHE_XDM.ZIP" in names


def test_fetch_limits_and_a_session_reopened_on_the_selected_folder(
    mail_servers, test_pki, samples_dir
):
    _, message_id = deliver_document_mail(mail_servers, test_pki, samples_dir, mdn=False)
    _, imap_endpoint = mailbox_endpoints(mail_servers, test_pki, READER)
    folder = f"PFI/Limites-{uuid.uuid4().hex[:8]}"
    with ImapClient(imap_endpoint) as imap:
        imap.select_folder()
        uid = uid_of(imap, message_id)
        with pytest.raises(InvalidInput) as too_large:
            imap.fetch(uid, max_bytes=1000)
        assert too_large.value.code == "MSS_MAIL_TOO_LARGE"
        assert imap.fetch(uid, max_bytes=10_000_000) is not None
        assert imap.fetch(10_000_000) is None
        assert imap.fetch(10_000_000, max_bytes=10) is None
        imap.move(uid, folder)
        validity = imap.select_folder(folder)
        imap._imap.send(b"X1 LOGOUT\r\n")  # the server ends the session, unannounced
        (moved,) = imap.list_uids()  # reopened, the same folder selected again
        assert imap.folder == folder and imap.select_folder(folder) == validity
        assert read_mail(imap.fetch(moved)).message_id == message_id


def test_a_changed_uidvalidity_stops_every_uid_operation(mail_servers, test_pki):
    _, imap_endpoint = mailbox_endpoints(mail_servers, test_pki, READER)
    folder = f"PFI/Validite-{uuid.uuid4().hex[:8]}"
    with ImapClient(imap_endpoint) as imap:
        imap.ensure_folder(folder)
        imap.ensure_folder(folder)  # exists: nothing done
        before = imap.select_folder(folder)
        imap.select_folder("INBOX")
        # Someone deletes and recreates the folder: its UIDs now name other mails.
        assert imap._imap.delete(f'"{folder}"')[0] == "OK"
        assert imap._imap.create(f'"{folder}"')[0] == "OK"
        with pytest.raises(TransientError) as changed:
            imap.select_folder(folder)
        assert changed.value.code == "MSS_UIDVALIDITY_CHANGED"
        with pytest.raises(TransientError):
            imap.list_uids()
    with ImapClient(imap_endpoint) as fresh:  # a new client reads it with its new UIDVALIDITY
        assert fresh.select_folder(folder) != before
        assert fresh.list_uids() == []


@pytest.mark.parametrize("name", ['a"b', "a*", "a%", "../x", "Reçus", "a\r\nb", "", "/x", "x/"])
def test_folder_names_are_checked_before_any_connection(name):
    endpoint = ImapEndpoint("127.0.0.1", 1, READER, TlsFiles(ca_bundle=Path("/nonexistent")))
    with ImapClient(endpoint) as imap, pytest.raises(ConfigurationError) as refused:
        imap.move(1, name)
    assert refused.value.code == "MSS_BAD_FOLDER"


def test_idle_wakes_as_soon_as_a_mail_arrives_and_times_out_quietly_otherwise(
    mail_servers, test_pki, samples_dir
):
    import threading

    _, imap_endpoint = mailbox_endpoints(mail_servers, test_pki, READER)
    with ImapClient(imap_endpoint) as imap:
        imap.select_folder("INBOX")
        assert "IDLE" in imap.capabilities
        assert imap.wait_for_new_mail(0.3) is False  # nothing came: no event, session intact
        before = imap.list_uids(limit=10_000)

        sender = threading.Timer(0.5, deliver_document_mail, (mail_servers, test_pki, samples_dir))
        sender.start()
        assert imap.wait_for_new_mail(60) is True  # woken by the server (False at the end)
        sender.join()
        # The session goes on after IDLE: the new mail is listed with the same client.
        assert len(imap.list_uids(limit=10_000)) == len(before) + 1


def test_idle_on_a_server_without_it_says_so(mail_servers, test_pki):
    _, imap_endpoint = mailbox_endpoints(mail_servers, test_pki, READER)
    with ImapClient(imap_endpoint) as imap:
        imap.select_folder("INBOX")
        imap._capabilities = imap._capabilities - {"IDLE"}
        with pytest.raises(ConfigurationError) as refused:
            imap.wait_for_new_mail(1)
    assert refused.value.code == "MSS_NO_IDLE"
