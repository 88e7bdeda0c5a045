"""The MSSanté SMTP client against the devkit relay and Dovecot, over real TLS with the
mailbox's client certificate: what arrives, what is refused, outages and closed sessions. The
mails are composed from the project's samples (``pfi_devkit.samples``)."""

import email
import email.policy
import imaplib
import socket

import pytest

from pfi.base.errors import ConfigurationError, TransientError
from pfi.protocols.cda import read_cda
from pfi.protocols.hl7v2 import decide_request, parse_message
from pfi.protocols.ins import InsPolicy
from pfi.protocols.mssante import Mailbox, MssConfig, compose, mail_orders
from pfi.protocols.mssante.smtp import (
    OutcomeUnknown,
    SmtpClient,
    SmtpEndpoint,
    SmtpRefused,
    SmtpTransient,
)
from pfi.protocols.xdm import read_xdm
from pfi_devkit.mail import client_ssl_context
from pfi_devkit.samples import MDM_INIT, ORU_INIT
from pfi_fixtures.mail import (
    APPLICATION_MAILBOXES,
    HUMAN_MAILBOXES,
    DroppingSmtpServer,
    mailbox_tls,
)

pytestmark = pytest.mark.integration

SENDER = APPLICATION_MAILBOXES[0]
POLICY = InsPolicy.for_environment("test")
CONFIG = MssConfig(software_reference="PFI-TEST", sender_name="CH de Démonstration")


def endpoint(mail_servers, test_pki, *, security="starttls", sasl="plain", credential=None, **kw):
    return SmtpEndpoint(
        host=mail_servers.host,
        port=mail_servers.smtp_port if security == "starttls" else mail_servers.smtps_port,
        mailbox=SENDER,
        tls=mailbox_tls(
            test_pki, SENDER, credential=credential, ca_bundle=kw.pop("ca_bundle", None)
        ),
        security=security,
        sasl=sasl,
        password=mail_servers.password_for(SENDER),
        timeout=10,
        **kw,
    )


def mails_of(samples_dir, path):
    request = parse_message((samples_dir / path).read_bytes())
    orders = mail_orders(request, decide_request(request, POLICY), POLICY)
    return request, [compose(request, order, Mailbox(SENDER), CONFIG) for order in orders]


def received(mail_servers, test_pki, address: str, message_id: str) -> list[bytes]:
    """Every mail of ``address``'s INBOX with this Message-ID (read without marking it seen)."""
    ctx = client_ssl_context(test_pki)
    with imaplib.IMAP4_SSL(mail_servers.host, mail_servers.imaps_port, ssl_context=ctx) as imap:
        imap.login(address, HUMAN_MAILBOXES[address])
        imap.select("INBOX", readonly=True)
        typ, data = imap.uid("SEARCH", None, "HEADER", "Message-ID", message_id)
        assert typ == "OK"
        found = []
        for uid in data[0].split():
            typ, fetched = imap.uid("FETCH", uid, "(BODY.PEEK[])")
            found.append(fetched[0][1])
        return found


def test_the_mdm_sample_arrives_once_with_headers_xdm_and_pdf(mail_servers, test_pki, samples_dir):
    request, (mail,) = mails_of(samples_dir, MDM_INIT)
    with SmtpClient(endpoint(mail_servers, test_pki)) as smtp:
        receipt = smtp.send(mail)
    assert receipt.message_id == mail.message_id

    (raw,) = received(mail_servers, test_pki, mail.recipient, mail.message_id)
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["From"].addresses[0].addr_spec == SENDER
    assert parsed["X-MSS-INS"] == "O" and parsed["X-MSS-CODECDA"] == "18748-4"
    assert parsed["X-MSS-NIL"] == "PFI-TEST"
    parts = {p.get_filename(): p.get_content() for p in parsed.iter_attachments()}
    package = read_xdm(parts.pop("IHE_XDM.ZIP"))
    assert package.documents[0].content == request.documents[0].content
    (pdf,) = parts.values()
    assert pdf == read_cda(request.documents[0].content).embedded_document()


