"""The devkit mail partner with real TLS: certificate authentication, refusals, relay outages.

Clients are the stdlib's (``imaplib``, ``smtplib``) with our own ``SSLContext``: trusting only the
test PKI and presenting a client certificate, as the project's hooks will.
"""

import email
import imaplib
import json
import shutil
import smtplib
import ssl
import tempfile
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

import pytest

from pfi_devkit.mail import MailServerError, MailServers, client_ssl_context
from pfi_fixtures.mail import APPLICATION_MAILBOXES, HUMAN_MAILBOXES

pytestmark = pytest.mark.integration

APP_A, APP_B = APPLICATION_MAILBOXES[:2]
HUMAN = next(iter(HUMAN_MAILBOXES))

# What a refused TLS client certificate looks like from the client: with TLS 1.3 the server's
# alert arrives on the first read after the handshake, so at STARTTLS, EHLO or the next command.
TLS_REFUSED = (ssl.SSLError, smtplib.SMTPServerDisconnected, ConnectionResetError)


def _message(sender: str, recipients: list[str]) -> tuple[EmailMessage, str]:
    subject = f"devkit test {uuid.uuid4()}"
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = subject
    msg.set_content("Message de test du devkit PFI (données fictives).")
    return msg, subject


def _subjects_in_inbox(imap: imaplib.IMAP4) -> list[str]:
    typ, _ = imap.select("INBOX", readonly=True)
    assert typ == "OK"
    typ, data = imap.search(None, "ALL")
    assert typ == "OK"
    subjects = []
    for num in data[0].split():
        typ, fetched = imap.fetch(num, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK"
        subjects.append(email.message_from_bytes(fetched[0][1])["Subject"])
    return subjects


def _imaps_external(mail_servers, test_pki, address: str) -> imaplib.IMAP4_SSL:
    ctx = client_ssl_context(test_pki, test_pki.clients[address])
    imap = imaplib.IMAP4_SSL(mail_servers.host, mail_servers.imaps_port, ssl_context=ctx)
    imap.authenticate("EXTERNAL", lambda _challenge: b"")
    return imap


def _smtp_starttls(mail_servers, ctx: ssl.SSLContext) -> smtplib.SMTP:
    smtp = smtplib.SMTP(mail_servers.host, mail_servers.smtp_port, timeout=10)
    smtp.starttls(context=ctx)
    smtp.ehlo()
    return smtp


def test_application_mail_is_relayed_to_each_recipient_and_read_with_the_certificate(
    mail_servers, test_pki
) -> None:
    msg, subject = _message(APP_A, [APP_B, HUMAN])
    ctx = client_ssl_context(test_pki, test_pki.clients[APP_A])
    with _smtp_starttls(mail_servers, ctx) as smtp:
        refused = smtp.send_message(msg)
    assert refused == {}

    # AUTHENTICATE EXTERNAL: the certificate alone names the mailbox.
    imap = _imaps_external(mail_servers, test_pki, APP_B)
    try:
        assert subject in _subjects_in_inbox(imap)
    finally:
        imap.logout()

    # The MSSanté way: STARTTLS with the certificate, then PLAIN with the mailbox address.
    imap = imaplib.IMAP4(mail_servers.host, mail_servers.imap_port)
    try:
        imap.starttls(ssl_context=client_ssl_context(test_pki, test_pki.clients[APP_B]))
        typ, _ = imap.login(APP_B, mail_servers.password_for(APP_B))
        assert typ == "OK"
        assert subject in _subjects_in_inbox(imap)
    finally:
        imap.logout()

    # The other recipient (own LMTP transaction), a human reading with a password.
    with imaplib.IMAP4_SSL(
        mail_servers.host, mail_servers.imaps_port, ssl_context=client_ssl_context(test_pki)
    ) as imap:
        imap.login(HUMAN, HUMAN_MAILBOXES[HUMAN])
        assert subject in _subjects_in_inbox(imap)


def test_human_sends_with_auth_plain_over_implicit_tls(mail_servers, test_pki) -> None:
    msg, subject = _message(HUMAN, [APP_A])
    ctx = client_ssl_context(test_pki)
    with smtplib.SMTP_SSL(mail_servers.host, mail_servers.smtps_port, context=ctx) as smtp:
        smtp.login(HUMAN, HUMAN_MAILBOXES[HUMAN])
        assert smtp.send_message(msg) == {}
    imap = _imaps_external(mail_servers, test_pki, APP_A)
    try:
        assert subject in _subjects_in_inbox(imap)
    finally:
        imap.logout()


def test_application_sends_over_implicit_tls_with_its_certificate_only(
    mail_servers, test_pki
) -> None:
    msg, subject = _message(APP_B, [APP_A])
    ctx = client_ssl_context(test_pki, test_pki.clients[APP_B])
    with smtplib.SMTP_SSL(mail_servers.host, mail_servers.smtps_port, context=ctx) as smtp:
        assert smtp.send_message(msg) == {}
    imap = _imaps_external(mail_servers, test_pki, APP_A)
    try:
        assert subject in _subjects_in_inbox(imap)
    finally:
        imap.logout()


@pytest.mark.parametrize("which", ["rogue_client", "revoked_client"])
def test_rogue_and_revoked_certificates_are_refused_at_imap(mail_servers, test_pki, which):
    cred = getattr(test_pki, which)
    assert cred.common_name == APP_A  # refused for the certificate, not for an unknown user
    ctx = client_ssl_context(test_pki, cred)
    with imaplib.IMAP4_SSL(mail_servers.host, mail_servers.imaps_port, ssl_context=ctx) as imap:
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            imap.authenticate("EXTERNAL", lambda _challenge: b"")
    with imaplib.IMAP4_SSL(mail_servers.host, mail_servers.imaps_port, ssl_context=ctx) as imap:
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            imap.login(APP_A, mail_servers.password_for(APP_A))


def test_application_mailbox_needs_its_own_certificate_at_imap(mail_servers, test_pki) -> None:
    password = mail_servers.password_for(APP_A)
    # The password alone is not enough...
    with imaplib.IMAP4_SSL(
        mail_servers.host, mail_servers.imaps_port, ssl_context=client_ssl_context(test_pki)
    ) as imap:
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            imap.login(APP_A, password)
    # ...nor is another mailbox's certificate.
    ctx = client_ssl_context(test_pki, test_pki.clients[APP_B])
    with imaplib.IMAP4_SSL(mail_servers.host, mail_servers.imaps_port, ssl_context=ctx) as imap:
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            imap.login(APP_A, password)


@pytest.mark.parametrize("which", ["rogue_client", "revoked_client"])
def test_rogue_and_revoked_certificates_are_refused_at_smtp(mail_servers, test_pki, which):
    ctx = client_ssl_context(test_pki, getattr(test_pki, which))
    msg, _ = _message(APP_A, [APP_B])
    with pytest.raises(TLS_REFUSED):
        with _smtp_starttls(mail_servers, ctx) as smtp:
            smtp.send_message(msg)
    with pytest.raises(TLS_REFUSED):
        with smtplib.SMTP_SSL(
            mail_servers.host, mail_servers.smtps_port, context=ctx, timeout=10
        ) as smtp:
            smtp.send_message(msg)


def test_sender_other_than_the_certificate_cn_is_refused_at_mail_from(
    mail_servers, test_pki
) -> None:
    msg, _ = _message(APP_B, [APP_A])
    ctx = client_ssl_context(test_pki, test_pki.clients[APP_A])
    with _smtp_starttls(mail_servers, ctx) as smtp:
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            smtp.send_message(msg)
    assert refused.value.smtp_code == 550


def test_sender_without_certificate_nor_auth_is_refused(mail_servers, test_pki) -> None:
    msg, _ = _message(HUMAN, [APP_A])
    with _smtp_starttls(mail_servers, client_ssl_context(test_pki)) as smtp:
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            smtp.send_message(msg)
    assert refused.value.smtp_code == 530


def test_unknown_recipient_is_refused_with_550(mail_servers, test_pki) -> None:
    unknown = "inconnu@ch-demo.mssante.test"
    msg, _ = _message(APP_A, [unknown])
    ctx = client_ssl_context(test_pki, test_pki.clients[APP_A])
    with _smtp_starttls(mail_servers, ctx) as smtp:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            smtp.send_message(msg)
    assert refused.value.recipients[unknown][0] == 550


def test_relay_down_then_up(mail_servers, test_pki) -> None:
    ctx = client_ssl_context(test_pki, test_pki.clients[APP_A])
    try:
        mail_servers.set_relay_state("refuse")
        with pytest.raises(ConnectionRefusedError):
            smtplib.SMTP(mail_servers.host, mail_servers.smtp_port, timeout=10)
        mail_servers.set_relay_state("421")
        with pytest.raises(smtplib.SMTPConnectError) as unavailable:
            smtplib.SMTP(mail_servers.host, mail_servers.smtp_port, timeout=10)
        assert unavailable.value.smtp_code == 421
    finally:
        mail_servers.set_relay_state("up")
    msg, subject = _message(APP_A, [APP_B])
    with _smtp_starttls(mail_servers, ctx) as smtp:
        assert smtp.send_message(msg) == {}
    imap = _imaps_external(mail_servers, test_pki, APP_B)
    try:
        assert subject in _subjects_in_inbox(imap)
    finally:
        imap.logout()


def test_describe_is_json_with_what_a_client_needs(mail_servers) -> None:
    described = json.loads(json.dumps(mail_servers.describe()))
    assert described["host"] == "127.0.0.1"
    ports = {
        described[key]
        for key in ("imaps_port", "imap_starttls_port", "smtp_starttls_port", "smtps_port")
    }
    assert len(ports) == 4 and all(port > 0 for port in ports)
    assert described["smtp_starttls_port"] == mail_servers.smtp_port
    assert set(described["application_mailboxes"]) == set(APPLICATION_MAILBOXES)
    app = described["application_mailboxes"][APP_A]
    assert app["password"] == mail_servers.password_for(APP_A)


def test_restart_on_the_same_state_keeps_mail_and_passwords(test_pki) -> None:
    """What ``make run`` does at every start: same state folder, new ports, same mailboxes."""
    state = Path(tempfile.mkdtemp(prefix="pfi-mail-restart-", dir="/tmp"))
    try:
        with MailServers(state, test_pki, [APP_A, APP_B]) as first:
            password = first.password_for(APP_B)
            msg, subject = _message(APP_A, [APP_B])
            ctx = client_ssl_context(test_pki, test_pki.clients[APP_A])
            with _smtp_starttls(first, ctx) as smtp:
                assert smtp.send_message(msg) == {}
        with MailServers(state, test_pki, [APP_A, APP_B]) as second:
            assert second.password_for(APP_B) == password
            imap = _imaps_external(second, test_pki, APP_B)
            try:
                assert subject in _subjects_in_inbox(imap)
            finally:
                imap.logout()
    finally:
        shutil.rmtree(state, ignore_errors=True)


def test_state_folder_the_mail_user_cannot_enter_is_reported(test_pki, tmp_path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    servers = MailServers(private / "state", test_pki, [APP_A])
    with pytest.raises(MailServerError, match="cannot enter"):
        servers.start()
    assert servers.dovecot.pid is None


def test_relay_offers_dsn_and_reports_delivery_to_the_sending_mailbox(mail_servers, test_pki):
    msg, subject = _message(APP_A, [APP_B])
    msg["Message-ID"] = f"<{uuid.uuid4()}@ch-demo.mssante.test>"
    envid = str(uuid.uuid4())
    ctx = client_ssl_context(test_pki, test_pki.clients[APP_A])
    with _smtp_starttls(mail_servers, ctx) as smtp:
        assert smtp.has_extn("dsn")
        smtp.sendmail(
            APP_A,
            [APP_B],
            msg.as_bytes(),
            mail_options=["RET=HDRS", f"ENVID={envid}"],
            rcpt_options=["NOTIFY=SUCCESS,FAILURE", f"ORCPT=rfc822;{APP_B}"],
        )
    imap = _imaps_external(mail_servers, test_pki, APP_A)
    try:
        imap.select("INBOX", readonly=True)
        typ, data = imap.search(None, "HEADER", "Content-Type", "delivery-status")
        reports = []
        for num in data[0].split():
            _, fetched = imap.fetch(num, "(BODY.PEEK[])")
            reports.append(email.message_from_bytes(fetched[0][1]))
    finally:
        imap.logout()
    (report,) = [r for r in reports if envid.upper() in r.as_string().upper()]
    assert report.get_content_type() == "multipart/report"
    per_message, per_recipient = report.get_payload()[1].get_payload()
    assert per_message["Original-Envelope-Id"].upper() == envid.upper()
    assert per_recipient["Action"] == "delivered" and per_recipient["Status"] == "2.0.0"
    assert per_recipient["Final-Recipient"] == f"rfc822; {APP_B}"
    assert msg["Message-ID"] in report.get_payload()[2].as_string()
    imap = _imaps_external(mail_servers, test_pki, APP_B)
    try:
        assert subject in _subjects_in_inbox(imap)
    finally:
        imap.logout()


def test_smtp_sasl_external_needs_an_application_certificate(mail_servers, test_pki) -> None:
    with smtplib.SMTP_SSL(
        mail_servers.host, mail_servers.smtps_port, context=client_ssl_context(test_pki)
    ) as smtp:
        smtp.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            smtp.auth("EXTERNAL", lambda challenge=None: "", initial_response_ok=False)
    assert refused.value.smtp_code == 535
    ctx = client_ssl_context(test_pki, test_pki.clients[APP_A])
    with smtplib.SMTP_SSL(mail_servers.host, mail_servers.smtps_port, context=ctx) as smtp:
        smtp.ehlo()
        code, _ = smtp.auth("EXTERNAL", lambda challenge=None: "", initial_response_ok=False)
        assert code == 235


@pytest.mark.parametrize("stored_before", [True, False], ids=["stored", "not-stored"])
def test_lost_lmtp_answer_is_accepted_and_the_mail_stored_once(
    mail_servers, test_pki, monkeypatch, stored_before
) -> None:
    """The mail store goes away before answering the relay's LMTP DATA: the client gets 250
    (it must not send again what may already be stored) and the mail is in the Maildir once."""
    real_sendmail = smtplib.LMTP.sendmail
    calls = []

    def answer_lost_once(self, *args, **kwargs):
        calls.append(args[1])
        if len(calls) == 1:
            if stored_before:
                real_sendmail(self, *args, **kwargs)
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        return real_sendmail(self, *args, **kwargs)

    monkeypatch.setattr(smtplib.LMTP, "sendmail", answer_lost_once)
    msg, subject = _message(APP_A, [APP_B])
    msg["Message-ID"] = f"<{uuid.uuid4()}@ch-demo.mssante.test>"
    ctx = client_ssl_context(test_pki, test_pki.clients[APP_A])
    with _smtp_starttls(mail_servers, ctx) as smtp:
        assert smtp.send_message(msg) == {}
    for _ in range(200):
        if not mail_servers.relay.spooled:
            break
        time.sleep(0.05)
    assert mail_servers.relay.spooled == 0
    assert len(calls) == (1 if stored_before else 2)
    imap = _imaps_external(mail_servers, test_pki, APP_B)
    try:
        assert _subjects_in_inbox(imap).count(subject) == 1
    finally:
        imap.logout()
