"""The error mail of the volet (IG-MSS ``struct-msg-mdn.md``, ``struct-email-standard.md``): an
MDN when the received mail asked for one, else a standard mail; parsed back with the stdlib."""

import email
import email.policy
import importlib
from datetime import UTC, datetime

import pytest

from pfi.base.errors import ConfigurationError, InvalidInput
from pfi.protocols.mssante.error_mail import (
    ReplyMail,
    error_mail,
    ko_subject,
    processed_mdn,
    reply_message_id,
)
from pfi.protocols.mssante.inbound import read_mail
from pfi.protocols.mssante.notifications import parse_notifications

#: The module (the package's ``error_mail`` is the function, as ``compose`` is).
em = importlib.import_module("pfi.protocols.mssante.error_mail")

APP = "pfi@ch-demo.mssante.test"
SENDER = "sgl@labo-x.mssante.fr"
SUBJECT = "XDM/1.0/DDM+ECHOGRAPHIE ABDOMINOPELVIENNE CORSE FIGATELLIX 12/10/1988"
NOW = datetime(2024, 2, 20, 4, 19, tzinfo=UTC)
REPLY_ID = "<pfi-ko.0001@ch-demo.mssante.test>"
PDF_NAME = "20220531_CR d'imagerie médicale_CORSE_FIGATELLIX.pdf"


def original(*extra: str, body: str = "Bonjour,\nci-joint le compte rendu.\n") -> bytes:
    msg = email.message.EmailMessage()
    msg["From"] = f"Laboratoire X <{SENDER}>"
    msg["To"] = APP
    msg["Subject"] = SUBJECT
    msg["Date"] = "Tue, 20 Feb 2024 00:10:00 +0100"
    msg["Message-ID"] = "<199509192301.23456@labo-x.mssante.fr>"
    for header in extra:
        name, _, value = header.partition(": ")
        msg[name] = value
    msg.set_content(body)
    msg.add_attachment(b"PK\x03\x04 xdm", "application", "zip", filename="IHE_XDM.zip")
    msg.add_attachment(b"%PDF-1.4 cr", "application", "pdf", filename=PDF_NAME)
    return msg.as_bytes(policy=email.policy.SMTP)


def parsed(reply: ReplyMail) -> email.message.EmailMessage:
    return email.message_from_bytes(reply.as_bytes(), policy=email.policy.default)


def mdn_fields(message) -> email.message.Message:
    (part,) = [p for p in message.iter_parts() if p.get_content_type().endswith("notification")]
    (fields,) = part.get_payload()
    return fields


def test_mdn_when_the_mail_asked_for_one():
    received = read_mail(
        original(
            f"Disposition-Notification-To: {SENDER}",
            "Original-Recipient: rfc822;service-y@ch-demo.mssante.test",
        )
    )
    reply = error_mail(
        received,
        from_address=APP,
        code="902",
        text="Identifiant patient inconnu",
        message_id=REPLY_ID,
        now=NOW,
    )
    assert reply.kind == "mdn" and reply.code == "902" and reply.recipient == SENDER
    assert reply.sender == APP and reply.message_id == REPLY_ID and not reply.dsn
    msg = parsed(reply)
    assert msg["Subject"] == f"[KO Intégration système !][902] {SUBJECT}"
    assert msg["From"] == APP and msg["To"] == SENDER
    assert msg["Message-ID"] == REPLY_ID
    assert msg["In-Reply-To"] == "<199509192301.23456@labo-x.mssante.fr>"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["Date"].datetime == NOW
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "disposition-notification"
    types = [p.get_content_type() for p in msg.iter_parts()]
    assert types == [
        "text/plain",
        "message/disposition-notification",
        "message/rfc822",
        "application/zip",
        "application/pdf",
    ]
    text = next(msg.iter_parts()).get_content()
    assert (
        "Le message ci-dessous n'a pas pu être intégré automatiquement dans le DPI pour la raison "
        "suivante : Identifiant patient inconnu"
    ) in text
    assert "Code d'erreur : 902" in text
    assert "> ci-joint le compte rendu." in text
    fields = mdn_fields(msg)
    assert fields["Final-Recipient"] == f"rfc822;{APP}"
    assert fields["Original-Recipient"] == "rfc822;service-y@ch-demo.mssante.test"
    assert fields["Original-Message-ID"] == "<199509192301.23456@labo-x.mssante.fr>"
    assert fields["Disposition"] == (
        "automatic-action/MDN-sent-automatically; processed/Error: 902^Identifiant patient inconnu"
    )
    # The sending side's own parser reads it back.
    (note,) = parse_notifications(reply.as_bytes())
    assert note.kind == "mdn" and note.error_code == "902" and not note.processed_ok
    assert note.original_message_id == received.message_id


