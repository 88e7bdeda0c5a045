"""The test PKI and the local mail partner (Dovecot IMAP + SMTP relay), once per session.

``test_pki`` builds an IGC Santé-shaped PKI with a client certificate per application mailbox.
``mail_servers`` starts Dovecot and the SMTP relay on ephemeral ports with the mailboxes below;
use ``mail_servers.host`` / ``imaps_port`` / ``imap_port`` / ``smtp_port`` / ``smtps_port``,
``mail_servers.password_for(address)`` and ``pfi_devkit.mail.client_ssl_context(test_pki, cred)``.
The servers are shared by the session: tag what you send (a unique Subject) and search for it.
"""

import contextlib
import shutil
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

#: An application mailbox of the receiving flow's tests alone (its INBOX is emptied per test).
INBOX_TEST_MAILBOX = "reception@ch-demo.mssante.test"
APPLICATION_MAILBOXES = (
    "pfi@ch-demo.mssante.test",
    "labo@ch-demo.mssante.test",
    INBOX_TEST_MAILBOX,
)
#: The professional who mails the application mailboxes in the receiving tests.
HUMAN = "dr.test@ch-demo.mssante.test"
HUMAN_MAILBOXES = {
    "dr.test@ch-demo.mssante.test": "dr-test-devkit-password",
    # Recipients of the official ANS examples (PRT RCT, and the test INS patient's mailbox).
    "adam.hoda@test-ci-sis.mssante.fr": "adam-hoda-devkit-password",
    "279035121518989@patient.mssante.fr": "patient-devkit-password",
    # The operations mailbox the PFI's alerts go to (pfi.flows.alerts; make run's demo too).
    "integration@ch-demo.mssante.test": "integration-devkit-password",
}
#: The operations mailbox of the alerts' tests.
OPERATIONS_MAILBOX = "integration@ch-demo.mssante.test"


@pytest.fixture(scope="session")
def test_pki(tmp_path_factory: pytest.TempPathFactory):
    from pfi_devkit.pki import build_test_pki

    return build_test_pki(tmp_path_factory.mktemp("pki"), APPLICATION_MAILBOXES)


@pytest.fixture(scope="session")
def mail_servers(test_pki) -> Iterator:
    from pfi_devkit.mail import MailServers

    # Not tmp_path: Dovecot's mail user must traverse the folders above the Maildirs, and pytest
    # keeps its base folder 0700 (resetting it at each session start, even a concurrent one).
    state = Path(tempfile.mkdtemp(prefix="pfi-mail-", dir="/tmp"))
    state.chmod(0o755)
    servers = MailServers(state, test_pki, APPLICATION_MAILBOXES, HUMAN_MAILBOXES)
    try:
        with servers:
            yield servers
    finally:
        shutil.rmtree(state, ignore_errors=True)


def mailbox_tls(test_pki, address: str, *, credential=None, ca_bundle=None):
    """``pfi.protocols.mssante.tls.TlsFiles`` of an application mailbox: its certificate (or the
    ``credential`` given), the test CA (or ``ca_bundle``), the CRLs."""
    from pfi.protocols.mssante.tls import TlsFiles

    credential = credential or test_pki.clients[address]
    return TlsFiles(
        ca_bundle=ca_bundle or test_pki.ca_bundle,
        client_cert=credential.cert_path,
        client_key=credential.key_path,
        crl_file=test_pki.crl_bundle,
    )


def mailbox_connection(mail_servers, test_pki, address: str) -> dict:
    """The ``pfi_mss_<mailbox>`` Connection of an application mailbox (JSON form's fields)."""
    credential = test_pki.clients[address]
    return {
        "conn_type": "imap",
        "host": mail_servers.host,
        "port": mail_servers.imap_port,
        "login": address,
        "password": mail_servers.password_for(address),
        "extra": {
            "smtp_port": mail_servers.smtp_port,
            "client_cert": str(credential.cert_path),
            "client_key": str(credential.key_path),
            "ca_bundle": str(test_pki.ca_bundle),
            "crl_file": str(test_pki.crl_bundle),
            "timeout": 10,
        },
    }


