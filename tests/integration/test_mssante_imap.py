"""The MSSanté IMAP client against Dovecot with client certificates: reports only, flagged once
processed, EXTERNAL or PLAIN, refused certificates, a closed session reopened."""

import uuid

import pytest

from pfi.base.errors import ConfigurationError, TransientError
from pfi.protocols.mssante.imap import ImapClient, ImapEndpoint
from pfi_fixtures.mail import APPLICATION_MAILBOXES, mailbox_tls, send_as_human

pytestmark = pytest.mark.integration

READER = APPLICATION_MAILBOXES[1]
HUMAN = "dr.test@ch-demo.mssante.test"


def endpoint(mail_servers, test_pki, *, security="starttls", sasl="plain", credential=None, **kw):
    return ImapEndpoint(
        host=mail_servers.host,
        port=mail_servers.imap_port if security == "starttls" else mail_servers.imaps_port,
        mailbox=READER,
        tls=mailbox_tls(
            test_pki, READER, credential=credential, ca_bundle=kw.pop("ca_bundle", None)
        ),
        security=security,
        sasl=sasl,
        password=mail_servers.password_for(READER),
        timeout=10,
    )


def _mdn(tag: str) -> bytes:
    return (
        f"From: {HUMAN}\r\nTo: {READER}\r\nSubject: lu {tag}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=disposition-notification; boundary="B"\r\n'
        "\r\n--B\r\nContent-Type: text/plain\r\n\r\nLu.\r\n--B\r\n"
        "Content-Type: message/disposition-notification\r\n\r\n"
        f"Final-Recipient: rfc822; {HUMAN}\r\nOriginal-Message-ID: <{tag}@x>\r\n"
        "Disposition: manual-action/MDN-sent-manually; displayed\r\n--B--\r\n"
    ).encode()


@pytest.mark.parametrize(("security", "sasl"), [("starttls", "plain"), ("tls", "external")])
def test_reports_are_listed_once_and_ordinary_mail_is_left_alone(
    mail_servers, test_pki, security, sasl
):
    tag = uuid.uuid4().hex
    send_as_human(mail_servers, test_pki, HUMAN, READER, _mdn(tag))
    send_as_human(
        mail_servers,
        test_pki,
        HUMAN,
        READER,
        f"From: {HUMAN}\r\nSubject: {tag}\r\n\r\nBonjour\r\n".encode(),
    )
    with ImapClient(endpoint(mail_servers, test_pki, security=security, sasl=sasl)) as imap:
        reports = imap.reports()
        mine = [uid for uid, raw in reports if tag.encode() in raw]
        assert len(mine) == 1
        assert all(b"multipart/report" in raw for _, raw in reports)
        for uid, _ in reports:
            imap.mark_processed(uid)
        assert imap.reports() == []
        # The ordinary mail is still unread for the receiving side.
        typ, data = imap._imap.uid("SEARCH", "UNSEEN", "SUBJECT", tag)
        assert typ == "OK" and len(data[0].split()) == 1


def test_session_closed_by_the_server_is_reopened(mail_servers, test_pki):
    tag = uuid.uuid4().hex
    with ImapClient(endpoint(mail_servers, test_pki)) as imap:
        imap.reports()
        imap._imap.send(b"X1 LOGOUT\r\n")  # the server ends the session (BYE), unannounced
        send_as_human(mail_servers, test_pki, HUMAN, READER, _mdn(tag))
        assert any(tag.encode() in raw for _, raw in imap.reports())


@pytest.mark.parametrize("which", ["rogue_client", "revoked_client"])
def test_rogue_or_revoked_certificate_is_refused(mail_servers, test_pki, which):
    ep = endpoint(mail_servers, test_pki, credential=getattr(test_pki, which))
    with ImapClient(ep) as imap, pytest.raises(ConfigurationError) as refused:
        imap.reports()
    assert refused.value.code == "MSS_AUTH"


def test_server_certificate_outside_the_bundle_is_refused(mail_servers, test_pki):
    ep = endpoint(mail_servers, test_pki, ca_bundle=test_pki.rogue_client.cert_path)
    with ImapClient(ep) as imap, pytest.raises(TransientError) as refused:
        imap.reports()
    assert refused.value.code == "MSS_SERVER_CERTIFICATE"