def test_the_original_mail_and_its_attachments_come_back():
    received = read_mail(original(f"Disposition-Notification-To: {SENDER}"))
    msg = parsed(error_mail(received, from_address=APP, code="906", message_id=REPLY_ID))
    quoted = [p for p in msg.iter_parts() if p.get_content_type() == "message/rfc822"][0]
    (inner,) = quoted.get_payload()
    assert inner["Message-ID"] == received.message_id and inner["Subject"] == SUBJECT
    again = {
        p.get_filename(): p.get_content()
        for p in msg.iter_attachments()
        if p.get_content_maintype() == "application"
    }
    assert again == {"IHE_XDM.zip": b"PK\x03\x04 xdm", PDF_NAME: b"%PDF-1.4 cr"}
    assert all(
        p["Content-Transfer-Encoding"] == "base64"
        for p in msg.iter_parts()
        if p.get_content_maintype() == "application"
    )
    # The received mail's bytes, as they came.
    assert received.raw in parsed_bytes(msg)


def parsed_bytes(msg) -> bytes:
    return msg.as_bytes(policy=email.policy.SMTP)


def test_standard_mail_without_disposition_notification_to():
    received = read_mail(original())
    reply = error_mail(
        received,
        from_address=APP,
        code="XDM_NO_ARCHIVE",
        text="Le courriel ne porte pas d'archive IHE_XDM.ZIP lisible",
        message_id=REPLY_ID,
        now=NOW,
    )
    assert reply.kind == "standard" and reply.recipient == SENDER
    msg = parsed(reply)
    assert msg.get_content_type() == "multipart/mixed"
    assert msg["Subject"] == f"[KO Intégration système !][XDM_NO_ARCHIVE] {SUBJECT}"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == [
        "text/plain",
        "message/rfc822",
        "application/zip",
        "application/pdf",
    ]
    assert parts[0].get_content_charset() == "utf-8"
    assert parts[1].get_filename() == "message_original.eml"
    assert parts[1].get_content_disposition() == "attachment"
    assert "Code d'erreur : XDM_NO_ARCHIVE" in parts[0].get_content()
    assert "d'archive IHE_XDM.ZIP lisible" in parts[0].get_content()
    assert b"\nDisposition:" not in reply.as_bytes()  # "spécifique aux MDN"
    assert parse_notifications(reply.as_bytes()) == []


def test_recipient_and_kind_can_be_chosen():
    asked = read_mail(original(f"Disposition-Notification-To: {SENDER}"))
    to_error_box = error_mail(
        asked,
        from_address=APP,
        code="902",
        to_address="erreurs@ch-demo.mssante.test",
        mdn=False,
        message_id=REPLY_ID,
    )
    assert to_error_box.kind == "standard"
    assert to_error_box.recipient == "erreurs@ch-demo.mssante.test"
    # The dedicated error mailbox is for standard mails: an MDN goes where it was asked.
    asked_mdn = error_mail(
        asked,
        from_address=APP,
        code="902",
        to_address="erreurs@ch-demo.mssante.test",
        message_id=REPLY_ID,
    )
    assert asked_mdn.kind == "mdn" and asked_mdn.recipient == SENDER
    not_asked_box = error_mail(
        read_mail(original()),
        from_address=APP,
        code="902",
        to_address="erreurs@ch-demo.mssante.test",
        message_id=REPLY_ID,
    )
    assert not_asked_box.kind == "standard"
    assert not_asked_box.recipient == "erreurs@ch-demo.mssante.test"
    not_asked = read_mail(original())
    with pytest.raises(InvalidInput) as refused:
        error_mail(not_asked, from_address=APP, code="902", mdn=True, message_id=REPLY_ID)
    assert refused.value.code == "MSS_BAD_ADDRESS"
    forced = error_mail(
        not_asked, from_address=APP, code="902", mdn=True, to_address=SENDER, message_id=REPLY_ID
    )
    assert forced.kind == "mdn"


def test_labels_default_to_the_volet_table_and_fold_to_ascii_in_the_disposition():
    received = read_mail(original(f"Disposition-Notification-To: {SENDER}"))
    reply = error_mail(received, from_address=APP, code="904", message_id=REPLY_ID)
    label = (
        "L'INS transmis ne correspond pas exactement à celui stocké dans la base du consommateur"
    )
    assert label in next(parsed(reply).iter_parts()).get_content()
    assert mdn_fields(parsed(reply))["Disposition"].endswith(
        "904^L'INS transmis ne correspond pas exactement a celui stocke dans la base du "
        "consommateur"
    )
    other = error_mail(
        received,
        from_address=APP,
        code="PFI_CDA",
        text="Le CDA reçu\r\nest illisible : l’en-tête manque",
        message_id=REPLY_ID,
    )
    fields = mdn_fields(parsed(other))
    assert fields["Disposition"].endswith("PFI_CDA^Le CDA recu est illisible : l'en-tete manque")
    assert (
        "Le CDA reçu est illisible : l’en-tête manque"
        in next(parsed(other).iter_parts()).get_content()
    )


