"""DSN/MDN parsing: the IG-MSS MDN error example (``ans-ig-extracted``) and RFC 3464 shapes."""

import uuid

from pfi.protocols.mssante.notifications import parse_notifications

REQUEST_ID = uuid.UUID("7c9e6679-7425-40de-944b-e07fc1f90ae7")
MESSAGE_ID = f"<{REQUEST_ID}@ch-demo.mssante.test>"


def test_ig_mdn_error_example_gives_its_code(fixtures_dir):
    raw = (fixtures_dir / "ans-ig-extracted/IG-trans-cda-mss_MDN-error-example.txt").read_bytes()
    (note,) = parse_notifications(raw)
    assert note.kind == "mdn"
    assert note.action == "processed" and note.status == "error"
    assert note.error_code == "902" and not note.processed_ok
    assert note.recipient == "servicey_auto@chb.mssante.fr"
    assert note.original_message_id == "<199509192301.23456>"  # the example's blank removed
    assert note.request_id is None  # not one of ours


def _dsn(action: str, status: str, diagnostic: str = "", returned: bool = True) -> bytes:
    headers = (
        f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {MESSAGE_ID}\r\n"
        if returned
        else ""
    )
    return (
        "From: MAILER-DAEMON@relay\r\nTo: pfi@ch-demo.mssante.test\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nRapport.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; relay\r\nOriginal-Envelope-Id: {REQUEST_ID}\r\n\r\n"
        f"Final-Recipient: rfc822; Dr.Who@Example.org\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"{diagnostic}\r\n{headers}--B--\r\n"
    ).encode()


def test_dsn_delivered_and_failed_are_matched_by_message_id_or_envelope_id():
    (ok,) = parse_notifications(_dsn("delivered", "2.0.0"))
    assert ok.delivered and not ok.failed and ok.request_id == REQUEST_ID
    assert ok.recipient == "dr.who@example.org"
    (ko,) = parse_notifications(
        _dsn("failed", "5.2.2", "Diagnostic-Code: smtp; 552 5.2.2 mailbox full\r\n", False)
    )
    assert ko.failed and ko.smtp_code == 552
    assert ko.original_message_id == "" and ko.request_id == REQUEST_ID  # from ENVID
    (late,) = parse_notifications(_dsn("delayed", "4.4.1"))
    assert not late.delivered and not late.failed and late.smtp_code == 450


def test_an_ordinary_mail_is_no_notification():
    raw = b"From: a@b\r\nTo: c@d\r\nSubject: x\r\n\r\nBonjour\r\n"
    assert parse_notifications(raw) == []
