"""The test PKI and the local mail partner (Dovecot IMAP + SMTP relay), once per session.

``test_pki`` builds an IGC Santé-shaped PKI with a client certificate per application mailbox.
``mail_servers`` starts Dovecot and the SMTP relay on ephemeral ports with the mailboxes below;
use ``mail_servers.host`` / ``imaps_port`` / ``imap_port`` / ``smtp_port`` / ``smtps_port``,
``mail_servers.password_for(address)`` and ``pfi_devkit.mail.client_ssl_context(test_pki, cred)``.
The servers are shared by the session: tag what you send (a unique Subject) and search for it.
"""

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

APPLICATION_MAILBOXES = ("pfi@ch-demo.mssante.test", "labo@ch-demo.mssante.test")
HUMAN_MAILBOXES = {
    "dr.test@ch-demo.mssante.test": "dr-test-devkit-password",
    # Recipients of the official ANS examples (PRT RCT, and the test INS patient's mailbox).
    "adam.hoda@test-ci-sis.mssante.fr": "adam-hoda-devkit-password",
    "279035121518989@patient.mssante.fr": "patient-devkit-password",
}


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
    """``pfi.mssante.tls.TlsFiles`` of an application mailbox: its certificate (or the
    ``credential`` given), the test CA (or ``ca_bundle``), the CRLs."""
    from pfi.mssante.tls import TlsFiles

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
    ``pfi mss`` maps it (:func:`pfi.mssante.connection.endpoints_of`)."""
    from pfi.mssante.connection import endpoints_of

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


def send_as_human(mail_servers, test_pki, human: str, to: str, raw: bytes) -> None:
    """A mail from a human mailbox (SMTPS, its password) to ``to``, e.g. an MDN or a reply."""
    import smtplib

    from pfi_devkit.mail import client_ssl_context

    ctx = client_ssl_context(test_pki)
    with smtplib.SMTP_SSL(mail_servers.host, mail_servers.smtps_port, context=ctx) as smtp:
        smtp.login(human, HUMAN_MAILBOXES[human])
        smtp.sendmail(human, [to], raw)