def mailbox_endpoints(mail_servers, test_pki, address: str) -> tuple:
    """``(SmtpEndpoint, ImapEndpoint)`` of an application mailbox, from its Connection mapped as
    ``pfi mss`` maps it (:func:`pfi.protocols.mssante.connection.endpoints_of`)."""
    from pfi.protocols.mssante.connection import endpoints_of

    return endpoints_of(mailbox_connection(mail_servers, test_pki, address), address)


def received_mails(mail_servers, test_pki, address: str, message_id: str) -> list:
    """The mails of a human mailbox's INBOX with this Message-ID (parsed, left unread)."""
    import email
    import email.policy
    import imaplib

    from pfi_devkit.mail import client_ssl_context

    ctx = client_ssl_context(test_pki)
    with imaplib.IMAP4_SSL(mail_servers.host, mail_servers.imaps_port, ssl_context=ctx) as imap:
        imap.login(address, HUMAN_MAILBOXES[address])
        imap.select("INBOX", readonly=True)
        _, data = imap.uid("SEARCH", None, "HEADER", "Message-ID", message_id)
        mails = []
        for uid in data[0].split():
            _, fetched = imap.uid("FETCH", uid, "(BODY.PEEK[])")
            mails.append(email.message_from_bytes(fetched[0][1], policy=email.policy.default))
        return mails


def alert_mails(mail_servers, test_pki, tag: str) -> list[tuple]:
    """The PFI's alerts (header ``X-PFI-Alert``) in :data:`OPERATIONS_MAILBOX` whose text holds
    ``tag`` (e.g. the test site's name): ``(parsed mail, raw bytes)``, left unread."""
    import email
    import email.policy
    import imaplib

    from pfi_devkit.mail import client_ssl_context

    ctx = client_ssl_context(test_pki)
    found = []
    with imaplib.IMAP4_SSL(mail_servers.host, mail_servers.imaps_port, ssl_context=ctx) as imap:
        imap.login(OPERATIONS_MAILBOX, HUMAN_MAILBOXES[OPERATIONS_MAILBOX])
        imap.select("INBOX", readonly=True)
        _, data = imap.uid("SEARCH", None, "ALL")
        for uid in data[0].split():
            _, fetched = imap.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = fetched[0][1]
            mail = email.message_from_bytes(raw, policy=email.policy.default)
            if mail["X-PFI-Alert"] and tag in mail.get_content():
                found.append((mail, raw))
    return found


def document_mail(
    samples_dir: Path, recipient: str, *, with_xdm: bool = True, sample: str = "mdm_init.hl7"
):
    """A professional's mail carrying the document of a sample message (``IHE_XDM.ZIP`` + PDF;
    by default the MDM's CR d'imagerie), from ``dr.test@…``, with a new Message-ID;
    ``with_xdm=False``: the same mail, text only (:func:`pfi_devkit.samples.mail.document_mail`,
    as ``make run``'s demo mails it)."""
    import uuid

    from pfi_devkit.samples.mail import document_mail as devkit_document_mail

    return devkit_document_mail(
        (samples_dir / sample).read_bytes(),
        HUMAN,
        recipient,
        with_xdm=with_xdm,
        message_id=f"<{uuid.uuid4().hex}@cabinet.test>",
        software_reference="PFI-TEST",
        sender_name="Cabinet de test",
    )


def empty_inbox(mail_servers, test_pki, address: str) -> None:
    """Move what an application mailbox's INBOX holds aside (the servers are session-wide)."""
    from pfi.protocols.mssante.imap import ImapClient

    with ImapClient(mailbox_endpoints(mail_servers, test_pki, address)[1]) as imap:
        imap.select_folder("INBOX")
        for uid in imap.list_uids(limit=1000):
            imap.move(uid, "PFI-earlier-tests")