def test_implicit_tls_with_the_certificate_only_reaches_professional_and_patient(
    mail_servers, test_pki, samples_dir
):
    _, mails = mails_of(samples_dir, ORU_INIT)
    assert {m.recipient for m in mails} == {
        "adam.hoda@test-ci-sis.mssante.fr",
        "279035121518989@patient.mssante.fr",
    }
    with SmtpClient(endpoint(mail_servers, test_pki, security="tls", sasl="none")) as smtp:
        for mail in mails:
            smtp.send(mail)
    for mail in mails:
        (raw,) = received(mail_servers, test_pki, mail.recipient, mail.message_id)
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert parsed["To"] == mail.recipient
        assert parsed["Disposition-Notification-To"] == SENDER


@pytest.mark.parametrize("which", ["rogue_client", "revoked_client"])
def test_rogue_or_revoked_certificate_is_refused_and_nothing_is_sent(
    mail_servers, test_pki, samples_dir, which
):
    _, (mail,) = mails_of(samples_dir, MDM_INIT)
    for security in ("starttls", "tls"):
        ep = endpoint(
            mail_servers, test_pki, security=security, credential=getattr(test_pki, which)
        )
        with SmtpClient(ep) as smtp, pytest.raises(TransientError) as refused:
            smtp.send(mail)
        assert refused.value.code == "MSS_TLS"
    assert received(mail_servers, test_pki, mail.recipient, mail.message_id) == []


def test_a_server_certificate_outside_the_ca_bundle_is_refused(mail_servers, test_pki, samples_dir):
    _, (mail,) = mails_of(samples_dir, MDM_INIT)
    ep = endpoint(mail_servers, test_pki, ca_bundle=test_pki.rogue_client.cert_path)
    with SmtpClient(ep) as smtp, pytest.raises(TransientError) as refused:
        smtp.send(mail)
    assert refused.value.code == "MSS_SERVER_CERTIFICATE"


def test_server_down_then_back_sends_once(mail_servers, test_pki, samples_dir):
    _, (mail,) = mails_of(samples_dir, MDM_INIT)
    smtp = SmtpClient(endpoint(mail_servers, test_pki))
    try:
        mail_servers.set_relay_state("refuse")
        with pytest.raises(TransientError) as down:
            smtp.send(mail)
        assert down.value.code == "MSS_CONNECTION"
        mail_servers.set_relay_state("421")
        with pytest.raises(SmtpTransient) as busy:
            smtp.send(mail)
        assert (busy.value.smtp_code, busy.value.code) == (421, "SMTP_421")
    finally:
        mail_servers.set_relay_state("up")
    smtp.send(mail)
    smtp.close()
    assert len(received(mail_servers, test_pki, mail.recipient, mail.message_id)) == 1


def test_session_closed_by_the_server_is_reopened(mail_servers, test_pki, samples_dir):
    _, mails = mails_of(samples_dir, ORU_INIT)
    with SmtpClient(endpoint(mail_servers, test_pki)) as smtp:
        smtp.send(mails[0])
        # The operator ends the session (inactivity, maximum duration): the server closes it.
        assert smtp._smtp.docmd("QUIT")[0] == 221
        smtp.send(mails[1])
    for mail in mails:
        assert len(received(mail_servers, test_pki, mail.recipient, mail.message_id)) == 1


def test_unknown_recipient_is_refused_with_its_smtp_code_and_no_address_in_the_message(
    mail_servers, test_pki, samples_dir
):
    request, (mail,) = mails_of(samples_dir, MDM_INIT)
    unknown = "279035121518989@patient-inconnu.mssante.test"
    mail.message.replace_header("To", unknown)
    mail = type(mail)(**{**mail.__dict__, "recipient": unknown})
    with SmtpClient(endpoint(mail_servers, test_pki)) as smtp:
        with pytest.raises(SmtpRefused) as refused:
            smtp.send(mail)
        assert (refused.value.smtp_code, refused.value.code) == (550, "SMTP_550")
        assert "279035121518989" not in str(refused.value)
        # The session survives a refused recipient: the next mail goes through.
        _, (other,) = mails_of(samples_dir, MDM_INIT)
        smtp.send(other)
    assert len(received(mail_servers, test_pki, other.recipient, other.message_id)) == 1