def test_processed_mdn_keeps_the_subject():
    received = read_mail(original(f"Disposition-Notification-To: {SENDER}"))
    reply = processed_mdn(received, from_address=APP, message_id=REPLY_ID, now=NOW)
    msg = parsed(reply)
    assert msg["Subject"] == SUBJECT and reply.code == ""
    assert mdn_fields(msg)["Disposition"] == "automatic-action/MDN-sent-automatically; processed"
    (note,) = parse_notifications(reply.as_bytes())
    assert note.processed_ok


def test_no_reply_to_an_automatic_mail():
    received = read_mail(original("Auto-Submitted: auto-replied"))
    with pytest.raises(InvalidInput) as refused:
        error_mail(received, from_address=APP, code="902", message_id=REPLY_ID)
    assert refused.value.code == "MSS_AUTO_SUBMITTED"


def test_what_the_caller_gets_wrong():
    received = read_mail(original())
    with pytest.raises(ValueError):
        error_mail(received, from_address=APP, code="9 0 2", message_id=REPLY_ID)
    with pytest.raises(ValueError):
        error_mail(received, from_address=APP, code="902", message_id="no at sign")
    with pytest.raises(ConfigurationError):
        error_mail(received, from_address="not an address", code="902", message_id=REPLY_ID)
    bare = error_mail(received, from_address=APP, code="902", message_id="abc@ch-demo.mssante.test")
    assert bare.message_id == "<abc@ch-demo.mssante.test>"


def test_message_ids_are_fixed_and_bytes_stable():
    received = read_mail(original())
    first = reply_message_id(received, APP)
    assert first == reply_message_id(read_mail(original()), APP)
    assert first.endswith("@ch-demo.mssante.test>") and first.startswith("<pfi-ko.")
    assert reply_message_id(received, APP, kind="ok") != first
    other = read_mail(original(body="Autre courriel.\n").replace(b"23456@", b"99999@"))
    assert reply_message_id(other, APP) != first
    reply = error_mail(received, from_address=APP, code="902", message_id=first, now=NOW)
    assert reply.as_bytes() == reply.as_bytes()


def test_ko_subject_as_the_volet_writes_it():
    assert ko_subject(SUBJECT, "902") == (
        "[KO Intégration système !][902] XDM/1.0/DDM+ECHOGRAPHIE ABDOMINOPELVIENNE CORSE "
        "FIGATELLIX 12/10/1988"
    )
    assert ko_subject("", "906") == "[KO Intégration système !][906]"


def test_an_8bit_original_is_quoted_byte_for_byte():
    raw = (
        f"From: {SENDER}\r\nTo: {APP}\r\nSubject: caf\xe9\r\nMessage-ID: <8bit@labo-x>\r\n"
        "Disposition-Notification-To: " + SENDER + "\r\n"
        "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "r\xe9sultat \x80\r\n"
    ).encode("latin-1")
    received = read_mail(raw)
    reply = error_mail(received, from_address=APP, code="902", message_id=REPLY_ID)
    assert raw in reply.as_bytes()
    assert "[902] café" in parsed(reply)["Subject"]
    assert "> résultat €" in next(parsed(reply).iter_parts()).get_content()


def test_a_mail_the_generator_cannot_write_back_is_attached_as_bytes(monkeypatch):
    received = read_mail(original(f"Disposition-Notification-To: {SENDER}"))

    def broken(raw, filename):
        raise UnicodeEncodeError("ascii", "x", 0, 1, "test")

    monkeypatch.setattr(em, "_message_part", broken)
    msg = parsed(error_mail(received, from_address=APP, code="902", message_id=REPLY_ID))
    quoted = [p for p in msg.iter_parts() if p.get_filename() == "message_original.eml"]
    assert quoted[0].get_content_type() == "application/octet-stream"
    assert quoted[0].get_content() == received.raw


def test_repr_names_no_recipient():
    received = read_mail(original())
    reply = error_mail(received, from_address=APP, code="902", message_id=REPLY_ID)
    assert SENDER not in repr(reply) and "FIGATELLIX" not in repr(reply)