def renumber_inbox(mail_servers, address: str) -> int:
    """Give an INBOX a new UIDVALIDITY, as a server restored from a backup or migrated does
    (``doveadm mailbox update``): the UIDs the PFI recorded no longer name its mails. The new
    value."""
    import subprocess

    conf = str(mail_servers.dovecot.conf_path)
    status = ["doveadm", "-c", conf, "mailbox", "status", "-u", address, "uidvalidity", "INBOX"]
    before = int(
        subprocess.run(status, check=True, capture_output=True, text=True).stdout.split("=")[-1]
    )
    subprocess.run(
        [
            "doveadm",
            "-c",
            conf,
            "mailbox",
            "update",
            "-u",
            address,
            "--uid-validity",
            str(before + 1),
            "INBOX",
        ],
        check=True,
        capture_output=True,
    )
    return before + 1


def mail_from_human(mail_servers, test_pki, message, to: str = INBOX_TEST_MAILBOX) -> str:
    """``message`` (an EmailMessage) sent from :data:`HUMAN` to ``to``; its Message-ID."""
    import email.policy

    send_as_human(mail_servers, test_pki, HUMAN, to, message.as_bytes(policy=email.policy.SMTP))
    return message["Message-ID"]


def send_as_human(mail_servers, test_pki, human: str, to: str, raw: bytes) -> None:
    """A mail from a human mailbox (SMTPS, its password) to ``to``, e.g. an MDN or a reply."""
    import smtplib

    from pfi_devkit.mail import client_ssl_context

    ctx = client_ssl_context(test_pki)
    with smtplib.SMTP_SSL(mail_servers.host, mail_servers.smtps_port, context=ctx) as smtp:
        smtp.login(human, HUMAN_MAILBOXES[human])
        smtp.sendmail(human, [to], raw)


class DroppingSmtpServer:
    """A minimal SMTP server over implicit TLS (the devkit's server certificate) that keeps what
    it accepts and, when told, takes a mail's data and closes the connection without the final
    reply — as a relay that crashes, or a client timeout while a slow relay scans a large mail.
    ``offer_dsn`` makes it advertise the DSN extension; ``drop_next_rcpt`` closes the connection
    at the next RCPT TO instead (before any data: no doubt about the mail)."""

    def __init__(self, test_pki) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(test_pki.server.cert_path, test_pki.server.key_path)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received: list[bytes] = []
        self.drop_next_data = False
        self.drop_next_rcpt = False
        self.offer_dsn = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            with contextlib.suppress(OSError, ssl.SSLError):
                with self.ctx.wrap_socket(raw, server_side=True) as conn:
                    self._session(conn.makefile("rwb"))

    def _session(self, io) -> None:
        def reply(line: str) -> None:
            io.write(line.encode() + b"\r\n")
            io.flush()

        reply("220 dropping.test ESMTP")
        while line := io.readline():
            verb = line[:4].upper()
            if verb == b"EHLO":
                reply("250-dropping.test")
                if self.offer_dsn:
                    reply("250-DSN")
                reply("250 8BITMIME")
            elif verb == b"RCPT" and self.drop_next_rcpt:
                self.drop_next_rcpt = False
                return
            elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                reply("250 2.0.0 OK")
            elif verb == b"DATA":
                reply("354 go ahead")
                data = b""
                while (chunk := io.readline()) not in (b".\r\n", b""):
                    data += chunk
                self.received.append(data)
                if self.drop_next_data:
                    self.drop_next_data = False
                    return  # taken, then the connection is gone before "250"
                reply("250 2.0.0 queued")
            elif verb == b"QUIT":
                reply("221 bye")
                return
            else:
                reply("502 5.5.2 not implemented")

    def count(self, message_id: str) -> int:
        return sum(message_id.encode() in data for data in self.received)

    def close(self) -> None:
        self.listener.close()