def test_wrong_password_or_foreign_certificate_is_a_configuration_error(
    mail_servers, test_pki, samples_dir
):
    _, (mail,) = mails_of(samples_dir, MDM_INIT)
    bad_password = endpoint(mail_servers, test_pki)
    bad_password = type(bad_password)(**{**bad_password.__dict__, "password": "wrong"})
    with SmtpClient(bad_password) as smtp, pytest.raises(ConfigurationError) as refused:
        smtp.send(mail)
    assert refused.value.code == "MSS_AUTH"
    # Another mailbox's certificate: the relay refuses our sender at MAIL FROM (5xx).
    foreign = endpoint(
        mail_servers, test_pki, sasl="none", credential=test_pki.clients[APPLICATION_MAILBOXES[1]]
    )
    with SmtpClient(foreign) as smtp, pytest.raises(ConfigurationError) as refused:
        smtp.send(mail)
    assert refused.value.code == "SMTP_550"


def test_a_server_that_never_answers_times_out(mail_servers, test_pki, samples_dir):
    _, (mail,) = mails_of(samples_dir, MDM_INIT)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # accepts the TCP connection, never sends a greeting
        ep = endpoint(mail_servers, test_pki)
        ep = type(ep)(**{**ep.__dict__, "port": silent.getsockname()[1], "timeout": 0.3})
        with SmtpClient(ep) as smtp, pytest.raises(TransientError) as late:
            smtp.send(mail)
    assert late.value.code == "MSS_TIMEOUT"


def test_sasl_external_over_the_certificate(mail_servers, test_pki, samples_dir):
    _, (mail,) = mails_of(samples_dir, MDM_INIT)
    with SmtpClient(endpoint(mail_servers, test_pki, sasl="external")) as smtp:
        smtp.send(mail)
    assert len(received(mail_servers, test_pki, mail.recipient, mail.message_id)) == 1


def test_a_connection_lost_after_the_data_is_not_followed_by_a_second_copy(
    mail_servers, test_pki, samples_dir
):
    # The session is reused for a second mail; the server takes that mail's data and the
    # connection drops before its reply. The mail may well be on its way: sending it again on a
    # new session would give the recipient two copies. It is a transient failure, nothing more.
    _, (first,) = mails_of(samples_dir, MDM_INIT)
    _, (second,) = mails_of(samples_dir, MDM_INIT)
    server = DroppingSmtpServer(test_pki)
    try:
        ep = endpoint(mail_servers, test_pki, security="tls", sasl="none")
        ep = type(ep)(**{**ep.__dict__, "port": server.port})
        with SmtpClient(ep) as smtp:
            smtp.send(first)
            server.drop_next_data = True
            with pytest.raises(OutcomeUnknown) as raised:
                smtp.send(second)
    finally:
        server.close()
    assert (server.count(first.message_id), server.count(second.message_id)) == (1, 1)
    assert not raised.value.dsn_requested  # this server offers no DSN


def test_only_a_loss_after_the_data_leaves_the_outcome_unknown(mail_servers, test_pki, samples_dir):
    _, (mail, *_) = mails_of(samples_dir, ORU_INIT)  # asks for receipts: a DSN is requested
    server = DroppingSmtpServer(test_pki)
    server.offer_dsn = True
    try:
        ep = endpoint(mail_servers, test_pki, security="tls", sasl="none")
        ep = type(ep)(**{**ep.__dict__, "port": server.port})
        server.drop_next_rcpt = True
        with SmtpClient(ep) as smtp, pytest.raises(TransientError) as before_data:
            smtp.send(mail)
        server.drop_next_data = True
        with SmtpClient(ep) as smtp, pytest.raises(OutcomeUnknown) as after_data:
            smtp.send(mail)
    finally:
        server.close()
    assert not isinstance(before_data.value, OutcomeUnknown)
    assert after_data.value.dsn_requested and after_data.value.code == "MSS_OUTCOME_UNKNOWN"
    assert server.count(mail.message_id) == 1
